/*
 * fileio_test.c - bounded whole-file reads: content exact, limits enforced,
 * non-regular files and symlinks (with O_NOFOLLOW) refused.
 */
#include "tests/unit/unit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/common.h"

static void test_read_limits_and_types(void **state)
{
	char dir[] = "/tmp/fileio_test.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *f = xasprintf("%s/f", dir), *l = xasprintf("%s/l", dir);
	FILE *fp = fopen(f, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite("a\0bc", 1, 4, fp), 4);
	fclose(fp);
	struct buf b;
	assert_int_equal(file_read_all(AT_FDCWD, f, 0, 4, &b), 0);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "a\0bc", 4);
	buf_free(&b);
	errno = 0;
	assert_int_equal(file_read_all(AT_FDCWD, f, 0, 3, &b), -1);
	assert_int_equal(errno, EFBIG);
	assert_int_equal(file_read_all(AT_FDCWD, dir, 0, 100, &b), -1);
	assert_int_equal(errno, EISDIR);
	assert_int_equal(file_read_all(AT_FDCWD, "/dev/null", 0, 100, &b), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(symlink(f, l), 0);
	assert_int_equal(file_read_all(AT_FDCWD, l, O_NOFOLLOW, 100, &b), -1);
	assert_int_equal(errno, ELOOP);
	assert_int_equal(file_read_all(AT_FDCWD, l, 0, 100, &b), 0);
	buf_free(&b);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_int_equal(file_read_all(dfd, "f", 0, 100, &b), 0);
	assert_int_equal(b.len, 4);
	buf_free(&b);
	assert_int_equal(file_read_all(dfd, "missing", 0, 100, &b), -1);
	assert_int_equal(errno, ENOENT);
	close(dfd);
	unlink(l);
	unlink(f);
	rmdir(dir);
	free(f);
	free(l);
}

static void test_opendir_at(void **state)
{
	char dir[] = "/tmp/fileio_test.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *sub = xasprintf("%s/sub", dir), *f = xasprintf("%s/f", dir),
	     *l = xasprintf("%s/l", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	int fd = open(f, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlink("sub", l), 0);
	int root = open(dir, O_RDONLY | O_DIRECTORY);
	DIR *d = file_opendir_at(root, "sub", O_NOFOLLOW);
	assert_non_null(d);
	closedir(d);
	d = file_opendir_at(root, "l", 0); /* followed when allowed */
	assert_non_null(d);
	closedir(d);
	errno = 0;
	assert_null(file_opendir_at(root, "l", O_NOFOLLOW));
	assert_true(errno == ELOOP || errno == ENOTDIR);
	errno = 0;
	assert_null(file_opendir_at(root, "f", 0));
	assert_int_equal(errno, ENOTDIR);
	errno = 0;
	assert_null(file_opendir_at(root, "missing", 0));
	assert_int_equal(errno, ENOENT);
	close(root);
	unlink(l);
	unlink(f);
	rmdir(sub);
	rmdir(dir);
	free(sub);
	free(f);
	free(l);
}

static void test_write_all(void **state)
{
	char path[] = "/tmp/fileio_test_w.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	char big[200000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	assert_int_equal(file_write_all(fd, big, sizeof(big)), 0);
	close(fd);
	struct buf b;
	assert_int_equal(file_read_all(AT_FDCWD, path, 0, sizeof(big), &b), 0);
	assert_int_equal(b.len, sizeof(big));
	assert_memory_equal(b.data, big, sizeof(big));
	buf_free(&b);
	unlink(path);
	errno = 0;
	assert_int_equal(file_write_all(-1, "x", 1), -1);
	assert_int_equal(errno, EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_limits_and_types),
		cmocka_unit_test(test_write_all),
		cmocka_unit_test(test_opendir_at),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

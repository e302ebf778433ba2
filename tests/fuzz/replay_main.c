/*
 * replay_main.c - runs a libFuzzer target over its seed corpus as a unit test.
 *
 * Purpose: every fuzz target is also a CTest test without clang: each file
 * named on the command line (or found in a directory named there) is passed
 * once to LLVMFuzzerTestOneInput. Under the sanitizer build a crash, leak or
 * undefined behaviour fails the test.
 */
#include <dirent.h>
#include <sys/stat.h>

#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t cap = 1 << 16, len = 0;
	uint8_t *data = xmalloc(cap);
	size_t n;
	while ((n = fread(data + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap)
			data = xrealloc(data, cap *= 2);
	}
	fclose(f);
	/* copy into an exact-size allocation so ASan catches overreads */
	uint8_t *exact = xmalloc(len);
	if (len > 0)
		memcpy(exact, data, len);
	free(data);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

int main(int argc, char **argv)
{
	int files = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (replay_file(argv[i]) < 0)
				return 1;
			files++;
			continue;
		}
		struct dirent **ents;
		int n = scandir(argv[i], &ents, NULL, alphasort);
		if (n < 0)
			return 1;
		for (int k = 0; k < n; k++) {
			if (ents[k]->d_name[0] != '.') {
				char *p = xasprintf("%s/%s", argv[i], ents[k]->d_name);
				if (replay_file(p) < 0)
					return 1;
				free(p);
				files++;
			}
			free(ents[k]);
		}
		free(ents);
	}
	/* the empty input is always worth one run */
	LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
	printf("replayed %d corpus files\n", files);
	return files > 0 ? 0 : 1;
}

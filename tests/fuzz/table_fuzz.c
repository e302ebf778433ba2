/*
 * table_fuzz.c - libFuzzer target for the lookup table file parsers.
 *
 * The input is written to a temporary file and opened as texthash:, regexp:,
 * pcre: and cidr: tables (and compiled as an aliases file), then a few keys
 * are looked up; it is also used, NUL-terminated, as an inline: spec and as
 * a table list. Nothing may crash, leak or hang; errors are fine.
 */
#include <unistd.h>

#include "lib/log.h"
#include "lib/table.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void table_fuzz_probe(struct table *t)
{
	static const char *const keys[] = { "user@example.com", "192.0.2.1", "2001:db8::1", "", "a" };
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		char *v = NULL;
		const char *err;
		if (table_lookup(t, keys[i], &v, &err) == 1)
			free(v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	if (!quiet) {
		const char *e;
		(void)log_open("table_fuzz", "/dev/null", &e);
		quiet = true;
	}
	char path[] = "/tmp/table_fuzz.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 0;
	size_t off = 0;
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fd);
	static const char *const types[] = { "texthash", "regexp", "pcre", "cidr" };
	for (size_t i = 0; i < ARRAY_LEN(types); i++) {
		char *spec = xasprintf("%s:%s", types[i], path);
		const char *err;
		struct table *t = table_open(spec, &err);
		if (t != NULL) {
			table_fuzz_probe(t);
			table_free(&t);
		}
		free(spec);
	}
	const char *err;
	char *db = xasprintf("%s.lmdb", path);
	if (table_compile_aliases(path, &err) == 0) {
		char *spec = xasprintf("lmdb:%s", path);
		struct table *t = table_open(spec, &err);
		if (t != NULL) {
			table_fuzz_probe(t);
			table_free(&t);
		}
		free(spec);
		unlink(db);
	}
	free(db);
	unlink(path);
	char *text = xmemdup(data, size);
	char *spec = xasprintf("inline:%s", text);
	struct table *t = table_open(spec, &err);
	if (t != NULL) {
		table_fuzz_probe(t);
		table_free(&t);
	}
	free(spec);
	/* as a list, only the self-contained types: no file names from input */
	if (strstr(text, "inline:") == text || strstr(text, "static:") == text) {
		struct table_list *l = table_list_open(text, &err);
		if (l != NULL) {
			char *v;
			if (table_list_lookup(l, "a", &v, &err) == 1)
				free(v);
			table_list_free(&l);
		}
	}
	free(text);
	return 0;
}

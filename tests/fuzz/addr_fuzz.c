/*
 * addr_fuzz.c - libFuzzer target for RFC 5321 path parsing: any bytes as a
 * path, with and without SMTPUTF8. A parsed address respects the limits and
 * its views stay inside its own text.
 */
#include "lib/addr.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str in = { (const char *)data, size };
	for (unsigned opts = 0; opts < 4; opts++) {
		struct addr a;
		const char *err = NULL;
		if (addr_parse(in, opts, &a, &err) < 0) {
			CHECK(err != NULL);
			continue;
		}
		CHECK(a.len < sizeof(a.text) && a.text[a.len] == '\0');
		CHECK(strlen(a.text) == a.len);
		CHECK(a.local_len <= ADDR_LOCAL_MAX);
		struct str d = addr_domain(&a);
		CHECK(d.len <= ADDR_DOMAIN_MAX && d.p + d.len <= a.text + a.len);
		if (!(opts & ADDR_O_SMTPUTF8))
			CHECK(!(a.flags & ADDR_F_UTF8));
		if (a.flags & ADDR_F_UTF8)
			CHECK(addr_utf8_valid(a.text, a.len));
		struct buf b;
		buf_init(&b, 128);
		addr_local_unquoted(&a, &b);
		buf_free(&b);
		addr_base_len(addr_local(&a), "+-");
		addr_domain_in_list(d, "example.test, .sub.test", true);
	}
	return 0;
}

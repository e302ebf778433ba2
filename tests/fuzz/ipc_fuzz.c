/*
 * ipc_fuzz.c - libFuzzer target for the IPC decoder: any packet decodes or
 * is refused, and reading fields never overruns.
 */
#include "lib/ipc.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_msg m;
	const char *err = NULL;
	if (ipc_decode(data, size, &m, &err) == 0) {
		/* walk the payload as a mix of field types until it runs out */
		for (int i = 0; !m.bad && i < 1000; i++) {
			uint32_t u;
			uint64_t q;
			struct str s;
			char *c = NULL;
			switch ((m.type + i) % 4) {
			case 0: (void)ipc_get_u32(&m, &u); break;
			case 1: (void)ipc_get_u64(&m, &q); break;
			case 2: (void)ipc_get_str(&m, &s); break;
			default:
				if (ipc_get_cstr(&m, &c))
					free(c);
			}
			if (ipc_get_end(&m))
				break;
		}
	}
	ipc_msg_free(&m);
	return 0;
}

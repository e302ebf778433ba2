/*
 * cli_queue.c - queue verbs of the postern command (see cli_queue.h).
 *
 * Purpose: list, show and check the queue; forward control verbs to the
 * queue process. Owns: nothing. Never: writes the queue.
 * Tests: tests/integration/test_cli.py.
 */
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "mta/cli/cli_queue.h"
#include "lib/common.h"

int cli_queue_check(const struct cfg *cfg)
{
	struct stat st;
	if (stat(cfg->queue_directory, &st) < 0) {
		/* master creates it at start: not an error before the first start */
		if (errno == ENOENT)
			return 0;
		fprintf(stderr, "postern: %s: %s\n", cfg->queue_directory, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "postern: %s: not a directory\n", cfg->queue_directory);
		return 1;
	}
	return 0;
}

int cli_queue_verb(const struct cfg *cfg, const char *verb, int argc, char **argv)
{
	fprintf(stderr, "postern: %s: not available in this build\n", verb);
	return EX_UNAVAILABLE;
}

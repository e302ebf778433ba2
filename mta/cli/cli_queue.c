/*
 * cli_queue.c - queue verbs of the postern command (see cli_queue.h).
 *
 * Purpose: list, show and check the queue (reading it directly, through
 * mta/queue's listing code); forward control verbs to the queue process.
 * Owns: nothing. Never: writes the queue.
 * Tests: tests/integration/test_cli.py.
 */
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "mta/cli/cli_queue.h"
#include "mta/queue/queue_ctl.h"
#include "mta/queue/queue_list.h"
#include "lib/common.h"

int cli_queue_check(const struct cfg *cfg)
{
	struct stat st;
	/* master creates the tree at its first start: not a problem before */
	if (stat(cfg->queue_directory, &st) < 0 && errno == ENOENT)
		return 0;
	struct buf report;
	buf_init(&report, 1 << 20);
	int problems = queue_list_check(cfg, &report);
	fputs(buf_cstr(&report), stderr);
	buf_free(&report);
	return problems > 0 ? 1 : 0;
}

static int cli_queue_control(const struct cfg *cfg, const char *verb, const char *id)
{
	struct buf reply;
	const char *err = NULL;
	buf_init(&reply, 1 << 16);
	int r = queue_ctl_request(cfg, verb, id, &reply, &err);
	if (r < 0)
		fprintf(stderr, "postern: fatal: %s: %s\n", verb, err);
	else if (reply.len > 0)
		fprintf(stderr, "postern: %s%s", buf_cstr(&reply),
			reply.data[reply.len - 1] == '\n' ? "" : "\n");
	buf_free(&reply);
	return r == 0 ? 0 : r > 0 ? 1 : EX_UNAVAILABLE;
}

int cli_queue_verb(const struct cfg *cfg, const char *verb, int argc, char **argv)
{
	const char *err = NULL;
	if (strcmp(verb, "queue") == 0) {
		bool json = argc == 1 && strcmp(argv[0], "--json") == 0;
		if (argc > 1 || (argc == 1 && !json)) {
			fprintf(stderr, "usage: postern queue [--json]\n");
			return EX_USAGE;
		}
		if (queue_list_print(cfg, json, stdout, &err) < 0) {
			fprintf(stderr, "postern: fatal: %s\n", err);
			return EX_UNAVAILABLE;
		}
		return 0;
	}
	if (strcmp(verb, "flush") == 0) {
		if (argc != 0) {
			fprintf(stderr, "usage: postern flush\n");
			return EX_USAGE;
		}
		return cli_queue_control(cfg, verb, NULL);
	}
	if (argc != 1) {
		fprintf(stderr, "usage: postern %s ID%s\n", verb, strcmp(verb, "delete") == 0 ? "|ALL" : "");
		return EX_USAGE;
	}
	if (strcmp(verb, "show") == 0) {
		int r = queue_show(cfg, argv[0], stdout, &err);
		if (r < 0)
			fprintf(stderr, "postern: fatal: %s: %s\n", argv[0], err);
		else if (r > 0)
			fprintf(stderr, "postern: %s: no such message\n", argv[0]);
		return r == 0 ? 0 : 1;
	}
	return cli_queue_control(cfg, verb, argv[0]);
}

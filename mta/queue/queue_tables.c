/*
 * queue_tables.c - the resolver's lookup callback over lib/table.h.
 *
 * Purpose: open each main.cf table list once (cached by its text) and look
 * keys up in it for queue_local.c.
 * Owns: the cache of opened table lists.
 * Never: treats a table that fails to open as "not found" (that would
 * bounce mail over a configuration slip): it is a temporary error.
 * Tests: tests/unit/queue/queue_local_test.c (inline: and texthash: tables).
 */
#include "lib/table.h"
#include "lib/log.h"
#include "mta/queue/queue_local.h"
#include "lib/common.h"

#define QUEUE_TABLES_MAX 64 /* distinct table lists cached */

struct queue_tables_entry {
	char *maps;              /* the list text; owned */
	struct table_list *list; /* opened list, NULL when it failed to open */
	char *error;             /* why it failed; owned */
};

static struct queue_tables_entry cache[QUEUE_TABLES_MAX];
static size_t ncache;

void queue_tables_flush(void)
{
	for (size_t i = 0; i < ncache; i++) {
		free(cache[i].maps);
		free(cache[i].error);
		table_list_free(&cache[i].list);
	}
	ncache = 0;
}

static struct queue_tables_entry *queue_tables_get(const char *maps)
{
	for (size_t i = 0; i < ncache; i++)
		if (strcmp(cache[i].maps, maps) == 0)
			return &cache[i];
	if (ncache == QUEUE_TABLES_MAX)
		queue_tables_flush();
	struct queue_tables_entry *e = &cache[ncache++];
	const char *err = NULL;
	e->maps = xstrdup(maps);
	e->list = table_list_open(maps, &err);
	e->error = e->list ? NULL : xstrdup(err ? err : "cannot open table");
	if (e->list == NULL)
		log_warning("%s", e->error);
	return e;
}

int queue_tables_lookup(void *ctx, const char *maps, const char *key, char **value_r,
			const char **error_r)
{
	*value_r = NULL;
	if (maps == NULL || *maps == '\0')
		return 0;
	struct queue_tables_entry *e = queue_tables_get(maps);
	if (e->list == NULL) {
		*error_r = e->error;
		return -1;
	}
	return table_list_lookup(e->list, key, value_r, error_r);
}

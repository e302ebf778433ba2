/*
 * queue_list.c - queue listing (postqueue -p / -j), show ID, tree check.
 *
 * Purpose: let people see the queue without asking the queue process.
 * Owns: nothing; reads queue_directory read-only.
 * Never: writes or moves a queue file; trusts a file (each goes through
 * qfile_parse); fails because a file vanished mid-scan; prints raw message
 * bytes to a terminal (non-printables are escaped).
 * Limits: QUEUE_LIST_HEADER_MAX bytes of headers shown.
 * Tests: tests/unit/queue/queue_list_test.c, tests/integration/test_queue_ctl.py.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mta/queue/queue_list.h"
#include "lib/qfile.h"
#include "lib/common.h"

#define QUEUE_LIST_HEADER_MAX (1024 * 1024)

struct list_entry {
	char qid[QFILE_ID_LEN + 1];
	const char *queue; /* "active", "deferred", "hold" */
};

static const char *const list_queues[] = { "active", "deferred", "hold" };

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct list_entry *)a)->qid, ((const struct list_entry *)b)->qid);
}

/* Every queue-ID-named file of the three queues, sorted by ID. */
static int list_collect(const struct cfg *cfg, struct list_entry **out, size_t *n_r,
			const char **error_r)
{
	size_t n = 0, cap = 0;
	struct list_entry *v = NULL;
	struct stat st;
	if (stat(cfg->queue_directory, &st) < 0) {
		*error_r = "cannot read queue_directory";
		return -1;
	}
	for (size_t k = 0; k < ARRAY_LEN(list_queues); k++) {
		char *dir = xasprintf("%s/%s", cfg->queue_directory, list_queues[k]);
		DIR *d = opendir(dir);
		free(dir);
		if (d == NULL)
			continue; /* not created yet: nothing queued there */
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (!qfile_id_valid(e->d_name))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				v = xreallocarray(v, cap, sizeof(*v));
			}
			memcpy(v[n].qid, e->d_name, QFILE_ID_LEN + 1);
			v[n].queue = list_queues[k];
			n++;
		}
		closedir(d);
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), entry_cmp);
	*out = v;
	*n_r = n;
	return 0;
}

/* Read and parse one envelope; 1 when it vanished, -1 when unreadable or
 * corrupt (reason in *why), 0 when parsed. */
static int list_load(const struct cfg *cfg, const char *queue, const char *qid,
		     struct qfile_env *env, const char **why)
{
	char *path = xasprintf("%s/%s/%s", cfg->queue_directory, queue, qid);
	struct buf b;
	int rc = qfile_read_file(AT_FDCWD, path, &b);
	free(path);
	if (rc < 0) {
		*why = strerror(errno);
		return errno == ENOENT ? 1 : -1;
	}
	rc = qfile_parse(b.data, b.len, env, why);
	buf_free(&b);
	return rc;
}

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* Printable text: bytes outside printable ASCII and UTF-8 as \ooo. */
static void safe_text(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0x20 && *p != 0x7f)
			fputc(*p, out);
		else
			fprintf(out, "\\%03o", *p);
	}
}

static bool rcpt_open(const struct qfile_rcpt *r)
{
	return r->state == QFILE_RS_PENDING || r->state == QFILE_RS_DEFERRED;
}

static void print_plain(FILE *out, const struct list_entry *e, const struct qfile_env *env)
{
	char id[QFILE_ID_LEN + 3];
	snprintf(id, sizeof(id), "%s%s", env->qid,
		 strcmp(e->queue, "active") == 0 ? "*" : strcmp(e->queue, "hold") == 0 ? "!" : "");
	time_t t = (time_t)(env->arrival / 1000000);
	struct tm tm;
	char when[64];
	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
	fprintf(out, "%-17s %8llu %19.19s ", id, (unsigned long long)env->size, when);
	safe_text(out, env->sender[0] ? env->sender : "MAILER-DAEMON");
	fputc('\n', out);
	const char *last = "";
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct qfile_rcpt *r = &env->rcpt[i];
		if (!rcpt_open(r) && strcmp(e->queue, "hold") != 0)
			continue;
		const char *why = r->state == QFILE_RS_PENDING ? "" : r->reason;
		if (strcmp(why, last) != 0) {
			const char *show = *why ? why : "reason unavailable";
			int pad = 76 - (int)strlen(show);
			fprintf(out, "%*s(", pad > 0 ? pad : 0, "");
			safe_text(out, show);
			fputs(")\n", out);
			last = why;
		}
		fprintf(out, "%-17s %8s %-19s ", "", "", "");
		safe_text(out, r->addr);
		fputc('\n', out);
	}
}

static void print_json(FILE *out, const struct list_entry *e, const struct qfile_env *env)
{
	fprintf(out, "{\"queue_name\": \"%s\", \"queue_id\": \"%s\", \"arrival_time\": %lld, "
		     "\"message_size\": %llu, \"forced_expire\": false, \"sender\": ",
		e->queue, env->qid, (long long)(env->arrival / 1000000), (unsigned long long)env->size);
	json_str(out, env->sender);
	fputs(", \"recipients\": [", out);
	bool first = true;
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct qfile_rcpt *r = &env->rcpt[i];
		if (!rcpt_open(r) && strcmp(e->queue, "hold") != 0)
			continue;
		fprintf(out, "%s{\"address\": ", first ? "" : ", ");
		json_str(out, r->addr);
		if (r->state != QFILE_RS_PENDING && r->reason[0]) {
			fputs(", \"delay_reason\": ", out);
			json_str(out, r->reason);
		}
		fputc('}', out);
		first = false;
	}
	fputs("]}\n", out);
}

int queue_list_print(const struct cfg *cfg, bool json, FILE *out, const char **error_r)
{
	struct list_entry *v = NULL;
	size_t n = 0, shown = 0;
	unsigned long long bytes = 0;
	if (list_collect(cfg, &v, &n, error_r) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct qfile_env env;
		const char *why = NULL;
		int rc = list_load(cfg, v[i].queue, v[i].qid, &env, &why);
		if (rc == 1)
			continue; /* delivered while we looked */
		if (rc < 0) {
			if (!json)
				fprintf(stderr, "%s/%s/%s: unreadable queue file: %s\n",
					cfg->queue_directory, v[i].queue, v[i].qid, why);
			continue;
		}
		if (json) {
			print_json(out, &v[i], &env);
		} else {
			if (shown == 0)
				fprintf(out, "%-17s %8s %-19s %s\n", "----Queue ID-----", "--Size--",
					"---Arrival Time----", "--Sender/Recipient------");
			else
				fputc('\n', out);
			print_plain(out, &v[i], &env);
		}
		bytes += env.size;
		shown++;
		qfile_env_free(&env);
	}
	free(v);
	if (!json) {
		if (shown == 0)
			fputs("Mail queue is empty\n", out);
		else
			fprintf(out, "\n-- %llu Kbytes in %zu Request%s.\n", bytes / 1024, shown,
				shown == 1 ? "" : "s");
	}
	return 0;
}

/* Print the header section of the content file, escaped. */
static void show_headers(const struct cfg *cfg, const char *qid, FILE *out)
{
	char *path = xasprintf("%s/content/%s", cfg->queue_directory, qid);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0) {
		fprintf(out, "(content unavailable: %s)\n", strerror(errno));
		return;
	}
	FILE *f = fdopen(fd, "r");
	if (f == NULL) {
		close(fd);
		return;
	}
	size_t total = 0;
	int c, prev = '\n';
	while ((c = fgetc(f)) != EOF && total < QUEUE_LIST_HEADER_MAX) {
		total++;
		if (c == '\r')
			continue;
		if (c == '\n' && prev == '\n')
			break; /* end of the header section */
		if (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f))
			fputc(c, out);
		else
			fprintf(out, "\\%03o", c);
		prev = c;
	}
	if (prev != '\n')
		fputc('\n', out);
	fclose(f);
}

int queue_show(const struct cfg *cfg, const char *id, FILE *out, const char **error_r)
{
	if (!qfile_id_valid(id)) {
		*error_r = "not a queue ID";
		return -1;
	}
	for (size_t k = 0; k < ARRAY_LEN(list_queues); k++) {
		struct qfile_env env;
		const char *why = NULL;
		int rc = list_load(cfg, list_queues[k], id, &env, &why);
		if (rc == 1)
			continue;
		if (rc < 0) {
			*error_r = why;
			return -1;
		}
		time_t t = (time_t)(env.arrival / 1000000);
		struct tm tm;
		char when[64];
		localtime_r(&t, &tm);
		strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", &tm);
		fprintf(out, "*** ENVELOPE %s/%s ***\n", list_queues[k], id);
		fprintf(out, "queue_id: %s\narrival_time: %s\nmessage_size: %llu\nsender: ", id, when,
			(unsigned long long)env.size);
		safe_text(out, env.sender);
		fputs("\nclient: ", out);
		safe_text(out, env.client_name);
		fputs("[", out);
		safe_text(out, env.client_addr);
		fprintf(out, "]:%u\nhelo: ", env.client_port);
		safe_text(out, env.helo);
		fputs("\nprotocol: ", out);
		safe_text(out, env.protocol);
		if (env.envid[0]) {
			fputs("\nenvid: ", out);
			safe_text(out, env.envid);
		}
		fputc('\n', out);
		for (size_t i = 0; i < env.nrcpt; i++) {
			const struct qfile_rcpt *r = &env.rcpt[i];
			fputs("recipient: ", out);
			safe_text(out, r->addr);
			fprintf(out, " (%s", qfile_rstate_name(r->state));
			if (r->reason[0]) {
				fprintf(out, ", %s ", r->dsn);
				safe_text(out, r->reason);
			}
			fputs(")\n", out);
		}
		fputs("*** HEADERS ***\n", out);
		show_headers(cfg, id, out);
		qfile_env_free(&env);
		return 0;
	}
	return 1;
}

int queue_list_check(const struct cfg *cfg, struct buf *report)
{
	static const char *const dirs[] = { "content", "incoming", "active", "deferred",
					    "hold",    "corrupt",  "private" };
	int problems = 0;
	struct stat st;
	if (stat(cfg->queue_directory, &st) < 0 || !S_ISDIR(st.st_mode)) {
		buf_printf(report, "%s: queue_directory missing or not a directory\n", cfg->queue_directory);
		return 1;
	}
	for (size_t k = 0; k < ARRAY_LEN(dirs); k++) {
		char *dir = xasprintf("%s/%s", cfg->queue_directory, dirs[k]);
		if (lstat(dir, &st) < 0) {
			/* created by the queue process at its first start */
			free(dir);
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			buf_printf(report, "%s: not a directory\n", dir);
			problems++;
		} else if ((st.st_mode & 077) != 0) {
			buf_printf(report, "%s: mode %03o, should be 0700\n", dir, st.st_mode & 0777);
			problems++;
		}
		bool envelopes = k >= 2 && k <= 4;
		DIR *d = opendir(dir);
		struct dirent *e;
		while (d && (e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.' || k == 5 || k == 6)
				continue;
			if (!qfile_id_valid(e->d_name)) {
				buf_printf(report, "%s/%s: not a queue file name\n", dir, e->d_name);
				problems++;
				continue;
			}
			if (!envelopes)
				continue;
			struct qfile_env env;
			const char *why = NULL;
			int rc = list_load(cfg, dirs[k], e->d_name, &env, &why);
			if (rc < 0) {
				buf_printf(report, "%s/%s: corrupt queue file: %s\n", dir, e->d_name, why);
				problems++;
			} else if (rc == 0) {
				qfile_env_free(&env);
			}
		}
		if (d)
			closedir(d);
		free(dir);
	}
	return problems;
}

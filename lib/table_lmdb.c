/*
 * table_lmdb.c - lmdb: tables (and hash:, btree: as aliases), and writing
 * compiled tables for postern map / newaliases.
 *
 * Purpose: look keys up in FILE.lmdb, and build FILE.lmdb atomically.
 * A missing FILE.lmdb does not fail the open; each lookup then fails
 * (-1, temporary) until the file appears.
 * Owns: an LMDB environment per open table.
 * Never: modifies an existing .lmdb in place (a new file replaces it by
 * rename, so readers see the old or the new table, never half of one).
 * Limits: keys up to LMDB's maximum key size (511 bytes); longer keys are
 * rejected at compile time and never found.
 * Tests: tests/unit/lib/table_test.c.
 */
#include <fcntl.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/table.h"
#include "lib/table_int.h"
#include "lib/common.h"

struct lmdb_table {
	char *path;     /* FILE.lmdb */
	MDB_env *env;   /* open environment, NULL after a failed reopen */
	dev_t dev;      /* device of the opened file (replacement check) */
	ino_t ino;      /* inode of the opened file: a rename changes it */
	struct timespec mtime; /* modification time of the opened file */
};

static int lmdb_env_open(struct lmdb_table *lt, const char **error_r)
{
	struct stat st;
	if (stat(lt->path, &st) < 0) {
		*error_r = table_error_set("%s: %s", lt->path, strerror(errno));
		return -1;
	}
	MDB_env *env;
	int rc = mdb_env_create(&env);
	if (rc == 0) {
		/* NOLOCK: compiled files are never written after the rename */
		rc = mdb_env_open(env, lt->path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0644);
		if (rc != 0)
			mdb_env_close(env);
	}
	if (rc != 0) {
		*error_r = table_error_set("%s: %s", lt->path, mdb_strerror(rc));
		return -1;
	}
	lt->env = env;
	lt->dev = st.st_dev;
	lt->ino = st.st_ino;
	lt->mtime = st.st_mtim;
	return 0;
}

static int lmdb_open(struct table *t, const char *name, const char **error_r)
{
	if (*name == 0) {
		*error_r = table_error_set("%.200s: missing file name", t->spec);
		return -1;
	}
	struct lmdb_table *lt = xcalloc(1, sizeof(*lt));
	lt->path = xasprintf("%s.lmdb", name);
	/* A table not built yet is not an open error: its lookups fail
	 * (temporarily) until "postern map" creates it, and then work without
	 * a reload. Any other problem (corrupt file) fails the open. */
	if (access(lt->path, F_OK) < 0 && errno == ENOENT) {
		t->priv = lt;
		return 0;
	}
	if (lmdb_env_open(lt, error_r) < 0) {
		free(lt->path);
		free(lt);
		return -1;
	}
	t->priv = lt;
	return 0;
}

/* Reopen when postern map replaced the file since we opened it. */
static int lmdb_refresh(struct lmdb_table *lt, const char **error_r)
{
	struct stat st;
	if (lt->env != NULL && stat(lt->path, &st) == 0 && st.st_dev == lt->dev &&
	    st.st_ino == lt->ino && st.st_mtim.tv_sec == lt->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == lt->mtime.tv_nsec)
		return 0;
	if (lt->env != NULL) {
		mdb_env_close(lt->env);
		lt->env = NULL;
	}
	return lmdb_env_open(lt, error_r);
}

static int lmdb_lookup(struct table *t, const char *key, char **value_r, const char **error_r)
{
	struct lmdb_table *lt = t->priv;
	if (lmdb_refresh(lt, error_r) < 0)
		return -1;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc = mdb_txn_begin(lt->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		*error_r = table_error_set("%s: %s", lt->path, mdb_strerror(rc));
		return -1;
	}
	rc = mdb_dbi_open(txn, NULL, 0, &dbi);
	if (rc != 0) {
		mdb_txn_abort(txn);
		*error_r = table_error_set("%s: %s", lt->path, mdb_strerror(rc));
		return -1;
	}
	size_t klen = strlen(key);
	if (klen == 0 || klen + 1 > (size_t)mdb_env_get_maxkeysize(lt->env)) {
		mdb_txn_abort(txn);
		return 0;
	}
	/* our keys carry no NUL; tables made by Postfix's postmap may */
	MDB_val k = { klen, (void *)key }, v;
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc == MDB_NOTFOUND) {
		k.mv_size = klen + 1;
		rc = mdb_get(txn, dbi, &k, &v);
	}
	int ret;
	if (rc == MDB_NOTFOUND) {
		ret = 0;
	} else if (rc != 0) {
		*error_r = table_error_set("%s: %s", lt->path, mdb_strerror(rc));
		ret = -1;
	} else {
		size_t vl = v.mv_size;
		if (vl > 0 && ((const char *)v.mv_data)[vl - 1] == 0)
			vl--;
		*value_r = xmemdup(v.mv_data, vl);
		ret = 1;
	}
	mdb_txn_abort(txn);
	return ret;
}

static void lmdb_close(struct table *t)
{
	struct lmdb_table *lt = t->priv;
	if (lt->env)
		mdb_env_close(lt->env);
	free(lt->path);
	free(lt);
}

const struct table_ops table_lmdb_ops = { "lmdb", true, lmdb_open, lmdb_lookup, lmdb_close };

/* One attempt at writing kv into tmp with the given map size. */
static int lmdb_write_once(const char *tmp, const struct table_kv *kv, size_t mapsize, int *mdb_rc)
{
	MDB_env *env;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	int rc = mdb_env_create(&env);
	if (rc != 0)
		goto out0;
	if ((rc = mdb_env_set_mapsize(env, mapsize)) != 0 ||
	    (rc = mdb_env_open(env, tmp, MDB_NOSUBDIR | MDB_NOLOCK, 0644)) != 0)
		goto out;
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
		goto out;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0)
		goto out;
	for (size_t i = 0; i < kv->n; i++) {
		MDB_val k = { strlen(kv->keys[i]), kv->keys[i] };
		MDB_val v = { strlen(kv->vals[i]), kv->vals[i] };
		/* keys are sorted and unique: append is exact and fast */
		if ((rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND)) != 0)
			goto out;
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc == 0)
		rc = mdb_env_sync(env, 1);
out:
	if (txn)
		mdb_txn_abort(txn);
	mdb_env_close(env);
out0:
	*mdb_rc = rc;
	return rc == 0 ? 0 : -1;
}

int table_lmdb_write(const char *path, const struct table_kv *kv, const char **error_r)
{
	for (size_t i = 0; i < kv->n; i++) {
		size_t kl = strlen(kv->keys[i]);
		if (kl == 0 || kl > 511) {
			*error_r = table_error_set("%s:%d: key of %zu bytes (1..511 allowed)", path,
						   kv->lines[i], kl);
			return -1;
		}
	}
	char *final = xasprintf("%s.lmdb", path);
	char *tmp = xasprintf("%s.lmdb.%ld.tmp", path, (long)getpid());
	size_t bytes = 0;
	for (size_t i = 0; i < kv->n; i++)
		bytes += strlen(kv->keys[i]) + strlen(kv->vals[i]) + 64;
	size_t mapsize = 1024 * 1024 + bytes * 2;
	int rc, mdb_rc;
	for (;;) {
		(void)unlink(tmp);
		rc = lmdb_write_once(tmp, kv, mapsize, &mdb_rc);
		if (rc == 0 || mdb_rc != MDB_MAP_FULL || mapsize > ((size_t)1 << 40))
			break;
		mapsize *= 2;
	}
	if (rc < 0) {
		*error_r = table_error_set("%s: %s", tmp, mdb_strerror(mdb_rc));
		(void)unlink(tmp);
	} else if (rename(tmp, final) < 0) {
		*error_r = table_error_set("rename %s to %s: %s", tmp, final, strerror(errno));
		(void)unlink(tmp);
		rc = -1;
	} else {
		/* make the rename itself durable */
		char *dir = xstrdup(final);
		char *slash = strrchr(dir, '/');
		if (slash == dir)
			slash[1] = 0;
		else if (slash)
			*slash = 0;
		int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			(void)fsync(fd);
			close(fd);
		}
		free(dir);
	}
	free(tmp);
	free(final);
	return rc;
}

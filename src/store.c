/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store-internal.h"

#define STORE_FILE_NAME "provwatch.db"
#define STORE_APPLICATION_ID 0x70727677 /* "prvw": tells our database from someone else's */
#define STORE_BUSY_TIMEOUT_MS 5000

/* Schema upgrades: entry i takes the database from user_version i to i + 1, inside the one
 * transaction that also sets the new user_version. Append, never edit a shipped entry.
 *
 * orders is a rowid table rather than WITHOUT ROWID: snapshots are often larger than 1/20 of a
 * page, and WITHOUT ROWID keeps whole rows in the interior b-tree cells, which ruins fan-out.
 * The primary key's automatic index keeps lookups and upserts O(log n).
 * events uses AUTOINCREMENT so seq never goes backwards even after the table empties: webhook
 * delivery pages with "seq > after_seq", and dead letters are keyed by (webhook, seq).
 * queue_seq serves both the "is this event still queued anywhere" check and the foreign key. */
static const char *const schema_upgrades[] = {
        "CREATE TABLE orders ("
        "        customer_id TEXT NOT NULL,"
        "        order_id TEXT NOT NULL,"
        "        snapshot TEXT,"
        "        last_poll INTEGER NOT NULL DEFAULT 0,"
        "        last_success INTEGER NOT NULL DEFAULT 0,"
        "        next_poll INTEGER NOT NULL DEFAULT 0,"
        "        not_found_since INTEGER NOT NULL DEFAULT 0,"
        "        consecutive_failures INTEGER NOT NULL DEFAULT 0,"
        "        fetch_failed INTEGER NOT NULL DEFAULT 0,"
        "        not_found INTEGER NOT NULL DEFAULT 0,"
        "        settled INTEGER NOT NULL DEFAULT 0,"
        "        last_http_status INTEGER NOT NULL DEFAULT 0,"
        "        last_error TEXT,"
        "        PRIMARY KEY (customer_id, order_id));"
        "CREATE TABLE events ("
        "        seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        "        event_id TEXT NOT NULL UNIQUE,"
        "        event_type TEXT NOT NULL,"
        "        customer_id TEXT NOT NULL,"
        "        order_id TEXT NOT NULL,"
        "        created INTEGER NOT NULL,"
        "        body TEXT NOT NULL);"
        "CREATE TABLE queue ("
        "        webhook TEXT NOT NULL,"
        "        seq INTEGER NOT NULL REFERENCES events (seq),"
        "        attempts INTEGER NOT NULL DEFAULT 0,"
        "        next_attempt INTEGER NOT NULL DEFAULT 0,"
        "        last_error TEXT,"
        "        PRIMARY KEY (webhook, seq)) WITHOUT ROWID;"
        "CREATE INDEX queue_seq ON queue (seq);"
        "CREATE TABLE dead_letters ("
        "        webhook TEXT NOT NULL,"
        "        seq INTEGER NOT NULL,"
        "        event_id TEXT NOT NULL,"
        "        event_type TEXT NOT NULL,"
        "        customer_id TEXT NOT NULL,"
        "        order_id TEXT NOT NULL,"
        "        body TEXT NOT NULL,"
        "        attempts INTEGER NOT NULL,"
        "        last_error TEXT,"
        "        reason TEXT,"
        "        created INTEGER NOT NULL,"
        "        dead_at INTEGER NOT NULL,"
        "        PRIMARY KEY (webhook, seq));"
        "CREATE TABLE kv ("
        "        key TEXT PRIMARY KEY NOT NULL,"
        "        value TEXT NOT NULL);",
        /* 2: see OrderRow.answer_digest */
        "ALTER TABLE orders ADD COLUMN answer_digest BLOB;",
        /* 3: discovery (SPEC §8), stalled orders (SPEC §9), the summary webhook formats show (SPEC §10).
         * discovery_seen holds the de-duplication keys of activity log records already processed. */
        "ALTER TABLE orders ADD COLUMN names TEXT;"
        "ALTER TABLE orders ADD COLUMN discovered INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE orders ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE orders ADD COLUMN stalled INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE events ADD COLUMN summary TEXT;"
        "CREATE TABLE discovery_seen ("
        "        key TEXT PRIMARY KEY NOT NULL,"
        "        operation_date INTEGER NOT NULL) WITHOUT ROWID;",
};

#define STORE_SCHEMA_VERSION ((int64_t) ELEMENTSOF(schema_upgrades))


/* the columns after the snapshot, in the order order_row_from_statement() reads them */
#define ORDER_COLUMNS_AFTER_SNAPSHOT                                                                      \
        "last_poll, last_success, next_poll, not_found_since, consecutive_failures, fetch_failed, "      \
        "not_found, settled, last_http_status, last_error, answer_digest, names, discovered, changed, "  \
        "stalled"
#define ORDER_COLUMNS "customer_id, order_id, snapshot, " ORDER_COLUMNS_AFTER_SNAPSHOT

static const char *const statement_sql[_STMT_MAX] = {
        [STMT_BEGIN] = "BEGIN IMMEDIATE",
        [STMT_COMMIT] = "COMMIT",
        [STMT_ROLLBACK] = "ROLLBACK",
        [STMT_SAVEPOINT] = "SAVEPOINT store_op",
        [STMT_RELEASE] = "RELEASE store_op",
        [STMT_ROLLBACK_TO] = "ROLLBACK TO store_op",
        [STMT_PUT_ORDER] = "INSERT INTO orders (" ORDER_COLUMNS ") "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) "
                           "ON CONFLICT (customer_id, order_id) DO UPDATE SET "
                           "snapshot = excluded.snapshot, last_poll = excluded.last_poll, "
                           "last_success = excluded.last_success, next_poll = excluded.next_poll, "
                           "not_found_since = excluded.not_found_since, "
                           "consecutive_failures = excluded.consecutive_failures, "
                           "fetch_failed = excluded.fetch_failed, not_found = excluded.not_found, "
                           "settled = excluded.settled, last_http_status = excluded.last_http_status, "
                           "last_error = excluded.last_error, answer_digest = excluded.answer_digest, "
                           "changed = excluded.changed, stalled = excluded.stalled",
        [STMT_PUT_ORDER_KEEP_SNAPSHOT] = "INSERT INTO orders (" ORDER_COLUMNS ") "
                                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
                                         "?16, ?17, ?18) "
                                         "ON CONFLICT (customer_id, order_id) DO UPDATE SET "
                                         "last_poll = excluded.last_poll, "
                                         "last_success = excluded.last_success, next_poll = excluded.next_poll, "
                                         "not_found_since = excluded.not_found_since, "
                                         "consecutive_failures = excluded.consecutive_failures, "
                                         "fetch_failed = excluded.fetch_failed, not_found = excluded.not_found, "
                                         "settled = excluded.settled, "
                                         "last_http_status = excluded.last_http_status, "
                                         "last_error = excluded.last_error, "
                                         "answer_digest = excluded.answer_digest, "
                                         "changed = excluded.changed, stalled = excluded.stalled",
        [STMT_TOUCH_ORDER] = "UPDATE orders SET last_poll = ?3, last_success = ?4, next_poll = ?5 "
                             "WHERE customer_id = ?1 AND order_id = ?2",
        /* the same by rowid: the table's page alone, not the key's index too */
        [STMT_TOUCH_ORDER_AT] = "UPDATE orders SET last_poll = ?3, last_success = ?4, next_poll = ?5 "
                                "WHERE rowid = ?6 AND customer_id = ?1 AND order_id = ?2",
        [STMT_GET_ORDER] = "SELECT " ORDER_COLUMNS ", rowid FROM orders WHERE customer_id = ?1 AND order_id = ?2",
        [STMT_LIST_ORDERS] = "SELECT " ORDER_COLUMNS ", rowid FROM orders ORDER BY customer_id, order_id",
        /* column 2 is whether there is a snapshot; storage order */
        [STMT_LOAD_ORDERS] = "SELECT customer_id, order_id, snapshot IS NOT NULL, " ORDER_COLUMNS_AFTER_SNAPSHOT
                             ", rowid FROM orders",
        [STMT_ADD_EVENT] = "INSERT INTO events (event_id, event_type, customer_id, order_id, created, body, summary) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        /* OR IGNORE: a webhook named twice gets the event once */
        [STMT_QUEUE_ADD] = "INSERT OR IGNORE INTO queue (webhook, seq) VALUES (?1, ?2)",
        [STMT_QUEUE_LIST] = "SELECT q.seq, e.event_id, e.event_type, e.customer_id, e.order_id, e.body, "
                            "q.attempts, e.created, q.next_attempt, e.summary "
                            "FROM queue AS q JOIN events AS e ON e.seq = q.seq "
                            "WHERE q.webhook = ?1 AND q.seq > ?2 ORDER BY q.seq LIMIT ?3",
        [STMT_QUEUE_DELETE] = "DELETE FROM queue WHERE webhook = ?1 AND seq = ?2",
        [STMT_QUEUE_RESCHEDULE] = "UPDATE queue SET attempts = ?3, next_attempt = ?4, last_error = ?5 "
                                  "WHERE webhook = ?1 AND seq = ?2",
        [STMT_EVENT_DELETE_UNREFERENCED] = "DELETE FROM events WHERE seq = ?1 "
                                           "AND NOT EXISTS (SELECT 1 FROM queue WHERE seq = ?1)",
        [STMT_DEAD_LETTER_ADD] = "INSERT INTO dead_letters (webhook, seq, event_id, event_type, "
                                 "customer_id, order_id, body, attempts, last_error, reason, created, "
                                 "dead_at) "
                                 "SELECT q.webhook, q.seq, e.event_id, e.event_type, e.customer_id, "
                                 "e.order_id, e.body, q.attempts, q.last_error, ?3, e.created, ?4 "
                                 "FROM queue AS q JOIN events AS e ON e.seq = q.seq "
                                 "WHERE q.webhook = ?1 AND q.seq = ?2",
        [STMT_QUEUE_DEPTH] = "SELECT count(*) FROM queue WHERE webhook = ?1",
        [STMT_QUEUE_DEPTH_ALL] = "SELECT count(*) FROM queue",
        [STMT_DEAD_LETTER_COUNT] = "SELECT count(*) FROM dead_letters WHERE webhook = ?1",
        [STMT_DEAD_LETTER_COUNT_ALL] = "SELECT count(*) FROM dead_letters",
        [STMT_WEBHOOK_NAMES] = "SELECT webhook FROM queue UNION SELECT webhook FROM dead_letters ORDER BY 1",
        [STMT_KV_GET] = "SELECT value FROM kv WHERE key = ?1",
        [STMT_KV_SET] = "INSERT INTO kv (key, value) VALUES (?1, ?2) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [STMT_SET_NAMES] = "INSERT INTO orders (customer_id, order_id, names, discovered) VALUES (?1, ?2, ?3, ?4) "
                           "ON CONFLICT (customer_id, order_id) DO UPDATE SET names = excluded.names, "
                           "discovered = max(discovered, excluded.discovered)",
        [STMT_SEEN_GET] = "SELECT 1 FROM discovery_seen WHERE key = ?1",
        [STMT_SEEN_ADD] = "INSERT OR IGNORE INTO discovery_seen (key, operation_date) VALUES (?1, ?2)",
        [STMT_SEEN_PRUNE] = "DELETE FROM discovery_seen WHERE operation_date < ?1",
};


/* store_open() has no Store to keep its message in when it fails. */
static _Thread_local char open_error[768];

static int errno_from_sqlite(sqlite3 *db, int rc) {
        int e;

        switch (rc & 0xff) {
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EUCLEAN;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CONSTRAINT:
                if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
                        return -EEXIST;
                return -EIO;
        case SQLITE_CANTOPEN:
                e = db ? sqlite3_system_errno(db) : 0;
                if (e == ENOENT || e == ENOTDIR)
                        return -ENOENT;
                if (e == EMFILE || e == ENFILE || e == ENOMEM || e == EROFS)
                        return -e;
                return -EACCES;
        case SQLITE_IOERR:
                if (rc == SQLITE_IOERR_NOMEM)
                        return -ENOMEM;
                /* A file system remounted read-only or a quota shows up as a plain I/O error. */
                e = db ? sqlite3_system_errno(db) : 0;
                if (e == ENOSPC || e == EDQUOT)
                        return -ENOSPC;
                if (e == EROFS)
                        return -EROFS;
                return -EIO;
        default:
                return -EIO;
        }
}

int store_set_error(Store *s, int r, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vsnprintf(s->error, sizeof s->error, format, ap);
        va_end(ap);
        log_debug("%s: %s", s->path, s->error);
        return r;
}

/* Records SQLite's message for store_error() and maps the result code. */
int store_fail(Store *s, int rc) {
        return store_set_error(s, errno_from_sqlite(s->db, rc), "%s", sqlite3_errmsg(s->db));
}

/* Also unbinds: parameters are bound SQLITE_STATIC and must not dangle between uses. */
void statement_resetp(sqlite3_stmt **st) {
        if (*st) {
                (void) sqlite3_reset(*st);
                (void) sqlite3_clear_bindings(*st);
        }
}

/* Statements are prepared on first use and kept for the life of the Store: `status` never
 * prepares the write statements, the daemon prepares each one once. */
int store_statement(Store *s, StoreStatement id, sqlite3_stmt **ret) {
        sqlite3_stmt *st = s->statements[id];

        /* After SQLITE_FULL or an I/O error SQLite may roll back the caller's whole transaction.
         * Whatever the caller does next would then be committed on its own, statement by statement:
         * refuse until it rolls back. */
        if (s->transaction && id != STMT_ROLLBACK && sqlite3_get_autocommit(s->db))
                return store_set_error(s, -ECANCELED,
                                       "The transaction was rolled back after an earlier error");

        if (!st) {
                int rc = sqlite3_prepare_v3(s->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st,
                                            NULL);
                if (rc != SQLITE_OK)
                        return store_fail(s, rc);
                s->statements[id] = st;
        } else if (sqlite3_stmt_busy(st))
                /* e.g. a store_foreach_order() callback calling store_foreach_order() */
                return store_set_error(s, -EBUSY, "Statement already in use by a caller up the stack");

        *ret = st;
        return 0;
}

/* Binds parameters 1, 2, … from a type string: 't' const char * (NULL binds NULL), 'i' int64_t
 * (cast every integer argument: varargs do not convert). Text is bound SQLITE_STATIC, without a
 * copy: the caller's strings outlive the step, and the reset clears the bindings. */
int store_bind(Store *s, sqlite3_stmt *st, const char *types, ...) {
        va_list ap;
        int rc = SQLITE_OK, i = 1;

        va_start(ap, types);
        for (const char *t = types; *t && rc == SQLITE_OK; t++, i++) {
                if (*t == 't') {
                        const char *v = va_arg(ap, const char *);
                        rc = v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
                } else
                        rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
        }
        va_end(ap);

        return rc == SQLITE_OK ? 0 : store_fail(s, rc);
}

int store_step_done(Store *s, sqlite3_stmt *st) {
        int rc = sqlite3_step(st);
        return rc == SQLITE_DONE ? 0 : store_fail(s, rc);
}

static int store_exec(Store *s, StoreStatement id) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = store_statement(s, id, &st);
        if (r < 0)
                return r;
        return store_step_done(s, st);
}

/* For clean-up paths: must not overwrite the message of the error being cleaned up after. */
static void store_exec_quiet(Store *s, StoreStatement id) {
        char saved[sizeof s->error];

        memcpy(saved, s->error, sizeof saved);
        (void) store_exec(s, id);
        memcpy(s->error, saved, sizeof saved);
}

/* Multi-statement operations run in a savepoint: atomic on their own in autocommit mode, and
 * inside a caller's transaction a failure (say a duplicate event id) undoes only the operation,
 * so the caller may still commit or roll back as it likes. */
int store_savepoint(Store *s, bool *ret_outer) {
        *ret_outer = sqlite3_get_autocommit(s->db);
        return store_exec(s, STMT_SAVEPOINT);
}

int store_savepoint_end(Store *s, bool outer, int r) {
        if (r >= 0) {
                r = store_exec(s, STMT_RELEASE);
                if (r >= 0)
                        return 0;
        }

        if (outer) {
                /* The savepoint was the transaction; SQLite may already have rolled it back. */
                if (!sqlite3_get_autocommit(s->db))
                        store_exec_quiet(s, STMT_ROLLBACK);
        } else {
                store_exec_quiet(s, STMT_ROLLBACK_TO);
                store_exec_quiet(s, STMT_RELEASE);
        }
        return r;
}

int store_column_strdup(sqlite3_stmt *st, int i, char **ret) {
        const unsigned char *t;

        if (sqlite3_column_type(st, i) == SQLITE_NULL) {
                *ret = NULL;
                return 0;
        }
        t = sqlite3_column_text(st, i);
        if (!t)
                return -ENOMEM;
        *ret = strdup((const char *) t);
        return *ret ? 0 : -ENOMEM;
}

uint64_t store_column_u64(sqlite3_stmt *st, int i) {
        /* uint64_t travels as its int64_t bit pattern, so USEC_INFINITY survives a round trip. */
        return (uint64_t) sqlite3_column_int64(st, i);
}

int store_oom(Store *s) {
        return store_set_error(s, -ENOMEM, "Out of memory");
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        struct stat st;

        if (!p)
                return -ENOMEM;
        for (char *c = p + 1;; c++) {
                if (*c != '/' && *c != 0)
                        continue;
                char saved = *c;
                *c = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *c = saved;
                if (!saved)
                        break;
        }
        if (stat(path, &st) < 0)
                return -errno;
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Runs a statement that answers one row (a PRAGMA) and hands back its first column as an integer,
 * as text (the caller frees it), or both. */
static int store_pragma(Store *s, const char *sql, int64_t *ret_int, char **ret_text) {
        sqlite3_stmt *st = NULL;
        int rc, r = 0;

        rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
                rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        rc = SQLITE_OK;
                        if (ret_int)
                                *ret_int = sqlite3_column_int64(st, 0);
                        if (ret_text) {
                                const char *t = (const char *) sqlite3_column_text(st, 0);
                                *ret_text = strdup(t ? t : "");
                                if (!*ret_text)
                                        r = store_oom(s);
                        }
                }
        }
        if (rc != SQLITE_OK)
                r = store_fail(s, rc);
        sqlite3_finalize(st);
        return r;
}

static int store_pragma_int(Store *s, const char *sql, int64_t *ret) {
        return store_pragma(s, sql, ret, NULL);
}

static int store_enable_wal(Store *s) {
        _cleanup_free_ char *mode = NULL;
        int r;

        r = store_pragma(s, "PRAGMA journal_mode = WAL", NULL, &mode);
        if (r < 0)
                return r;
        if (strcasecmp(mode, "wal") != 0)
                return store_set_error(s, -EOPNOTSUPP, "The file system does not support WAL mode");
        return 0;
}

static int store_check_identity(Store *s, int64_t *ret_version) {
        int64_t application_id, version;
        int r;

        r = store_pragma_int(s, "PRAGMA application_id", &application_id);
        if (r < 0)
                return r;
        r = store_pragma_int(s, "PRAGMA user_version", &version);
        if (r < 0)
                return r;

        if (application_id != 0 && application_id != STORE_APPLICATION_ID)
                return store_set_error(s, -EPROTO, "Not a provwatch database (application_id 0x%08llx)",
                                       (unsigned long long) application_id);
        if (version > STORE_SCHEMA_VERSION)
                return store_set_error(s, -EPROTO,
                                       "Database schema version %lld is newer than the supported "
                                       "version %lld (written by a newer provwatch?)",
                                       (long long) version, (long long) STORE_SCHEMA_VERSION);
        *ret_version = version;
        return 0;
}

/* Creates or upgrades the schema in one transaction; BEGIN IMMEDIATE makes a second process
 * opening the same fresh database wait instead of racing us. */
static int store_upgrade_schema(Store *s) {
        int64_t version = 0;
        int rc, r;

        rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return store_fail(s, rc);

        r = store_check_identity(s, &version);
        for (int64_t v = version; r >= 0 && v < STORE_SCHEMA_VERSION; v++) {
                rc = sqlite3_exec(s->db, schema_upgrades[v], NULL, NULL, NULL);
                if (rc != SQLITE_OK)
                        r = store_fail(s, rc);
        }
        if (r >= 0 && version < STORE_SCHEMA_VERSION) {
                char sql[128];
                snprintf(sql, sizeof sql, "PRAGMA user_version = %lld; PRAGMA application_id = %d",
                         (long long) STORE_SCHEMA_VERSION, STORE_APPLICATION_ID);
                rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
                if (rc != SQLITE_OK)
                        r = store_fail(s, rc);
        }
        if (r >= 0) {
                rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
                if (rc != SQLITE_OK)
                        r = store_fail(s, rc);
        }
        if (r < 0 && !sqlite3_get_autocommit(s->db))
                (void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return r;
}

static int store_setup_read_write(Store *s) {
        int rc, r;

        /* An existing file we may not write to would be opened read-only without a word. */
        if (sqlite3_db_readonly(s->db, "main") == 1)
                return store_set_error(s, -EROFS, "Database or its directory is not writable");

        r = store_enable_wal(s);
        if (r < 0)
                return r;

        /* synchronous=NORMAL in WAL mode: a commit is complete once its frames are written to the
         * WAL file, i.e. in the kernel's page cache, without waiting for fsync. So a committed
         * transaction survives the process dying at any moment (kill -9, abort, OOM kill) — the
         * guarantee of SPEC §5 — and the database is never corrupted; only a power loss or kernel
         * crash may lose the last few commits (atomically). FULL would fsync every poll.
         * secure_delete=FAST zeroes deleted content (old refresh tokens) when that costs no I/O.
         * journal_size_limit keeps one big transaction from leaving a huge WAL file behind.
         * wal_autocheckpoint: a checkpoint copies every page the WAL holds back into the database,
         * once per page however many commits changed it; every 1,000 frames (SQLite's default) a
         * `once` over 20,000 orders checkpointed 20 times, copying most pages each time (11,000
         * pwrite() and pread() and 54 fdatasync() of its 21,000 frames); every 10,000 frames
         * (up to 40 MB of WAL, truncated back to journal_size_limit) it checkpoints twice.
         * cache_size: 256 KiB. The order table is read in storage order at start-up, poll times are
         * written sorted by rowid and new rows enter the index in key order, so a larger cache
         * saves no page read: at 20,000 orders 256 KiB and 512 KiB read and write the same pages
         * (4,946 pread()s in a steady `once`, 2,125 in a first), 2 MiB saved 26,000 reads before
         * that order was kept; the cache is resident memory. */
        rc = sqlite3_exec(s->db,
                          "PRAGMA synchronous = NORMAL;"
                          "PRAGMA foreign_keys = ON;"
                          "PRAGMA secure_delete = FAST;"
                          "PRAGMA journal_size_limit = 67108864;"
                          "PRAGMA wal_autocheckpoint = 10000;"
                          "PRAGMA cache_size = -256;",
                          NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return store_fail(s, rc);

        return store_upgrade_schema(s);
}

static int store_setup_read_only(Store *s) {
        int64_t version;
        int r;

        r = store_check_identity(s, &version);
        if (r < 0)
                return r;
        if (version == 0)
                return store_set_error(s, -ENOENT, "Database is not initialized yet");
        if (version != STORE_SCHEMA_VERSION)
                return store_set_error(s, -EPROTO,
                                       "Database schema version %lld is older than %lld; "
                                       "the daemon upgrades it",
                                       (long long) version, (long long) STORE_SCHEMA_VERSION);
        return 0;
}

static int store_open_internal(Store *s, const char *directory) {
        int flags, rc, r;

        if (s->mode == STORE_READ_WRITE) {
                r = mkdir_p(directory, 0700);
                if (r < 0)
                        return store_set_error(s, r, "Failed to create directory '%s': %s", directory,
                                               strerror(-r));
                flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
        } else {
                /* SQLite would say "unable to open database file" without a reason. */
                if (access(s->path, F_OK) < 0)
                        return store_set_error(s, -errno, "%s", strerror(errno));
                flags = SQLITE_OPEN_READONLY;
        }

        /* One connection per Store, used from one thread (the event loop): no mutexes. */
        rc = sqlite3_open_v2(s->path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                if (!s->db)
                        return store_set_error(s, -ENOMEM, "Out of memory");
                r = store_fail(s, rc);
                /* SQLite retries a failed create read-only and reports that attempt's ENOENT. */
                if (s->mode == STORE_READ_WRITE && faccessat(AT_FDCWD, directory, W_OK, AT_EACCESS) < 0)
                        return store_set_error(s, -errno, "Directory '%s' is not writable: %s", directory,
                                               strerror(errno));
                return r;
        }
        (void) sqlite3_extended_result_codes(s->db, 1);
        (void) sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);

        return s->mode == STORE_READ_WRITE ? store_setup_read_write(s) : store_setup_read_only(s);
}

int store_open(const char *directory, StoreMode mode, Store **ret) {
        _cleanup_(store_freep) Store *s = NULL;
        int r;

        if (isempty(directory) || !ret || (mode != STORE_READ_WRITE && mode != STORE_READ_ONLY))
                return -EINVAL;
        open_error[0] = 0;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->mode = mode;
        s->path = strdup_printf("%s/%s", directory, STORE_FILE_NAME);
        if (!s->path)
                return -ENOMEM;

        r = store_open_internal(s, directory);
        if (r < 0) {
                snprintf(open_error, sizeof open_error, "%s: %s", s->path, s->error);
                return r;
        }

        s->error[0] = 0;
        *ret = TAKE_PTR(s);
        return 0;
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < _STMT_MAX; i++)
                sqlite3_finalize(s->statements[i]);
        /* The last connection checkpoints the WAL and removes it. */
        if (s->db)
                (void) sqlite3_close_v2(s->db);
        free(s->path);
        free(s);
        return NULL;
}

const char *store_error(Store *s) {
        if (!s)
                return open_error[0] ? open_error : "Success";
        return s->error[0] ? s->error : "Success";
}

const char *store_path(Store *s) {
        return s ? s->path : NULL;
}

int store_begin(Store *s) {
        int r;

        if (!s)
                return -EINVAL;
        if (s->transaction || !sqlite3_get_autocommit(s->db))
                return store_set_error(s, -EALREADY, "A transaction is already open");
        r = store_exec(s, STMT_BEGIN);
        if (r < 0)
                return r;
        s->transaction = true;
        return 0;
}

int store_commit(Store *s) {
        int r;

        if (!s)
                return -EINVAL;
        r = store_exec(s, STMT_COMMIT);
        /* A failed COMMIT (disk full, busy) may leave the transaction open; nobody would ever close
         * it, and every later write would be stuck behind it. */
        if (r < 0 && !sqlite3_get_autocommit(s->db))
                store_exec_quiet(s, STMT_ROLLBACK);
        s->transaction = false;
        return r;
}

void store_rollback(Store *s) {
        if (!s)
                return;
        s->transaction = false;
        /* After some errors (SQLITE_FULL, I/O errors) SQLite has rolled back already. */
        if (!sqlite3_get_autocommit(s->db))
                store_exec_quiet(s, STMT_ROLLBACK);
}

int store_kv_get(Store *s, const char *key, char **ret) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        char *value;
        int rc, r;

        if (!s || !key || !ret)
                return -EINVAL;

        r = store_statement(s, STMT_KV_GET, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "t", key);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return store_set_error(s, -ENOENT, "No such key '%s'", key);
        if (rc != SQLITE_ROW)
                return store_fail(s, rc);
        if (store_column_strdup(st, 0, &value) < 0 || !value)
                return store_oom(s);
        *ret = value;
        return 0;
}

int store_kv_set(Store *s, const char *key, const char *value) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if (!s || !key || !value)
                return -EINVAL;

        r = store_statement(s, STMT_KV_SET, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "tt", key, value);
        if (r < 0)
                return r;
        return store_step_done(s, st);
}

int store_seen_has(Store *s, const char *key) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r = store_statement(s, STMT_SEEN_GET, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "t", key);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return 1;
        return rc == SQLITE_DONE ? 0 : store_fail(s, rc);
}

int store_seen_add(Store *s, const char *key, uint64_t operation_usec) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r = store_statement(s, STMT_SEEN_ADD, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "ti", key, (int64_t) operation_usec);
        return r < 0 ? r : store_step_done(s, st);
}

int store_seen_prune(Store *s, uint64_t before_usec) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r = store_statement(s, STMT_SEEN_PRUNE, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "i", (int64_t) before_usec);
        return r < 0 ? r : store_step_done(s, st);
}

/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"
#include "strv.h"

typedef struct Test {
        char tmp[64];
        char *dir; /* the state directory, below tmp and not created yet */
} Test;

/* The connection most recently opened in this process, captured through an auto-extension, so
 * the tests can reach behind the Store for what cannot be done through its API (page limits). */
static sqlite3 *last_db;

static int capture_db(sqlite3 *db, const char **err, const struct sqlite3_api_routines *api) {
        last_db = db;
        return SQLITE_OK;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) (S_ISDIR(st->st_mode) ? rmdir(path) : unlink(path));
        return 0;
}

static int setup(void **state) {
        Test *t = calloc(1, sizeof *t);
        assert_non_null(t);
        snprintf(t->tmp, sizeof t->tmp, "/tmp/test-store.XXXXXX");
        assert_non_null(mkdtemp(t->tmp));
        t->dir = strdup_printf("%s/state", t->tmp);
        assert_non_null(t->dir);
        *state = t;
        return 0;
}

static int teardown(void **state) {
        Test *t = *state;
        (void) chmod(t->dir, 0700);
        (void) nftw(t->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(t->dir);
        free(t);
        return 0;
}

static char *db_file(const char *dir, const char *suffix) {
        char *p = strdup_printf("%s/provwatch.db%s", dir, suffix);
        assert_non_null(p);
        return p;
}

static int64_t db_int(sqlite3 *db, const char *sql) {
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        int64_t v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

static char *db_text(sqlite3 *db, const char *sql) {
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        char *v = strdup((const char *) sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        assert_non_null(v);
        return v;
}

/* A separate connection, as another process would have. */
static sqlite3 *raw_open(const char *dir) {
        _cleanup_free_ char *path = db_file(dir, "");
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        return db;
}

static int64_t raw_int(const char *dir, const char *sql) {
        sqlite3 *db = raw_open(dir);
        int64_t v = db_int(db, sql);
        sqlite3_close(db);
        return v;
}

static void raw_exec(const char *dir, const char *sql) {
        sqlite3 *db = raw_open(dir);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
}

static Store *open_rw(const char *dir) {
        Store *s = NULL;
        assert_int_equal(store_open(dir, STORE_READ_WRITE, &s), 0);
        assert_non_null(s);
        return s;
}

static void put_order(Store *s, const char *customer_id, const char *order_id, const char *snapshot) {
        OrderRow row = {
                .customer_id = (char *) customer_id,
                .order_id = (char *) order_id,
                .snapshot_json = (char *) snapshot,
        };
        assert_int_equal(store_put_order(s, &row), 0);
}

static int add_event(Store *s, const char *id, const char *body, const char *hook1, const char *hook2) {
        char *hooks[] = {(char *) hook1, (char *) hook2};
        size_t n = hook2 ? 2 : hook1 ? 1 : 0;
        return store_add_event(s, id, "provwatch.lineitem.added", "cust", "ord", 1234, body, NULL, hooks, n);
}

static int64_t first_seq(Store *s, const char *hook) {
        QueuedEvent *q = NULL;
        size_t n = 0;
        assert_int_equal(store_queue_list(s, hook, 0, 1, &q, &n), 0);
        assert_int_equal(n, 1);
        int64_t seq = q[0].seq;
        queued_events_free(q, n);
        return seq;
}

static uint64_t depth(Store *s, const char *hook) {
        uint64_t d = UINT64_MAX;
        assert_int_equal(store_queue_depth(s, hook, &d), 0);
        return d;
}

static uint64_t dead_count(Store *s, const char *hook) {
        uint64_t d = UINT64_MAX;
        assert_int_equal(store_dead_letter_count(s, hook, &d), 0);
        return d;
}

static void assert_names(Store *s, const char *const *expected) {
        _cleanup_(strv_freep) char **names = NULL;
        size_t i = 0;
        assert_int_equal(store_webhook_names(s, &names), 0);
        assert_non_null(names);
        for (; expected[i]; i++) {
                assert_non_null(names[i]);
                assert_string_equal(names[i], expected[i]);
        }
        assert_null(names[i]);
}

static void test_open_create_reopen(void **state) {
        Test *t = *state;
        _cleanup_free_ char *nested = strdup_printf("%s/a/b/state", t->tmp);
        _cleanup_free_ char *parent = strdup_printf("%s/a", t->tmp);
        _cleanup_free_ char *file = strdup_printf("%s/file", t->tmp);
        Store *s = NULL;
        struct stat st;

        /* read-only never creates anything */
        assert_int_equal(store_open(nested, STORE_READ_ONLY, &s), -ENOENT);
        assert_null(s);
        assert_non_null(strstr(store_error(NULL), "provwatch.db"));
        assert_int_equal(stat(parent, &st), -1);

        s = open_rw(nested);
        sqlite3 *db = last_db;
        assert_int_equal(stat(nested, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(stat(parent, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        _cleanup_free_ char *path = db_file(nested, "");
        assert_string_equal(store_path(s), path);
        assert_string_equal(store_error(s), "Success");

        _cleanup_free_ char *mode = db_text(db, "PRAGMA journal_mode");
        assert_string_equal(mode, "wal");
        assert_int_equal(db_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
        assert_int_equal(db_int(db, "PRAGMA foreign_keys"), 1);
        assert_int_equal(db_int(db, "PRAGMA busy_timeout"), 5000);
        assert_int_equal(db_int(db, "PRAGMA user_version"), 3);

        put_order(s, "c", "o", "{}");
        assert_int_equal(store_kv_set(s, "k", "v"), 0);
        s = store_free(s);
        assert_null(store_free(NULL));

        /* reopen read-write and read-only: same data, schema untouched */
        s = open_rw(nested);
        OrderRow row = {};
        assert_int_equal(store_get_order(s, "c", "o", &row), 0);
        assert_string_equal(row.snapshot_json, "{}");
        order_row_done(&row);
        s = store_free(s);

        assert_int_equal(store_open(nested, STORE_READ_ONLY, &s), 0);
        _cleanup_free_ char *v = NULL;
        assert_int_equal(store_kv_get(s, "k", &v), 0);
        assert_string_equal(v, "v");
        s = store_free(s);

        /* a file where the directory should be */
        int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(store_open(file, STORE_READ_WRITE, &s), -ENOTDIR);
        assert_int_equal(store_open("", STORE_READ_WRITE, &s), -EINVAL);
        assert_null(s);
}

static void test_orders_roundtrip(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);
        OrderRow got = {};

        OrderRow row = {
                .customer_id = (char *) "1b2f7c9e-customer",
                .order_id = (char *) "order-ü-1",
                .snapshot_json = (char *) "{\"items\":[{\"number\":0,\"status\":\"fulfilled\"}]}",
                .last_poll_usec = 1700000000000001,
                .last_success_usec = 1700000000000000,
                .next_poll_usec = 1700000120000000,
                .not_found_since_usec = 0,
                .consecutive_failures = 3,
                .fetch_failed = true,
                .not_found = false,
                .settled = true,
                .last_http_status = 503,
                .last_error = (char *) "HTTP 503: 'Service Unavailable'",
                .answer_digest = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0},
                .has_answer_digest = true,
        };
        assert_int_equal(store_put_order(s, &row), 0);
        assert_int_equal(store_get_order(s, row.customer_id, row.order_id, &got), 0);
        assert_true(got.has_answer_digest);
        assert_memory_equal(got.answer_digest, row.answer_digest, sizeof row.answer_digest);
        assert_string_equal(got.customer_id, row.customer_id);
        assert_string_equal(got.order_id, row.order_id);
        assert_string_equal(got.snapshot_json, row.snapshot_json);
        assert_int_equal(got.last_poll_usec, row.last_poll_usec);
        assert_int_equal(got.last_success_usec, row.last_success_usec);
        assert_int_equal(got.next_poll_usec, row.next_poll_usec);
        assert_int_equal(got.not_found_since_usec, 0);
        assert_int_equal(got.consecutive_failures, 3);
        assert_true(got.fetch_failed);
        assert_false(got.not_found);
        assert_true(got.settled);
        assert_int_equal(got.last_http_status, 503);
        assert_string_equal(got.last_error, row.last_error);
        order_row_done(&got);
        assert_null(got.customer_id);

        /* replace: NULLs and extreme values survive */
        row.snapshot_json = NULL;
        row.last_error = NULL;
        row.next_poll_usec = USEC_INFINITY;
        row.not_found_since_usec = 42;
        row.fetch_failed = false;
        row.not_found = true;
        row.consecutive_failures = 0;
        row.last_http_status = 0;
        row.has_answer_digest = false;
        assert_int_equal(store_put_order(s, &row), 0);
        assert_int_equal(store_get_order(s, row.customer_id, row.order_id, &got), 0);
        assert_false(got.has_answer_digest);
        assert_null(got.snapshot_json);
        assert_null(got.last_error);
        assert_true(got.next_poll_usec == USEC_INFINITY);
        assert_int_equal(got.not_found_since_usec, 42);
        assert_false(got.fetch_failed);
        assert_true(got.not_found);
        assert_int_equal(got.consecutive_failures, 0);
        order_row_done(&got);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM orders"), 1);

        assert_int_equal(store_get_order(s, row.customer_id, "other", &got), -ENOENT);
        assert_string_equal(store_error(s), "No such order");
        assert_null(got.customer_id);

        row.customer_id = NULL;
        assert_int_equal(store_put_order(s, &row), -EINVAL);
        assert_int_equal(store_put_order_keep_snapshot(s, &row), -EINVAL);
}

static void test_orders_keep_snapshot(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);
        OrderRow got = {};

        /* a new row takes the snapshot given (here none) */
        OrderRow row = {.customer_id = (char *) "c", .order_id = (char *) "o", .last_poll_usec = 1};
        assert_int_equal(store_put_order_keep_snapshot(s, &row), 0);
        assert_int_equal(store_get_order(s, "c", "o", &got), 0);
        assert_null(got.snapshot_json);
        assert_int_equal(got.last_poll_usec, 1);
        order_row_done(&got);

        row.snapshot_json = (char *) "{\"items\":[]}";
        assert_int_equal(store_put_order(s, &row), 0);

        /* an existing one keeps its snapshot; everything else is replaced */
        row.snapshot_json = NULL;
        row.last_poll_usec = 2;
        row.settled = true;
        row.has_answer_digest = true;
        row.answer_digest[0] = 7;
        assert_int_equal(store_put_order_keep_snapshot(s, &row), 0);
        assert_int_equal(store_get_order(s, "c", "o", &got), 0);
        assert_string_equal(got.snapshot_json, "{\"items\":[]}");
        assert_int_equal(got.last_poll_usec, 2);
        assert_true(got.settled);
        assert_true(got.has_answer_digest);
        assert_int_equal(got.answer_digest[0], 7);
        order_row_done(&got);
}

typedef struct ForeachState {
        Store *store;
        unsigned n;
        char last[64];
        unsigned stop_at;
        int nested_result;
} ForeachState;

static int count_cb(const OrderRow *row, void *userdata) {
        ForeachState *f = userdata;
        char key[64];

        snprintf(key, sizeof key, "%s/%s", row->customer_id, row->order_id);
        if (f->n > 0 && strcmp(f->last, key) >= 0)
                return -EBADMSG; /* not in order */
        snprintf(f->last, sizeof f->last, "%s", key);
        if (!row->snapshot_json || !strstr(row->snapshot_json, row->order_id))
                return -EBADMSG;
        f->n++;
        if (f->stop_at && f->n == f->stop_at)
                return -ECANCELED;
        return 0;
}

static int count_only_cb(const OrderRow *row, void *userdata) {
        (*(unsigned *) userdata)++;
        return 0;
}

static int nested_cb(const OrderRow *row, void *userdata) {
        ForeachState *f = userdata;
        ForeachState inner = {};

        f->nested_result = store_foreach_order(f->store, count_cb, &inner);
        /* writing from the callback is allowed */
        OrderRow copy = *row;
        copy.consecutive_failures = 7;
        return store_put_order(f->store, &copy);
}

static void test_orders_foreach(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);
        ForeachState f = {};

        assert_int_equal(store_foreach_order(s, count_cb, &f), 0);
        assert_int_equal(f.n, 0);

        assert_int_equal(store_begin(s), 0);
        for (unsigned i = 0; i < 1000; i++) {
                unsigned k = (i * 7919) % 1000; /* not in key order */
                char c[16], o[16], snap[64];
                snprintf(c, sizeof c, "c%02u", k % 10);
                snprintf(o, sizeof o, "o%04u", k);
                snprintf(snap, sizeof snap, "{\"order\":\"%s\"}", o);
                put_order(s, c, o, snap);
        }
        assert_int_equal(store_commit(s), 0);

        f = (ForeachState) {};
        assert_int_equal(store_foreach_order(s, count_cb, &f), 0);
        assert_int_equal(f.n, 1000);
        assert_string_equal(f.last, "c09/o0999");

        f = (ForeachState) {.stop_at = 10};
        assert_int_equal(store_foreach_order(s, count_cb, &f), -ECANCELED);
        assert_int_equal(f.n, 10);

        /* the statement was reset: iterating again starts from the beginning */
        f = (ForeachState) {};
        assert_int_equal(store_foreach_order(s, count_cb, &f), 0);
        assert_int_equal(f.n, 1000);

        f = (ForeachState) {.store = s};
        assert_int_equal(store_foreach_order(s, nested_cb, &f), 0);
        assert_int_equal(f.nested_result, -EBUSY);
        OrderRow row = {};
        assert_int_equal(store_get_order(s, "c05", "o0555", &row), 0);
        assert_int_equal(row.consecutive_failures, 7);
        order_row_done(&row);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM orders WHERE consecutive_failures = 7"),
                         1000);
}

typedef struct LoadState {
        unsigned n;
        int64_t last_rowid;
        unsigned with_snapshot;
} LoadState;

static int load_cb(const OrderRow *row, void *userdata) {
        LoadState *l = userdata;
        if (row->store_rowid <= l->last_rowid || row->snapshot_json)
                return -EBADMSG; /* not in storage order, or the snapshot read after all */
        l->last_rowid = row->store_rowid;
        l->with_snapshot += row->snapshot_stored;
        l->n++;
        return 0;
}

static int64_t rowid_of(const char *dir, const char *order_id) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT rowid FROM orders WHERE order_id = '%s'", order_id);
        return raw_int(dir, sql);
}

static void test_orders_load_and_touch(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);

        /* writes learn where the row is */
        int64_t learnt[300] = {};
        assert_int_equal(store_begin(s), 0);
        for (unsigned i = 0; i < 300; i++) {
                unsigned k = (i * 7919) % 300; /* not in key order */
                char o[16];
                snprintf(o, sizeof o, "o%04u", k);
                OrderRow row = {.customer_id = (char *) "c", .order_id = o,
                                .snapshot_json = k % 3 ? (char *) "{\"items\":[]}" : NULL};
                assert_int_equal(k % 2 ? store_put_order(s, &row) : store_put_order_keep_snapshot(s, &row), 0);
                learnt[k] = row.store_rowid;
                assert_true(row.snapshot_stored == (k % 3 != 0));
        }
        assert_int_equal(store_commit(s), 0);
        for (unsigned k = 0; k < 300; k++) {
                char o[16];
                snprintf(o, sizeof o, "o%04u", k);
                assert_int_equal(learnt[k], rowid_of(t->dir, o));
        }
        /* an update keeps what the row knew (here nothing: it is a hint), even after other inserts */
        OrderRow row = {.customer_id = (char *) "c", .order_id = (char *) "o0007", .last_poll_usec = 5};
        assert_int_equal(store_put_order_keep_snapshot(s, &row), 0);
        assert_int_equal(row.store_rowid, 0);
        row.store_rowid = rowid_of(t->dir, "o0007");
        assert_int_equal(store_put_order_keep_snapshot(s, &row), 0);
        assert_int_equal(row.store_rowid, rowid_of(t->dir, "o0007"));

        /* start-up: storage order, no snapshot text, but whether there is one */
        LoadState l = {};
        assert_int_equal(store_load_orders(s, load_cb, &l), 0);
        assert_int_equal(l.n, 300);
        assert_int_equal(l.with_snapshot, 200);
        OrderRow got = {};
        assert_int_equal(store_get_order(s, "c", "o0008", &got), 0);
        assert_int_equal(got.store_rowid, rowid_of(t->dir, "o0008"));
        assert_true(got.snapshot_stored && got.snapshot_json);

        /* poll times by rowid */
        got.last_poll_usec = 11;
        got.last_success_usec = 12;
        got.next_poll_usec = 13;
        assert_int_equal(store_touch_order(s, &got), 0);
        assert_int_equal(raw_int(t->dir, "SELECT last_poll + last_success + next_poll FROM orders "
                                         "WHERE order_id = 'o0008'"), 36);
        /* a rowid that is another row's now: that row stays as it was, this one is found by its ids */
        got.store_rowid = rowid_of(t->dir, "o0009");
        got.last_poll_usec = 21;
        assert_int_equal(store_touch_order(s, &got), 0);
        assert_int_equal(raw_int(t->dir, "SELECT last_poll FROM orders WHERE order_id = 'o0008'"), 21);
        assert_int_equal(raw_int(t->dir, "SELECT last_poll FROM orders WHERE order_id = 'o0009'"), 0);
        /* a rowid of no row, and no row at all: nothing written, no error */
        got.store_rowid = 1000000;
        got.last_poll_usec = 31;
        assert_int_equal(store_touch_order(s, &got), 0);
        assert_int_equal(raw_int(t->dir, "SELECT last_poll FROM orders WHERE order_id = 'o0008'"), 31);
        free(got.order_id);
        got.order_id = strdup("absent");
        assert_int_equal(store_touch_order(s, &got), 0);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM orders"), 300);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM orders WHERE last_poll = 31"), 1);
        order_row_done(&got);
}

static void test_add_event_webhooks(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);

        assert_names(s, (const char *const[]) {NULL});
        assert_int_equal(add_event(s, "e0", "{}", NULL, NULL), 0);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM events"), 0);
        assert_int_equal(depth(s, NULL), 0);

        assert_int_equal(add_event(s, "e1", "{\"n\":1}", "a", NULL), 0);
        assert_int_equal(depth(s, "a"), 1);
        assert_int_equal(depth(s, "b"), 0);
        assert_int_equal(depth(s, NULL), 1);
        assert_names(s, (const char *const[]) {"a", NULL});

        assert_int_equal(add_event(s, "e2", "{\"n\":2}", "b", "a"), 0);
        assert_int_equal(depth(s, "a"), 2);
        assert_int_equal(depth(s, "b"), 1);
        assert_int_equal(depth(s, NULL), 3);
        assert_names(s, (const char *const[]) {"a", "b", NULL});

        /* the same webhook twice queues once */
        assert_int_equal(add_event(s, "e3", "{\"n\":3}", "b", "b"), 0);
        assert_int_equal(depth(s, "b"), 2);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM events"), 3);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM queue"), 4);

        assert_int_equal(store_add_event(s, "e4", "x", "c", "o", 0, NULL, NULL, NULL, 0), -EINVAL);
}

static void test_queue_list_paging(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);
        QueuedEvent *q = NULL;
        size_t n = SIZE_MAX;
        int64_t after = 0;

        assert_int_equal(store_begin(s), 0);
        for (unsigned i = 0; i < 10; i++) {
                char id[16], body[32];
                snprintf(id, sizeof id, "e%u", i);
                snprintf(body, sizeof body, "{\"i\":%u,\"s\":\"→\"}", i);
                assert_int_equal(add_event(s, id, body, "hook", NULL), 0);
                if (i % 2 == 0) {
                        snprintf(id, sizeof id, "other%u", i);
                        assert_int_equal(add_event(s, id, "{}", "other", NULL), 0);
                }
        }
        assert_int_equal(store_commit(s), 0);

        assert_int_equal(store_queue_list(s, "hook", 0, 0, &q, &n), 0);
        assert_int_equal(n, 10);
        for (unsigned i = 0; i < n; i++) {
                char id[16], body[32];
                snprintf(id, sizeof id, "e%u", i);
                snprintf(body, sizeof body, "{\"i\":%u,\"s\":\"→\"}", i);
                assert_string_equal(q[i].event_id, id);
                assert_string_equal(q[i].body, body);
                assert_string_equal(q[i].event_type, "provwatch.lineitem.added");
                assert_string_equal(q[i].customer_id, "cust");
                assert_string_equal(q[i].order_id, "ord");
                assert_int_equal(q[i].created_usec, 1234);
                assert_int_equal(q[i].attempts, 0);
                assert_int_equal(q[i].next_attempt_usec, 0);
                if (i > 0)
                        assert_true(q[i].seq > q[i - 1].seq);
        }
        queued_events_free(q, n);

        /* pages of 4: 4, 4, 2, then nothing */
        size_t sizes[] = {4, 4, 2, 0};
        unsigned seen = 0;
        for (size_t p = 0; p < ELEMENTSOF(sizes); p++) {
                q = NULL;
                assert_int_equal(store_queue_list(s, "hook", after, 4, &q, &n), 0);
                assert_int_equal(n, sizes[p]);
                for (size_t i = 0; i < n; i++) {
                        char id[16];
                        snprintf(id, sizeof id, "e%u", seen++);
                        assert_string_equal(q[i].event_id, id);
                        assert_true(q[i].seq > after);
                        after = q[i].seq;
                }
                if (n == 0)
                        assert_null(q);
                queued_events_free(q, n);
        }
        assert_int_equal(seen, 10);

        assert_int_equal(store_queue_list(s, "other", 0, 100, &q, &n), 0);
        assert_int_equal(n, 5);
        assert_string_equal(q[4].event_id, "other8");
        queued_events_free(q, n);

        assert_int_equal(store_queue_list(s, "nobody", 0, 100, &q, &n), 0);
        assert_int_equal(n, 0);
        assert_null(q);
}

static void test_queue_delivered(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);

        assert_int_equal(add_event(s, "e1", "{\"x\":1}", "a", "b"), 0);
        assert_int_equal(add_event(s, "e2", "{\"x\":2}", "a", NULL), 0);
        int64_t seq = first_seq(s, "a");
        assert_int_equal(first_seq(s, "b"), seq);

        assert_int_equal(store_queue_delivered(s, "a", seq), 0);
        assert_int_equal(depth(s, "a"), 1);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM events"), 2); /* still queued for b */
        assert_int_equal(store_queue_delivered(s, "a", seq), -ENOENT);
        assert_non_null(strstr(store_error(s), "'a'"));

        assert_int_equal(store_queue_delivered(s, "b", seq), 0);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM events"), 1);
        assert_int_equal(depth(s, "b"), 0);

        /* in a transaction, then rolled back: nothing happened */
        int64_t seq2 = first_seq(s, "a");
        assert_int_equal(store_begin(s), 0);
        assert_int_equal(store_queue_delivered(s, "a", seq2), 0);
        store_rollback(s);
        assert_int_equal(depth(s, "a"), 1);
        assert_int_equal(store_queue_delivered(s, "a", seq2), 0);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM events"), 0);
        assert_int_equal(depth(s, NULL), 0);

        /* seq keeps growing after the events table emptied */
        assert_int_equal(add_event(s, "e3", "{}", "a", NULL), 0);
        assert_true(first_seq(s, "a") > seq2);
}

static void test_queue_reschedule(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);
        QueuedEvent *q = NULL;
        size_t n = 0;

        assert_int_equal(add_event(s, "e1", "{}", "a", "b"), 0);
        int64_t seq = first_seq(s, "a");

        assert_int_equal(store_queue_reschedule(s, "a", seq, 3, 1700000000000000, "HTTP 500"), 0);
        assert_int_equal(store_queue_list(s, "a", 0, 0, &q, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(q[0].attempts, 3);
        assert_int_equal(q[0].next_attempt_usec, 1700000000000000);
        queued_events_free(q, n);
        _cleanup_free_ char *err = NULL;
        {
                sqlite3 *db = raw_open(t->dir);
                err = db_text(db, "SELECT last_error FROM queue WHERE webhook = 'a'");
                sqlite3_close(db);
        }
        assert_string_equal(err, "HTTP 500");

        /* the other webhook's entry is untouched */
        assert_int_equal(store_queue_list(s, "b", 0, 0, &q, &n), 0);
        assert_int_equal(q[0].attempts, 0);
        queued_events_free(q, n);

        assert_int_equal(store_queue_reschedule(s, "a", seq + 1, 1, 0, NULL), -ENOENT);
        assert_int_equal(store_queue_reschedule(s, "c", seq, 1, 0, NULL), -ENOENT);
}

static void test_dead_letter(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);

        assert_int_equal(add_event(s, "e1", "{\"body\":1}", "a", "b"), 0);
        assert_int_equal(add_event(s, "e2", "{\"body\":2}", "a", NULL), 0);
        int64_t seq = first_seq(s, "a");
        assert_int_equal(store_queue_reschedule(s, "a", seq, 5, 99, "HTTP 502"), 0);

        assert_int_equal(store_queue_dead_letter(s, "a", seq, "retry-for 3d exceeded", 5555), 0);
        assert_int_equal(depth(s, "a"), 1);
        assert_int_equal(dead_count(s, "a"), 1);
        assert_int_equal(dead_count(s, "b"), 0);
        assert_int_equal(dead_count(s, NULL), 1);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM events"), 2); /* b still has e1 */

        assert_int_equal(store_queue_dead_letter(s, "b", seq, "gone", 6666), 0);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM events"), 1);
        assert_int_equal(dead_count(s, NULL), 2);
        assert_int_equal(depth(s, "b"), 0);
        assert_names(s, (const char *const[]) {"a", "b", NULL}); /* b only has dead letters */

        {
                sqlite3 *db = raw_open(t->dir);
#define DEAD_A(column) "SELECT " column " FROM dead_letters WHERE webhook = 'a'"
                _cleanup_free_ char *body = db_text(db, DEAD_A("body"));
                _cleanup_free_ char *id = db_text(db, DEAD_A("event_id"));
                _cleanup_free_ char *reason = db_text(db, DEAD_A("reason"));
                _cleanup_free_ char *last = db_text(db, DEAD_A("last_error"));
                assert_string_equal(body, "{\"body\":1}");
                assert_string_equal(id, "e1");
                assert_string_equal(reason, "retry-for 3d exceeded");
                assert_string_equal(last, "HTTP 502");
                assert_int_equal(db_int(db, DEAD_A("attempts")), 5);
                assert_int_equal(db_int(db, DEAD_A("created")), 1234);
#undef DEAD_A
                assert_int_equal(db_int(db, "SELECT dead_at FROM dead_letters WHERE webhook = 'b'"), 6666);
                sqlite3_close(db);
        }

        assert_int_equal(store_queue_dead_letter(s, "a", seq, "again", 1), -ENOENT);
        assert_int_equal(dead_count(s, NULL), 2);

        /* the rest of a's queue is unaffected */
        int64_t seq2 = first_seq(s, "a");
        assert_true(seq2 > seq);
        assert_int_equal(store_queue_delivered(s, "a", seq2), 0);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM events"), 0);
        assert_names(s, (const char *const[]) {"a", "b", NULL});
}

/* Rows of one poll result differ only in their poll times; every other field makes them differ. */
static void test_row_same_but_poll_times(void **state) {
        OrderRow a = {
                .customer_id = (char *) "c", .order_id = (char *) "o", .last_poll_usec = 1, .last_success_usec = 1,
                .next_poll_usec = 2, .last_http_status = 200, .has_answer_digest = true, .changed_usec = 5,
                .last_error = (char *) "x",
        };
        OrderRow b = a;
        b.last_poll_usec = 10;
        b.last_success_usec = 10;
        b.next_poll_usec = 20;
        b.snapshot_json = (char *) "{}";
        b.discovered_usec = 7;
        char error[] = "x";
        b.last_error = error; /* compared as text */
        assert_true(order_row_same_but_poll_times(&a, &b));

        OrderRow c;
#define DIFFERS(field, value) \
        c = b; \
        c.field = value; \
        assert_false(order_row_same_but_poll_times(&a, &c))
        DIFFERS(not_found_since_usec, 3);
        DIFFERS(consecutive_failures, 1);
        DIFFERS(last_http_status, 500);
        DIFFERS(fetch_failed, true);
        DIFFERS(not_found, true);
        DIFFERS(settled, true);
        DIFFERS(stalled, true);
        DIFFERS(last_error, NULL);
        DIFFERS(last_error, (char *) "y");
        DIFFERS(has_answer_digest, false);
        DIFFERS(answer_digest[15], 1);
        DIFFERS(changed_usec, 6);
#undef DIFFERS
}

static void test_kv(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);
        char *v = (char *) "untouched";

        assert_int_equal(store_kv_get(s, "refresh-token", &v), -ENOENT);
        assert_string_equal(v, "untouched");
        assert_non_null(strstr(store_error(s), "refresh-token"));

        assert_int_equal(store_kv_set(s, "refresh-token", "0.AAAA-first"), 0);
        assert_int_equal(store_kv_get(s, "refresh-token", &v), 0);
        assert_string_equal(v, "0.AAAA-first");
        free(v);

        assert_int_equal(store_kv_set(s, "refresh-token", "0.BBBB-rotated"), 0);
        assert_int_equal(store_kv_set(s, "refresh-token-source", "abcdef"), 0);
        assert_int_equal(store_kv_get(s, "refresh-token", &v), 0);
        assert_string_equal(v, "0.BBBB-rotated");
        free(v);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM kv"), 2);

        assert_int_equal(store_kv_set(s, "k", NULL), -EINVAL);
}

static void test_duplicate_event_id(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);
        OrderRow row = {};

        /* a duplicate, then the whole transaction rolled back */
        assert_int_equal(store_begin(s), 0);
        put_order(s, "c", "o", "{\"v\":1}");
        assert_int_equal(add_event(s, "dup", "{}", "a", "b"), 0);
        assert_int_equal(add_event(s, "dup", "{}", "a", NULL), -EEXIST);
        assert_non_null(strstr(store_error(s), "dup"));
        store_rollback(s);
        assert_int_equal(store_get_order(s, "c", "o", &row), -ENOENT);
        assert_int_equal(depth(s, NULL), 0);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM events"), 0);

        /* a duplicate undoes only itself: the transaction can still commit */
        assert_int_equal(store_begin(s), 0);
        put_order(s, "c", "o", "{\"v\":2}");
        assert_int_equal(add_event(s, "dup", "{\"first\":true}", "a", NULL), 0);
        assert_int_equal(add_event(s, "dup", "{}", "b", NULL), -EEXIST);
        assert_int_equal(store_commit(s), 0);
        assert_int_equal(depth(s, "a"), 1);
        assert_int_equal(depth(s, "b"), 0);
        assert_int_equal(store_get_order(s, "c", "o", &row), 0);
        assert_string_equal(row.snapshot_json, "{\"v\":2}");
        order_row_done(&row);

        /* outside a transaction: nothing is left open */
        assert_int_equal(add_event(s, "dup", "{}", "b", NULL), -EEXIST);
        assert_int_equal(store_begin(s), 0);
        store_rollback(s);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM events"), 1);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM queue"), 1);
}

static void test_transactions(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);
        sqlite3 *db = last_db;

        store_rollback(s); /* nothing open: a no-op */
        assert_true(store_commit(s) < 0);
        assert_int_equal(store_begin(s), 0);
        assert_int_equal(store_begin(s), -EALREADY);
        put_order(s, "c", "o", NULL);
        assert_int_equal(store_commit(s), 0);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM orders"), 1);

        /* BEGIN IMMEDIATE: the write lock is taken at once, another writer waits and gives up */
        assert_int_equal(store_begin(s), 0);
        {
                sqlite3 *other = raw_open(t->dir);
                sqlite3_busy_timeout(other, 10);
                assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL) & 0xff,
                                 SQLITE_BUSY);
                sqlite3_close(other);
        }
        store_rollback(s);
        store_rollback(s);

        /* A COMMIT that fails leaves the transaction open in SQLite; store_commit() must not. A
         * deferred foreign key violation is a reliable way to make COMMIT fail. */
        assert_int_equal(store_begin(s), 0);
        put_order(s, "c", "lost", NULL);
        assert_int_equal(sqlite3_exec(db, "PRAGMA defer_foreign_keys = ON;"
                                          "INSERT INTO queue (webhook, seq) VALUES ('w', 424242)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_equal(store_commit(s), -EIO);
        assert_non_null(strstr(store_error(s), "FOREIGN KEY"));
        assert_true(sqlite3_get_autocommit(db));
        OrderRow row = {};
        assert_int_equal(store_get_order(s, "c", "lost", &row), -ENOENT);
        assert_int_equal(depth(s, NULL), 0);
        assert_int_equal(store_begin(s), 0);
        put_order(s, "c", "kept", NULL);
        assert_int_equal(store_commit(s), 0);
        assert_int_equal(raw_int(t->dir, "SELECT count(*) FROM orders"), 2);
}

static void test_read_only_concurrent(void **state) {
        Test *t = *state;
        Store *w = open_rw(t->dir), *r = NULL;
        OrderRow row = {};

        put_order(w, "c", "committed", "{}");
        assert_int_equal(store_begin(w), 0);
        put_order(w, "c", "pending", "{}");
        assert_int_equal(add_event(w, "e1", "{}", "a", NULL), 0);

        /* the writer holds its transaction open */
        assert_int_equal(store_open(t->dir, STORE_READ_ONLY, &r), 0);
        assert_int_equal(store_get_order(r, "c", "committed", &row), 0);
        order_row_done(&row);
        assert_int_equal(store_get_order(r, "c", "pending", &row), -ENOENT);
        assert_int_equal(depth(r, NULL), 0);
        assert_names(r, (const char *const[]) {NULL});

        /* writes through the read-only store */
        put_order(w, "c", "more", "{}");
        row = (OrderRow) {.customer_id = (char *) "c", .order_id = (char *) "x"};
        assert_int_equal(store_put_order(r, &row), -EROFS);
        assert_int_equal(store_kv_set(r, "k", "v"), -EROFS);
        assert_int_equal(add_event(r, "e2", "{}", "a", NULL), -EROFS);
        row = (OrderRow) {};

        assert_int_equal(store_commit(w), 0);
        assert_int_equal(store_get_order(r, "c", "pending", &row), 0);
        order_row_done(&row);
        assert_int_equal(depth(r, "a"), 1);

        store_free(w);
        assert_int_equal(store_get_order(r, "c", "more", &row), 0);
        order_row_done(&row);
        store_free(r);

        /* no writer running, the WAL checkpointed away by the last writer to close: read-only
         * still works */
        store_free(open_rw(t->dir));
        _cleanup_free_ char *wal = db_file(t->dir, "-wal");
        assert_int_equal(access(wal, F_OK), -1);
        assert_int_equal(store_open(t->dir, STORE_READ_ONLY, &r), 0);
        unsigned n = 0;
        assert_int_equal(store_foreach_order(r, count_only_cb, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(store_get_order(r, "c", "pending", &row), 0);
        order_row_done(&row);
        store_free(r);
}

/* Children never return into cmocka and never exit by themselves: they report how far they got
 * through a pipe and wait for the parent's kill -9. For SQLite that is the same as _exit() (it has
 * no exit handlers, the kernel drops the locks either way), and a SIGKILL from outside is the one
 * death that valgrind and LeakSanitizer cannot intercept to judge a process meant to die with its
 * database open. */
_Noreturn static void child_die(int fd, char report) {
        (void) write(fd, &report, 1);
        for (;;)
                pause();
}

static char wait_child(pid_t pid, int fd) {
        char report = 0;
        int status;

        /* no assertion before the kill: a failing test must not leave a child behind */
        (void) read(fd, &report, 1);
        close(fd);
        (void) kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
        return report;
}

#define CRASH_ORDERS 1000

/* One transaction: many orders with large snapshots, so that SQLite spills uncommitted pages into
 * the WAL before COMMIT, plus an event and a kv entry. */
_Noreturn static void crash_child(const char *dir, bool commit, int fd) {
        Store *s = NULL;
        char hook[] = "hook", snapshot[4096];
        char *hooks[] = {hook};

        memset(snapshot, 's', sizeof snapshot - 1);
        snapshot[sizeof snapshot - 1] = 0;

        if (store_open(dir, STORE_READ_WRITE, &s) < 0)
                child_die(fd, 'o');
        if (store_begin(s) < 0)
                child_die(fd, 'b');
        for (unsigned i = 0; i < CRASH_ORDERS; i++) {
                char o[16];
                snprintf(o, sizeof o, "o%04u", i);
                OrderRow row = {.customer_id = (char *) "crash", .order_id = o, .snapshot_json = snapshot};
                if (store_put_order(s, &row) < 0)
                        child_die(fd, 'p');
        }
        if (store_add_event(s, "crash-e1", "t", "crash", "o0001", 1, "{}", NULL, hooks, 1) < 0 ||
            store_kv_set(s, "k", "crashed") < 0)
                child_die(fd, 'e');
        if (!commit)
                child_die(fd, 'W');
        if (store_commit(s) < 0)
                child_die(fd, 'c');
        child_die(fd, 'C');
}

static void run_crash_child(const char *dir, bool commit) {
        int fds[2];

        assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(fds[0]);
                crash_child(dir, commit, fds[1]);
        }
        close(fds[1]);
        assert_int_equal(wait_child(pid, fds[0]), commit ? 'C' : 'W');
}

static unsigned count_orders(Store *s) {
        unsigned n = 0;
        assert_int_equal(store_foreach_order(s, count_only_cb, &n), 0);
        return n;
}

static void assert_crash_state(const char *dir, bool committed) {
        _cleanup_(store_freep) Store *s = open_rw(dir);
        OrderRow row = {};
        char *v = NULL;

        assert_int_equal(count_orders(s), 1 + (committed ? CRASH_ORDERS : 0));
        assert_int_equal(store_get_order(s, "crash", "o0999", &row), committed ? 0 : -ENOENT);
        if (committed)
                assert_int_equal(strlen(row.snapshot_json), 4095);
        order_row_done(&row);
        assert_int_equal(depth(s, "hook"), committed ? 1 : 0);
        assert_int_equal(store_kv_get(s, "k", &v), committed ? 0 : -ENOENT);
        free(v);
        /* the data from before is there either way */
        assert_int_equal(store_get_order(s, "base", "o0", &row), 0);
        order_row_done(&row);
}

static void test_crash(void **state) {
        Test *t = *state;
        _cleanup_free_ char *wal = db_file(t->dir, "-wal");
        struct stat st;

        Store *s = open_rw(t->dir);
        put_order(s, "base", "o0", "{}");
        store_free(s);
        assert_int_equal(access(wal, F_OK), -1);

        /* killed in the middle of the transaction: its spilled pages are in the WAL, uncommitted */
        run_crash_child(t->dir, false);
        assert_int_equal(stat(wal, &st), 0);
        assert_true(st.st_size > 1024 * 1024);
        assert_crash_state(t->dir, false);
        /* and again, now that the WAL was recovered and checkpointed */
        run_crash_child(t->dir, false);
        assert_crash_state(t->dir, false);

        /* killed right after COMMIT: the transaction lives only in the WAL the dead process left */
        run_crash_child(t->dir, true);
        assert_int_equal(stat(wal, &st), 0);
        assert_true(st.st_size > 0);
        /* a reader comes first: a read-only connection recovers the WAL too */
        assert_int_equal(store_open(t->dir, STORE_READ_ONLY, &s), 0);
        assert_int_equal(count_orders(s), 1 + CRASH_ORDERS);
        store_free(s);
        assert_crash_state(t->dir, true);
}

/* A writer committing in a loop, killed at an arbitrary moment: every commit it reported is there,
 * and every transaction is all or nothing (each order has its event). */
static void test_crash_random(void **state) {
        Test *t = *state;
        int fds[2];

        Store *s = open_rw(t->dir);
        store_free(s);
        assert_int_equal(pipe2(fds, O_CLOEXEC), 0);

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char hook[] = "hook";
                char *hooks[] = {hook};
                close(fds[0]);
                if (store_open(t->dir, STORE_READ_WRITE, &s) < 0)
                        child_die(fds[1], 'o');
                for (unsigned i = 0;; i++) {
                        char o[32];
                        snprintf(o, sizeof o, "o%06u", i);
                        OrderRow row = {.customer_id = (char *) "c", .order_id = o, .snapshot_json = o};
                        if (store_begin(s) < 0 || store_put_order(s, &row) < 0 ||
                            store_add_event(s, o, "t", "c", o, i, o, NULL, hooks, 1) < 0 || store_commit(s) < 0)
                                child_die(fds[1], 'f');
                        if (write(fds[1], "x", 1) != 1)
                                child_die(fds[1], 'w');
                }
        }
        close(fds[1]);

        unsigned acknowledged = 0;
        bool failed = false;
        char buf[64];
        while (acknowledged < 200 && !failed) {
                ssize_t k = read(fds[0], buf, sizeof buf);
                if (k <= 0)
                        break;
                for (ssize_t i = 0; i < k; i++)
                        failed = failed || buf[i] != 'x';
                acknowledged += (unsigned) k;
        }
        (void) kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        close(fds[0]);
        assert_false(failed);
        assert_true(acknowledged >= 200);

        s = open_rw(t->dir);
        ForeachState f = {};
        assert_int_equal(store_foreach_order(s, count_cb, &f), 0);
        assert_true(f.n >= acknowledged);
        assert_int_equal(depth(s, "hook"), f.n);

        QueuedEvent *q = NULL;
        size_t n = 0;
        assert_int_equal(store_queue_list(s, "hook", 0, 0, &q, &n), 0);
        assert_int_equal(n, f.n);
        for (size_t i = 0; i < n; i++) {
                OrderRow row = {};
                assert_int_equal(store_get_order(s, "c", q[i].event_id, &row), 0);
                assert_string_equal(row.snapshot_json, q[i].body);
                order_row_done(&row);
        }
        queued_events_free(q, n);
        store_free(s);
}

static void test_enospc(void **state) {
        Test *t = *state;
        _cleanup_(store_freep) Store *s = open_rw(t->dir);
        sqlite3 *db = last_db;
        OrderRow row = {};
        size_t big_size = 1024 * 1024;
        _cleanup_free_ char *big = malloc(big_size + 1);

        assert_non_null(big);
        memset(big, 'x', big_size);
        big[big_size] = 0;

        put_order(s, "c", "old", "{\"old\":true}");
        assert_int_equal(add_event(s, "e-old", "{}", "a", NULL), 0);

        /* the database may not grow by a single page any more */
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld",
                 (long long) db_int(db, "PRAGMA page_count"));
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);

        row = (OrderRow) {.customer_id = (char *) "c", .order_id = (char *) "big", .snapshot_json = big};
        assert_int_equal(store_begin(s), 0);
        put_order(s, "c", "old", "{\"old\":false}");
        assert_int_equal(store_put_order(s, &row), -ENOSPC);
        assert_string_equal(store_error(s), "database or disk is full");
        if (sqlite3_get_autocommit(db)) {
                /* SQLite dropped the whole transaction: nothing may go on as if it were open */
                OrderRow small = {.customer_id = (char *) "c", .order_id = (char *) "small"};
                assert_int_equal(store_put_order(s, &small), -ECANCELED);
                assert_int_equal(add_event(s, "e-small", "{}", "a", NULL), -ECANCELED);
                assert_int_equal(store_commit(s), -ECANCELED);
        }
        store_rollback(s);

        row = (OrderRow) {};
        assert_int_equal(store_get_order(s, "c", "old", &row), 0);
        assert_string_equal(row.snapshot_json, "{\"old\":true}");
        order_row_done(&row);
        assert_int_equal(store_get_order(s, "c", "big", &row), -ENOENT);
        assert_int_equal(store_get_order(s, "c", "small", &row), -ENOENT);

        /* autocommit and the multi-statement paths fail cleanly too, leaving nothing open */
        row = (OrderRow) {.customer_id = (char *) "c", .order_id = (char *) "big", .snapshot_json = big};
        assert_int_equal(store_put_order(s, &row), -ENOSPC);
        assert_int_equal(add_event(s, "e-big", big, "a", "b"), -ENOSPC);
        assert_true(sqlite3_get_autocommit(db));
        assert_int_equal(depth(s, NULL), 1);
        assert_int_equal(store_begin(s), 0);
        assert_int_equal(add_event(s, "e-big", big, "a", NULL), -ENOSPC);
        store_rollback(s);
        assert_int_equal(depth(s, NULL), 1);
        assert_names(s, (const char *const[]) {"a", NULL});

        /* space returns */
        assert_int_equal(sqlite3_exec(db, "PRAGMA max_page_count = 1000000", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(store_put_order(s, &row), 0);
        assert_int_equal(add_event(s, "e-big", big, "a", NULL), 0);
        row = (OrderRow) {};
        assert_int_equal(store_get_order(s, "c", "big", &row), 0);
        assert_int_equal(strlen(row.snapshot_json), big_size);
        order_row_done(&row);
        assert_int_equal(depth(s, "a"), 2);
}

/* Returns what went wrong as a letter, 0 if all is as expected; runs as an unprivileged user. */
static char check_read_only(const char *dir, const char *empty_dir) {
        Store *s = NULL;
        int r;

        r = store_open(dir, STORE_READ_WRITE, &s);
        s = store_free(s);
        if (r != -EROFS || !strstr(store_error(NULL), "not writable"))
                return 'a';
        /* reading still works */
        r = store_open(dir, STORE_READ_ONLY, &s);
        if (r < 0)
                return 'b';
        OrderRow row = {};
        r = store_get_order(s, "c", "o", &row);
        order_row_done(&row);
        s = store_free(s);
        if (r < 0)
                return 'c';
        /* nothing there, and nothing can be created */
        r = store_open(empty_dir, STORE_READ_WRITE, &s);
        s = store_free(s);
        if (r != -EACCES)
                return 'd';
        return 0;
}

static void test_read_only_files(void **state) {
        Test *t = *state;
        _cleanup_free_ char *path = db_file(t->dir, "");
        _cleanup_free_ char *empty = strdup_printf("%s/empty", t->tmp);

        Store *s = open_rw(t->dir);
        put_order(s, "c", "o", "{}");
        store_free(s);
        assert_int_equal(mkdir(empty, 0700), 0);

        if (geteuid() == 0) {
                /* Root writes anywhere: check as nobody, in a child. Containers may not map 65534. */
                assert_int_equal(chmod(t->tmp, 0711), 0);
                if (chown(t->dir, 65534, 65534) < 0 || chown(path, 65534, 65534) < 0 ||
                    chown(empty, 65534, 65534) < 0)
                        skip();
        }
        assert_int_equal(chmod(path, 0400), 0);
        assert_int_equal(chmod(t->dir, 0700), 0); /* the reader may create -shm and -wal */
        assert_int_equal(chmod(empty, 0500), 0);

        if (geteuid() == 0) {
                int fds[2];
                assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
                pid_t pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        close(fds[0]);
                        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
                                child_die(fds[1], 'u');
                        char c = check_read_only(t->dir, empty);
                        child_die(fds[1], c ? c : 'R');
                }
                close(fds[1]);
                char report = wait_child(pid, fds[0]);
                if (report == 'u')
                        skip();
                assert_int_equal(report, 'R');
        } else
                assert_int_equal(check_read_only(t->dir, empty), 0);
        (void) chmod(empty, 0700);
}

static void test_schema_version(void **state) {
        Test *t = *state;
        Store *s = NULL;

        s = store_free(open_rw(t->dir));

        raw_exec(t->dir, "PRAGMA user_version = 99");
        assert_int_equal(store_open(t->dir, STORE_READ_WRITE, &s), -EPROTO);
        assert_null(s);
        assert_non_null(strstr(store_error(NULL), "schema version 99"));
        assert_int_equal(store_open(t->dir, STORE_READ_ONLY, &s), -EPROTO);
        assert_non_null(strstr(store_error(NULL), "99"));
        /* left as it was */
        assert_int_equal(raw_int(t->dir, "PRAGMA user_version"), 99);

        raw_exec(t->dir, "PRAGMA user_version = 3; PRAGMA application_id = 42");
        assert_int_equal(store_open(t->dir, STORE_READ_WRITE, &s), -EPROTO);
        assert_non_null(strstr(store_error(NULL), "Not a provwatch database"));

        raw_exec(t->dir, "PRAGMA application_id = 0");
        s = open_rw(t->dir);
        put_order(s, "c", "o", "{}");
        store_free(s);

        /* databases of versions 1 (no answer_digest) and 2 (before discovery) are upgraded in place,
         * their rows and queued events kept */
        static const char *const back_to_2 =
                "ALTER TABLE orders DROP COLUMN names; ALTER TABLE orders DROP COLUMN discovered;"
                "ALTER TABLE orders DROP COLUMN changed; ALTER TABLE orders DROP COLUMN stalled;"
                "ALTER TABLE events DROP COLUMN summary; DROP TABLE discovery_seen; PRAGMA user_version = 2";
        for (int version = 1; version <= 2; version++) {
                s = open_rw(t->dir);
                char *hooks[] = { (char *) "w" };
                char id[16];
                snprintf(id, sizeof id, "ev-%d", version);
                assert_int_equal(store_add_event(s, id, "t", "c", "o", 1, "{}", "summary", hooks, 1), 0);
                store_free(s);
                raw_exec(t->dir, back_to_2);
                if (version == 1)
                        raw_exec(t->dir, "ALTER TABLE orders DROP COLUMN answer_digest; PRAGMA user_version = 1");
                assert_int_equal(store_open(t->dir, STORE_READ_ONLY, &s), -EPROTO);
                s = open_rw(t->dir);
                assert_int_equal(raw_int(t->dir, "PRAGMA user_version"), 3);
                OrderRow row = {};
                assert_int_equal(store_get_order(s, "c", "o", &row), 0);
                assert_string_equal(row.snapshot_json, "{}");
                assert_false(row.has_answer_digest);
                assert_null(row.names);
                assert_int_equal(row.discovered_usec, 0);
                assert_int_equal(row.changed_usec, 0);
                assert_false(row.stalled);
                order_row_done(&row);
                QueuedEvent *q = NULL;
                size_t n = 0;
                assert_int_equal(store_queue_list(s, "w", 0, 0, &q, &n), 0);
                assert_int_equal(n, 1);
                assert_string_equal(q[0].event_id, id);
                assert_null(q[0].summary); /* from before the summary was kept */
                assert_int_equal(store_queue_delivered(s, "w", q[0].seq), 0);
                queued_events_free(q, n);
                store_free(s);
        }
}

static void test_discovery_rows(void **state) {
        Test *t = *state;
        Store *s = open_rw(t->dir);
        _cleanup_(order_names_freep) OrderNames *names = order_names_new();

        names->customer_name = strdup("Fabrikam Ltd");
        assert_int_equal(order_names_set_item(names, 0, "O:1", "Microsoft 365 E3", 25), 0);
        OrderRow row = {
                .customer_id = (char *) "c", .order_id = (char *) "o", .names = names,
                .discovered_usec = 1000, .changed_usec = 2000, .stalled = true,
        };
        assert_int_equal(store_put_order(s, &row), 0);
        OrderRow got = {};
        assert_int_equal(store_get_order(s, "c", "o", &got), 0);
        assert_string_equal(got.names->customer_name, "Fabrikam Ltd");
        /* a later poll's row does not undo names or the discovery mark */
        order_row_done(&got);
        row.names = NULL;
        row.discovered_usec = 0;
        assert_int_equal(store_put_order(s, &row), 0);
        assert_int_equal(store_get_order(s, "c", "o", &got), 0);
        assert_string_equal(got.names->customer_name, "Fabrikam Ltd");
        assert_int_equal(got.discovered_usec, 1000);
        order_row_done(&got);
        /* they are set on their own, the mark never goes back */
        assert_int_equal(store_set_order_names(s, "c", "o", NULL, 0), 0);
        assert_int_equal(store_set_order_names(s, "c", "new", names, 3000), 0);
        assert_int_equal(store_get_order(s, "c", "o", &got), 0);
        assert_null(got.names);
        assert_int_equal(got.discovered_usec, 1000);
        order_row_done(&got);
        assert_int_equal(store_get_order(s, "c", "new", &got), 0);
        assert_int_equal(got.discovered_usec, 3000);
        assert_int_equal(got.last_poll_usec, 0);
        order_row_done(&got);
        assert_int_equal(store_set_order_names(s, "c", "o", names, 0), 0);
        assert_int_equal(store_get_order(s, "c", "o", &got), 0);
        assert_string_equal(got.names->items[0].friendly_name, "Microsoft 365 E3");
        assert_int_equal(got.discovered_usec, 1000);
        assert_int_equal(got.changed_usec, 2000);
        assert_true(got.stalled);
        OrderRow copy = {};
        assert_int_equal(order_row_copy(&got, &copy), 0);
        assert_ptr_not_equal(copy.names, got.names);
        assert_string_equal(copy.names->items[0].offer_id, "O:1");
        order_row_done(&copy);
        order_row_done(&got);

        /* keep-snapshot writes carry the clock too */
        row.stalled = false;
        row.snapshot_json = (char *) "{\"items\":[]}";
        assert_int_equal(store_put_order_keep_snapshot(s, &row), 0);
        assert_int_equal(store_get_order(s, "c", "o", &got), 0);
        assert_non_null(got.names);
        assert_false(got.stalled);
        assert_null(got.snapshot_json);
        order_row_done(&got);

        /* de-duplication keys */
        assert_int_equal(store_seen_has(s, "k1"), 0);
        assert_int_equal(store_seen_add(s, "k1", 100), 0);
        assert_int_equal(store_seen_add(s, "k1", 999), 0);
        assert_int_equal(store_seen_add(s, "k2", 200), 0);
        assert_int_equal(store_seen_has(s, "k1"), 1);
        assert_int_equal(store_seen_prune(s, 150), 0);
        assert_int_equal(store_seen_has(s, "k1"), 0);
        assert_int_equal(store_seen_has(s, "k2"), 1);
        store_free(s);
}

static void test_not_a_database(void **state) {
        Test *t = *state;
        _cleanup_free_ char *path = db_file(t->dir, "");
        Store *s = NULL;
        char junk[8192];

        assert_int_equal(mkdir(t->dir, 0700), 0);

        /* an empty file is an empty database: not initialized for status, created by the daemon */
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(store_open(t->dir, STORE_READ_ONLY, &s), -ENOENT);
        assert_non_null(strstr(store_error(NULL), "not initialized"));
        s = store_free(open_rw(t->dir));

        assert_int_equal(unlink(path), 0);
        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        memset(junk, 'j', sizeof junk);
        assert_int_equal(write(fd, junk, sizeof junk), (ssize_t) sizeof junk);
        close(fd);
        assert_int_equal(store_open(t->dir, STORE_READ_WRITE, &s), -EUCLEAN);
        assert_int_equal(store_open(t->dir, STORE_READ_ONLY, &s), -EUCLEAN);
        assert_null(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_open_create_reopen, setup, teardown),
                cmocka_unit_test_setup_teardown(test_orders_roundtrip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_orders_keep_snapshot, setup, teardown),
                cmocka_unit_test(test_row_same_but_poll_times),
                cmocka_unit_test_setup_teardown(test_orders_foreach, setup, teardown),
                cmocka_unit_test_setup_teardown(test_orders_load_and_touch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_add_event_webhooks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_queue_list_paging, setup, teardown),
                cmocka_unit_test_setup_teardown(test_queue_delivered, setup, teardown),
                cmocka_unit_test_setup_teardown(test_queue_reschedule, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dead_letter, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kv, setup, teardown),
                cmocka_unit_test_setup_teardown(test_duplicate_event_id, setup, teardown),
                cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_only_concurrent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_random, setup, teardown),
                cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_only_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_schema_version, setup, teardown),
                cmocka_unit_test_setup_teardown(test_discovery_rows, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        };

        assert_int_equal(sqlite3_auto_extension((void (*)(void)) capture_db), SQLITE_OK);
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        sqlite3_reset_auto_extension();
        return r;
}

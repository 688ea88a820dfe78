/* SPDX-License-Identifier: MIT */
/* The event queues of the store: events with a queue entry per webhook that wants them, delivery,
 * retry schedules and dead letters (SPEC §5, §6). */
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"
#include "strv.h"

void queued_events_free(QueuedEvent *q, size_t n) {
        if (!q)
                return;
        for (size_t i = 0; i < n; i++) {
                free(q[i].event_id);
                free(q[i].event_type);
                free(q[i].customer_id);
                free(q[i].order_id);
                free(q[i].body);
                free(q[i].summary);
        }
        free(q);
}

static int store_add_event_internal(Store *s, const char *event_id, const char *event_type,
                                    const char *customer_id, const char *order_id, uint64_t created_usec,
                                    const char *body, const char *summary, char *const *webhooks,
                                    size_t n_webhooks) {
        sqlite3_int64 seq;
        int r;

        {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                r = store_statement(s, STMT_ADD_EVENT, &st);
                if (r < 0)
                        return r;
                r = store_bind(s, st, "ttttitt", event_id, event_type, customer_id, order_id,
                               (int64_t) created_usec, body, summary);
                if (r < 0)
                        return r;
                r = store_step_done(s, st);
                if (r < 0)
                        return r;
                seq = sqlite3_last_insert_rowid(s->db);
        }

        for (size_t i = 0; i < n_webhooks; i++) {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                r = store_statement(s, STMT_QUEUE_ADD, &st);
                if (r < 0)
                        return r;
                r = store_bind(s, st, "ti", webhooks[i], (int64_t) seq);
                if (r < 0)
                        return r;
                r = store_step_done(s, st);
                if (r < 0)
                        return r;
        }
        return 0;
}

int store_add_event(Store *s, const char *event_id, const char *event_type, const char *customer_id,
                    const char *order_id, uint64_t created_usec, const char *body, const char *summary,
                    char *const *webhooks, size_t n_webhooks) {
        bool outer;
        int r;

        if (!s || !event_id || !event_type || !customer_id || !order_id || !body ||
            (n_webhooks > 0 && !webhooks))
                return -EINVAL;
        for (size_t i = 0; i < n_webhooks; i++)
                if (!webhooks[i])
                        return -EINVAL;
        if (n_webhooks == 0)
                return 0;

        r = store_savepoint(s, &outer);
        if (r < 0)
                return r;
        r = store_add_event_internal(s, event_id, event_type, customer_id, order_id, created_usec, body, summary,
                                     webhooks, n_webhooks);
        if (r == -EEXIST)
                store_set_error(s, r, "Event id '%s' exists already", event_id);
        return store_savepoint_end(s, outer, r);
}

int store_queue_list(Store *s, const char *webhook, int64_t after_seq, size_t limit, QueuedEvent **ret,
                     size_t *ret_n) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        QueuedEvent *list = NULL;
        size_t n = 0, allocated = 0;
        int r;

        if (!s || !webhook || !ret || !ret_n)
                return -EINVAL;

        r = store_statement(s, STMT_QUEUE_LIST, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "tii", webhook, after_seq,
                       limit == 0 || limit > INT64_MAX ? (int64_t) -1 : (int64_t) limit);
        if (r < 0)
                return r;

        for (;;) {
                int rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW) {
                        r = store_fail(s, rc);
                        goto fail;
                }
                if (n == allocated) {
                        size_t k = allocated ? allocated * 2 : 16;
                        QueuedEvent *m = reallocarray(list, k, sizeof *list);
                        if (!m) {
                                r = store_oom(s);
                                goto fail;
                        }
                        list = m;
                        allocated = k;
                }
                QueuedEvent *q = &list[n++];
                *q = (QueuedEvent) {
                        .seq = sqlite3_column_int64(st, 0),
                        .attempts = (unsigned) sqlite3_column_int64(st, 6),
                        .created_usec = store_column_u64(st, 7),
                        .next_attempt_usec = store_column_u64(st, 8),
                };
                if (store_column_strdup(st, 1, &q->event_id) < 0 || store_column_strdup(st, 2, &q->event_type) < 0 ||
                    store_column_strdup(st, 3, &q->customer_id) < 0 || store_column_strdup(st, 4, &q->order_id) < 0 ||
                    store_column_strdup(st, 5, &q->body) < 0 || store_column_strdup(st, 9, &q->summary) < 0) {
                        r = store_oom(s);
                        goto fail;
                }
        }

        *ret = list;
        *ret_n = n;
        return 0;

fail:
        queued_events_free(list, n);
        return r;
}

/* Drops the event row once no webhook queue references it any more; dead letters have their own
 * copy of the body. */
static int store_delete_unreferenced_event(Store *s, int64_t seq) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = store_statement(s, STMT_EVENT_DELETE_UNREFERENCED, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "i", seq);
        if (r < 0)
                return r;
        return store_step_done(s, st);
}

/* Runs a statement that changes the queue row (webhook, seq): -ENOENT, with the store's error set,
 * when there is no such row. */
static int step_queue_row(Store *s, sqlite3_stmt *st, const char *webhook, int64_t seq) {
        int r = store_step_done(s, st);
        if (r < 0)
                return r;
        if (sqlite3_changes(s->db) == 0)
                return store_set_error(s, -ENOENT, "No queue entry %lld for webhook '%s'", (long long) seq,
                                       webhook);
        return 0;
}

static int store_queue_delete(Store *s, const char *webhook, int64_t seq) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = store_statement(s, STMT_QUEUE_DELETE, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "ti", webhook, seq);
        if (r < 0)
                return r;
        r = step_queue_row(s, st, webhook, seq);
        if (r < 0)
                return r;
        return store_delete_unreferenced_event(s, seq);
}

int store_queue_delivered(Store *s, const char *webhook, int64_t seq) {
        bool outer;
        int r;

        if (!s || !webhook)
                return -EINVAL;

        r = store_savepoint(s, &outer);
        if (r < 0)
                return r;
        return store_savepoint_end(s, outer, store_queue_delete(s, webhook, seq));
}

int store_queue_reschedule(Store *s, const char *webhook, int64_t seq, unsigned attempts,
                           uint64_t next_attempt_usec, const char *last_error) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if (!s || !webhook)
                return -EINVAL;

        r = store_statement(s, STMT_QUEUE_RESCHEDULE, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "tiiit", webhook, seq, (int64_t) attempts, (int64_t) next_attempt_usec,
                       last_error);
        if (r < 0)
                return r;
        return step_queue_row(s, st, webhook, seq);
}

static int store_dead_letter_internal(Store *s, const char *webhook, int64_t seq, const char *reason,
                                      uint64_t now_usec) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = store_statement(s, STMT_DEAD_LETTER_ADD, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "titi", webhook, seq, reason, (int64_t) now_usec);
        if (r < 0)
                return r;
        r = step_queue_row(s, st, webhook, seq);
        if (r < 0)
                return r;
        return store_queue_delete(s, webhook, seq);
}

int store_queue_dead_letter(Store *s, const char *webhook, int64_t seq, const char *reason,
                            uint64_t now_usec) {
        bool outer;
        int r;

        if (!s || !webhook)
                return -EINVAL;

        r = store_savepoint(s, &outer);
        if (r < 0)
                return r;
        return store_savepoint_end(s, outer, store_dead_letter_internal(s, webhook, seq, reason, now_usec));
}

static int store_count(Store *s, StoreStatement id, const char *webhook, uint64_t *ret) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = store_statement(s, id, &st);
        if (r < 0)
                return r;
        if (webhook) {
                r = store_bind(s, st, "t", webhook);
                if (r < 0)
                        return r;
        }
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return store_fail(s, rc);
        *ret = (uint64_t) sqlite3_column_int64(st, 0);
        return 0;
}

int store_queue_depth(Store *s, const char *webhook, uint64_t *ret) {
        if (!s || !ret)
                return -EINVAL;
        return store_count(s, webhook ? STMT_QUEUE_DEPTH : STMT_QUEUE_DEPTH_ALL, webhook, ret);
}

int store_dead_letter_count(Store *s, const char *webhook, uint64_t *ret) {
        if (!s || !ret)
                return -EINVAL;
        return store_count(s, webhook ? STMT_DEAD_LETTER_COUNT : STMT_DEAD_LETTER_COUNT_ALL, webhook, ret);
}

int store_webhook_names(Store *s, char ***ret) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        char **names = NULL;
        size_t n = 0;
        int r;

        if (!s || !ret)
                return -EINVAL;

        r = store_statement(s, STMT_WEBHOOK_NAMES, &st);
        if (r < 0)
                return r;
        for (;;) {
                int rc = sqlite3_step(st);
                if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                        r = store_fail(s, rc);
                        goto fail;
                }
                /* Grows one by one: there are a handful of webhooks. */
                char **m = reallocarray(names, n + 2, sizeof *names);
                if (!m) {
                        r = store_oom(s);
                        goto fail;
                }
                names = m;
                names[n] = NULL;
                if (rc == SQLITE_DONE)
                        break;
                if (store_column_strdup(st, 0, &names[n]) < 0 || !names[n]) {
                        r = store_oom(s);
                        goto fail;
                }
                names[++n] = NULL;
        }

        *ret = names;
        return 0;

fail:
        strv_free(names);
        return r;
}


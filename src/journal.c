/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "journal.h"

#define MAX_FIELDS 16

bool journal_available(void) {
        return access("/run/systemd/journal/socket", W_OK) == 0;
}

bool journal_enabled(JournalMode mode) {
        return mode == JOURNAL_YES || (mode == JOURNAL_AUTO && journal_available());
}

typedef struct Fields {
        struct iovec iov[MAX_FIELDS];
        size_t n;
        bool oom;
} Fields;

static void field_add(Fields *f, const char *fmt, ...) _printf_(2, 3);
static void field_add(Fields *f, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        if (f->n >= MAX_FIELDS)
                return;
        va_start(ap, fmt);
        int n = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (n < 0) {
                f->oom = true;
                return;
        }
        f->iov[f->n++] = (struct iovec) { .iov_base = s, .iov_len = (size_t) n };
}

static void fields_done(Fields *f) {
        for (size_t i = 0; i < f->n; i++)
                free(f->iov[i].iov_base);
}

static int fields_send(Fields *f) {
        int r = f->oom ? -ENOMEM : sd_journal_sendv(f->iov, (int) f->n);
        fields_done(f);
        return r;
}

int journal_send_event(const Event *e) {
        Fields f = {};
        _cleanup_free_ char *summary = event_summary(e);
        if (!summary)
                return -ENOMEM;

        field_add(&f, "MESSAGE=%s", summary);
        field_add(&f, "MESSAGE_ID=%s", event_type_message_id(e->type));
        field_add(&f, "PRIORITY=%d", event_type_priority(e->type));
        field_add(&f, "SYSLOG_IDENTIFIER=provwatch");
        field_add(&f, "EVENT_ID=%s", e->id);
        field_add(&f, "EVENT_TYPE=%s", event_type_to_string(e->type));
        field_add(&f, "CUSTOMER_ID=%s", e->customer_id);
        field_add(&f, "ORDER_ID=%s", e->order_id);

        const LineItem *li = e->new ? e->new : e->old;
        if (li) {
                field_add(&f, "LINE_ITEM_NUMBER=%lld", (long long) li->number);
                if (li->has_order_line_item_id)
                        field_add(&f, "ORDER_LINE_ITEM_ID=%lld", (long long) li->order_line_item_id);
        }
        if (e->old) {
                _cleanup_free_ char *q = quantities_format(e->old);
                field_add(&f, "OLD_STATUS=%s", e->old->status);
                field_add(&f, "OLD_QUANTITIES=%s", q ? q : "");
        }
        if (e->new) {
                _cleanup_free_ char *q = quantities_format(e->new);
                field_add(&f, "NEW_STATUS=%s", e->new->status);
                field_add(&f, "NEW_QUANTITIES=%s", q ? q : "");
        }
        return fields_send(&f);
}

int journal_send_dead_letter(const char *webhook, const char *event_id, const char *event_type,
                             const char *customer_id, const char *order_id, const char *reason) {
        Fields f = {};
        field_add(&f, "MESSAGE=Webhook '%s' gave up on event %s (%s of order %s): %s", webhook, event_id,
                  event_type, order_id, reason);
        field_add(&f, "MESSAGE_ID=%s", MESSAGE_ID_DEAD_LETTER);
        field_add(&f, "PRIORITY=%d", 3);
        field_add(&f, "SYSLOG_IDENTIFIER=provwatch");
        field_add(&f, "WEBHOOK=%s", webhook);
        field_add(&f, "EVENT_ID=%s", event_id);
        field_add(&f, "EVENT_TYPE=%s", event_type);
        field_add(&f, "CUSTOMER_ID=%s", customer_id);
        field_add(&f, "ORDER_ID=%s", order_id);
        field_add(&f, "REASON=%s", reason);
        return fields_send(&f);
}

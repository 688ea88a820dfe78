/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "alloc-util.h"
#include "message-list.h"

#define MESSAGES_PRINTED_MAX 1000

void messages_addv(MessageList *l, unsigned line, const char *fmt, va_list ap) {
        char *t;

        if (vasprintf(&t, fmt, ap) < 0) {
                l->oom = true;
                return;
        }
        if (!GREEDY_REALLOC(l->items, l->allocated, l->n + 1)) {
                free(t);
                l->oom = true;
                return;
        }
        l->items[l->n] = (Message) { .line = line, .seq = l->n, .text = t };
        l->n++;
}

void messages_add(MessageList *l, unsigned line, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        messages_addv(l, line, fmt, ap);
        va_end(ap);
}

static int message_compare(const void *a, const void *b) {
        const Message *x = a, *y = b;
        if (x->line != y->line)
                return x->line < y->line ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void messages_print(MessageList *l, FILE *f) {
        if (l->n == 0)
                return;
        qsort(l->items, l->n, sizeof(Message), message_compare);
        if (!f)
                return;
        for (size_t i = 0; i < l->n && i < MESSAGES_PRINTED_MAX; i++)
                fprintf(f, "%s\n", l->items[i].text);
        if (l->n > MESSAGES_PRINTED_MAX)
                fprintf(f, "... and %zu more errors\n", l->n - MESSAGES_PRINTED_MAX);
}

void messages_done(MessageList *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->items[i].text);
        free(l->items);
        *l = (MessageList) {};
}

/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "macro.h"

/* The problems found in a configuration, each "file:line: …", printed in line order at the end so
 * that all of them are reported, not just the first. */

/* Messages without a line (a file in orders.d, a credential) come after all others. */
#define MESSAGE_NO_LINE ((unsigned) -1)

typedef struct Message {
        unsigned line;
        size_t seq; /* keeps the order of messages on one line */
        char *text;
} Message;

typedef struct MessageList {
        Message *items;
        size_t n, allocated;
        bool oom; /* a message was lost */
} MessageList;

void messages_add(MessageList *l, unsigned line, const char *fmt, ...) _printf_(3, 4);
void messages_addv(MessageList *l, unsigned line, const char *fmt, va_list ap) _printf_(3, 0);

/* Sorts by line and writes the first 1000 to f (which may be NULL), one a line, then how many
 * more there were. */
void messages_print(MessageList *l, FILE *f);

void messages_done(MessageList *l);

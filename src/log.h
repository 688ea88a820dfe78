/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <syslog.h>

#include "util.h"

/* Operational logging (not events). Goes to the journal with CODE_FILE/CODE_LINE/CODE_FUNC when
 * log_open() decided so (running under systemd: $JOURNAL_STREAM matches stderr, or the journal is
 * forced), to stderr otherwise. Never pass a secret. Functions taking an error return -abs(error)
 * so callers can write `return log_error_errno(r, "Failed to …: %m");` (%m prints that error). */

typedef enum LogTarget {
        LOG_TARGET_AUTO,
        LOG_TARGET_STDERR,
        LOG_TARGET_JOURNAL,
} LogTarget;

void log_open(LogTarget target);
/* $PROVWATCH_INSTANCE as log_open() found it, NULL when unset: every journal entry carries it. */
const char *log_instance(void);
void log_set_max_level(int level);
int log_get_max_level(void);

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...)
        _printf_(6, 7);

#define log_full_errno(level, error, ...)                                                          \
        ({                                                                                         \
                int _l = (level), _e = (error);                                                    \
                (log_get_max_level() >= _l)                                                        \
                        ? log_internal(_l, _e, __FILE__, __LINE__, __func__, __VA_ARGS__)          \
                        : -abs(_e);                                                                \
        })
#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")

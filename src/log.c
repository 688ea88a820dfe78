/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool to_journal;

/* Under systemd, stderr is connected to the journal and $JOURNAL_STREAM names that stream; then
 * native journal entries carry CODE_FILE/CODE_LINE and the priority. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        if (!e)
                return false;
        unsigned long long dev, ino;
        if (sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        struct stat st;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == (dev_t) dev && st.st_ino == (ino_t) ino;
}

void log_open(LogTarget target) {
        switch (target) {
        case LOG_TARGET_JOURNAL:
                to_journal = true;
                break;
        case LOG_TARGET_STDERR:
                to_journal = false;
                break;
        case LOG_TARGET_AUTO:
        default:
                to_journal = stderr_is_journal();
                break;
        }
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...) {
        char buf[2048];
        va_list ap;
        int saved = errno;

        error = abs(error);
        errno = error; /* for %m */
        va_start(ap, format);
        vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);

        if (to_journal) {
                char code_file[256], code_line[32];
                snprintf(code_file, sizeof code_file, "CODE_FILE=%s", file ? file : "?");
                snprintf(code_line, sizeof code_line, "CODE_LINE=%d", line);
                if (error)
                        sd_journal_send_with_location(code_file, code_line, func, "MESSAGE=%s", buf,
                                                      "PRIORITY=%i", level, "ERRNO=%i", error,
                                                      "SYSLOG_IDENTIFIER=provwatch", NULL);
                else
                        sd_journal_send_with_location(code_file, code_line, func, "MESSAGE=%s", buf,
                                                      "PRIORITY=%i", level, "SYSLOG_IDENTIFIER=provwatch",
                                                      NULL);
        } else {
                static const char *const prefix[] = {
                        [LOG_EMERG] = "emergency: ", [LOG_ALERT] = "alert: ", [LOG_CRIT] = "critical: ",
                        [LOG_ERR] = "error: ",       [LOG_WARNING] = "warning: ", [LOG_NOTICE] = "",
                        [LOG_INFO] = "",             [LOG_DEBUG] = "debug: ",
                };
                fprintf(stderr, "provwatch: %s%s\n", prefix[level & 7], buf);
        }
        errno = saved;
        return -error;
}

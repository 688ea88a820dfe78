/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool to_journal;
static char instance[128]; /* $PROVWATCH_INSTANCE, "" when unset or unusable */

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

const char *log_instance(void) {
        return instance[0] ? instance : NULL;
}

/* Set by the template unit (provwatch@NAME): systemd's instance names are printable ASCII. */
static void instance_init(void) {
        const char *e = getenv("PROVWATCH_INSTANCE");
        size_t n = e ? strlen(e) : 0;
        instance[0] = 0;
        if (n == 0 || n >= sizeof instance)
                return;
        for (const char *p = e; *p; p++)
                if ((unsigned char) *p <= ' ' || (unsigned char) *p >= 0x7f)
                        return;
        memcpy(instance, e, n + 1);
}

void log_open(LogTarget target) {
        instance_init();
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
                char code_file[256], code_line[32], priority[32], errno_field[32], instance_field[160];
                struct iovec iov[8];
                size_t n = 0;
                _cleanup_free_ char *message = strdup_printf("MESSAGE=%s", buf);
                snprintf(code_file, sizeof code_file, "CODE_FILE=%s", file ? file : "?");
                snprintf(code_line, sizeof code_line, "CODE_LINE=%d", line);
                snprintf(priority, sizeof priority, "PRIORITY=%i", level);
#define IOV(s) (iov[n++] = (struct iovec) { .iov_base = (void *) (s), .iov_len = strlen(s) })
                IOV(message ? message : "MESSAGE=(out of memory)");
                IOV(priority);
                IOV("SYSLOG_IDENTIFIER=provwatch");
                if (error) {
                        snprintf(errno_field, sizeof errno_field, "ERRNO=%i", error);
                        IOV(errno_field);
                }
                if (instance[0]) {
                        snprintf(instance_field, sizeof instance_field, "PROVWATCH_INSTANCE=%s", instance);
                        IOV(instance_field);
                }
#undef IOV
                sd_journal_sendv_with_location(code_file, code_line, func, iov, (int) n);
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

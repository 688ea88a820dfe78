/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <limits.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static uint64_t timespec_usec(const struct timespec *ts) {
        return (uint64_t) ts->tv_sec * USEC_PER_SEC + (uint64_t) ts->tv_nsec / 1000;
}

uint64_t now_monotonic_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return timespec_usec(&ts);
}

uint64_t now_realtime_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return timespec_usec(&ts);
}

/* Without gmtime_r() and strftime(), which take the time zone lock and parse a format for every
 * event: the civil date of a day count is arithmetic ("civil_from_days", H. Hinnant, "chrono-
 * Compatible Low-Level Date Algorithms"). Years past 9999 do not fit the format: empty string. */
char *format_rfc3339(char *buf, size_t size, uint64_t realtime_usec) {
        uint64_t secs = realtime_usec / USEC_PER_SEC;
        uint64_t days = secs / 86400, sod = secs % 86400;
        uint64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
        uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
        uint64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
        uint64_t y = yoe + era * 400 + (m <= 2);
        if (size < 21 || y > 9999) {
                if (size > 0)
                        buf[0] = 0;
                return buf;
        }
        char *p = buf;
        const struct {
                uint64_t v;
                char after;
        } f[] = { { y / 100, 0 }, { y % 100, '-' }, { m, '-' }, { d, 'T' }, { sod / 3600, ':' }, { sod / 60 % 60, ':' },
                  { sod % 60, 'Z' } };
        for (size_t i = 0; i < ELEMENTSOF(f); i++) {
                *p++ = (char) ('0' + f[i].v / 10);
                *p++ = (char) ('0' + f[i].v % 10);
                if (f[i].after)
                        *p++ = f[i].after;
        }
        *p = 0;
        return buf;
}

int parse_rfc3339(const char *s, uint64_t *ret_usec) {
        struct tm tm = {};
        const char *p;
        uint64_t frac = 0;

        if (!s)
                return -EINVAL;
        p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p || s[0] < '0' || s[0] > '9')
                return -EINVAL;
        if (*p == '.') {
                unsigned digits = 0;
                for (p++; *p >= '0' && *p <= '9'; p++, digits++)
                        if (digits < 6)
                                frac = frac * 10 + (uint64_t) (*p - '0');
                if (digits == 0)
                        return -EINVAL;
                for (; digits < 6; digits++)
                        frac *= 10;
        }
        long offset = 0;
        if (*p == 'Z' || *p == 'z')
                p++;
        else if ((*p == '+' || *p == '-') && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' && p[3] == ':' &&
                 p[4] >= '0' && p[4] <= '9' && p[5] >= '0' && p[5] <= '9') {
                offset = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
                if (*p == '-')
                        offset = -offset;
                p += 6;
        } else
                return -EINVAL;
        if (*p)
                return -EINVAL;
        time_t t = timegm(&tm);
        if (t == (time_t) -1 || (int64_t) t - offset < 0)
                return -ERANGE;
        *ret_usec = (uint64_t) ((int64_t) t - offset) * USEC_PER_SEC + frac;
        return 0;
}

/* Every poll makes two UUIDs. RAND_bytes() costs a getpid() and a DRBG round each time, so random
 * bytes come from OpenSSL in blocks; a fork empties the block, so a child never repeats the parent's. */
static _Thread_local struct {
        uint8_t bytes[1024];
        size_t used;
} uuid_pool = { .used = sizeof uuid_pool.bytes };

static void uuid_pool_forget(void) {
        explicit_bzero(uuid_pool.bytes, sizeof uuid_pool.bytes);
        uuid_pool.used = sizeof uuid_pool.bytes;
}

static void uuid_register_atfork(void) {
        (void) pthread_atfork(NULL, NULL, uuid_pool_forget);
}

int uuid_random(char buf[static 37]) {
        static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
        static const char hex[] = "0123456789abcdef";
        uint8_t b[16];

        if (uuid_pool.used + sizeof b > sizeof uuid_pool.bytes) {
                (void) pthread_once(&atfork_once, uuid_register_atfork);
                if (RAND_bytes(uuid_pool.bytes, sizeof uuid_pool.bytes) != 1)
                        return -EIO;
                uuid_pool.used = 0;
        }
        memcpy(b, uuid_pool.bytes + uuid_pool.used, sizeof b);
        uuid_pool.used += sizeof b;
        b[6] = (uint8_t) ((b[6] & 0x0f) | 0x40);
        b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80);
        char *p = buf;
        for (size_t i = 0; i < sizeof b; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10)
                        *p++ = '-';
                *p++ = hex[b[i] >> 4];
                *p++ = hex[b[i] & 15];
        }
        *p = 0;
        return 0;
}

int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        size_t size = 0, alloc = 0;
        char *buf = NULL;
        int r = 0;
        for (;;) {
                if (alloc - size < 4096) {
                        alloc = alloc ? alloc * 2 : 4096;
                        char *n = realloc(buf, alloc + 1);
                        if (!n) {
                                r = -ENOMEM;
                                break;
                        }
                        buf = n;
                }
                ssize_t k = read(fd, buf + size, alloc - size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (k == 0)
                        break;
                size += (size_t) k;
                if (size > max) {
                        r = -EFBIG;
                        break;
                }
        }
        close(fd);
        if (r < 0) {
                if (buf)
                        explicit_bzero(buf, size);
                free(buf);
                return r;
        }
        if (!buf) {
                buf = malloc(1);
                if (!buf)
                        return -ENOMEM;
        }
        buf[size] = 0;
        *ret = buf;
        if (ret_size)
                *ret_size = size;
        return 0;
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode) {
        _cleanup_free_ char *tmp = strdup_printf("%s.XXXXXX", path);
        if (!tmp)
                return -ENOMEM;
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = 0;
        const char *p = data;
        size_t left = size;
        while (left > 0) {
                ssize_t k = write(fd, p, left);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                p += k;
                left -= (size_t) k;
        }
        if (r == 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

static uint64_t prng_state;

double random_unit(void) {
        if (prng_state == 0) {
                if (RAND_bytes((unsigned char *) &prng_state, sizeof prng_state) != 1 || prng_state == 0)
                        prng_state = now_monotonic_usec() | 1;
        }
        /* xorshift64*: jitter only, never secrets */
        prng_state ^= prng_state >> 12;
        prng_state ^= prng_state << 25;
        prng_state ^= prng_state >> 27;
        return (double) ((prng_state * 2685821657736338717ULL) >> 11) / (double) (1ULL << 53);
}

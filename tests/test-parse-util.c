/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "parse-util.h"
#include "util.h"

#define MINUTE (60 * USEC_PER_SEC)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)

static void test_parse_timespan(void **state) {
        static const struct {
                const char *s;
                uint64_t usec;
        } good[] = {
                {"0", 0},
                {"90", 90 * USEC_PER_SEC},
                {"90s", 90 * USEC_PER_SEC},
                {"250ms", 250 * USEC_PER_MSEC},
                {"5m", 5 * MINUTE},
                {"1h30m", HOUR + 30 * MINUTE},
                {"1h 30m", HOUR + 30 * MINUTE},
                {"1h\t30m 15s", HOUR + 30 * MINUTE + 15 * USEC_PER_SEC},
                {"2d", 2 * DAY},
                {"1d1h1m1s1ms", DAY + HOUR + MINUTE + USEC_PER_SEC + USEC_PER_MSEC},
                {"0s", 0},
                {"  7m  ", 7 * MINUTE},
                {"10 s", 10 * USEC_PER_SEC},
                {"007s", 7 * USEC_PER_SEC},
                {"213503982d", 213503982 * DAY},
        };
        static const char *const bad[] = {
                "",
                " ",
                "5 parsecs",
                "s",
                "1x",
                "-1s",
                "+1s",
                "1.5h",
                "1h30",
                "30 1h",
                "1H",
                "1 h x",
                "18446744073709551616",
                "99999999999999999999s",
                "213503983d",
                "213503982d 1d",
                "18446744073709551615",
                "1m-1s",
                "ms",
                "1hh",
                "1h,30m",
                "0x10",
        };
        uint64_t u;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                u = 12345;
                if (parse_timespan(good[i].s, &u) != 0)
                        fail_msg("\"%s\" rejected", good[i].s);
                if (u != good[i].usec)
                        fail_msg("\"%s\" gave %llu", good[i].s, (unsigned long long)u);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                u = 12345;
                if (parse_timespan(bad[i], &u) != -EINVAL)
                        fail_msg("\"%s\" accepted", bad[i]);
                assert_int_equal(u, 12345);
        }
        assert_int_equal(parse_timespan(NULL, &u), -EINVAL);
}

static void test_parse_boolean(void **state) {
        static const char *const yes[] = {"yes", "YES", "Yes", "true", "TRUE", "1"};
        static const char *const no[] = {"no", "NO", "false", "False", "0"};
        static const char *const bad[] = {"", "y", "n", "on", "off", "2", "yess", " yes", "auto"};

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                assert_int_equal(parse_boolean(yes[i]), 1);
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                assert_int_equal(parse_boolean(no[i]), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(parse_boolean(bad[i]), -EINVAL);
        assert_int_equal(parse_boolean(NULL), -EINVAL);
}

static void test_parse_unsigned(void **state) {
        unsigned u = 77;

        assert_int_equal(parse_unsigned("0", 10, &u), 0);
        assert_int_equal(u, 0);
        assert_int_equal(parse_unsigned("1024", 1024, &u), 0);
        assert_int_equal(u, 1024);
        assert_int_equal(parse_unsigned("0008", 10, &u), 0);
        assert_int_equal(u, 8);
        assert_int_equal(parse_unsigned("4294967295", UINT_MAX, &u), 0);
        assert_int_equal(u, UINT_MAX);
        u = 77;
        assert_int_equal(parse_unsigned("1025", 1024, &u), -EINVAL);
        assert_int_equal(parse_unsigned("4294967296", UINT_MAX, &u), -EINVAL);
        assert_int_equal(parse_unsigned("99999999999999999999999", UINT_MAX, &u), -EINVAL);
        assert_int_equal(parse_unsigned("", 10, &u), -EINVAL);
        assert_int_equal(parse_unsigned("-1", 10, &u), -EINVAL);
        assert_int_equal(parse_unsigned("+1", 10, &u), -EINVAL);
        assert_int_equal(parse_unsigned(" 1", 10, &u), -EINVAL);
        assert_int_equal(parse_unsigned("1a", 10, &u), -EINVAL);
        assert_int_equal(parse_unsigned(NULL, 10, &u), -EINVAL);
        assert_int_equal(u, 77);
}

static void test_format_timespan(void **state) {
        static const struct {
                uint64_t usec;
                const char *text;
        } table[] = {
                { 0, "0" },
                { 1, "1us" },
                { 250 * USEC_PER_MSEC, "250ms" },
                { USEC_PER_SEC + 500 * USEC_PER_MSEC, "1s 500ms" },
                { 90 * USEC_PER_SEC, "1m 30s" },
                { 5 * MINUTE + 3 * USEC_PER_SEC, "5m 3s" },
                { 2 * MINUTE, "2m" },
                { HOUR + 30 * MINUTE, "1h 30m" },
                { 6 * HOUR, "6h" },
                { 3 * DAY, "3d" },
                { DAY + HOUR + MINUTE + USEC_PER_SEC + USEC_PER_MSEC + 1, "1d 1h 1m 1s 1ms 1us" },
                { 2 * DAY + 59 * MINUTE, "2d 59m" },
                { UINT64_MAX, "213503982d 8h 1m 49s 551ms 615us" },
        };
        char buf[FORMAT_TIMESPAN_MAX];

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                assert_ptr_equal(format_timespan(buf, sizeof buf, table[i].usec), buf);
                assert_string_equal(buf, table[i].text);
        }

        /* what it writes (down to milliseconds) reads back as the same span */
        static const char *const again[] = { "0", "250ms", "1h 30m", "1d 1h 1m 1s 1ms", "213503982d" };
        for (size_t i = 0; i < ELEMENTSOF(again); i++) {
                uint64_t u;
                assert_int_equal(parse_timespan(again[i], &u), 0);
                assert_string_equal(format_timespan(buf, sizeof buf, u), again[i]);
        }

        /* a short buffer is cut, never overrun */
        char small[6];
        format_timespan(small, sizeof small, DAY + HOUR + MINUTE);
        assert_string_equal(small, "1d 1h");
        format_timespan(small, 1, DAY);
        assert_string_equal(small, "");
}

static void test_timespan_round_for_display(void **state) {
        assert_int_equal(timespan_round_for_display(0), 0);
        assert_int_equal(timespan_round_for_display(499), 0);
        assert_int_equal(timespan_round_for_display(500), USEC_PER_MSEC);
        assert_int_equal(timespan_round_for_display(250 * USEC_PER_MSEC + 400), 250 * USEC_PER_MSEC);
        assert_int_equal(timespan_round_for_display(999 * USEC_PER_MSEC), 999 * USEC_PER_MSEC);
        assert_int_equal(timespan_round_for_display(USEC_PER_SEC + 499 * USEC_PER_MSEC), USEC_PER_SEC);
        assert_int_equal(timespan_round_for_display(USEC_PER_SEC + 500 * USEC_PER_MSEC), 2 * USEC_PER_SEC);
        assert_int_equal(timespan_round_for_display(2 * HOUR + 5 * MINUTE + 3 * USEC_PER_SEC + 1),
                         2 * HOUR + 5 * MINUTE + 3 * USEC_PER_SEC);
        assert_int_equal(timespan_round_for_display(UINT64_MAX), UINT64_MAX / USEC_PER_SEC * USEC_PER_SEC);

        char buf[FORMAT_TIMESPAN_MAX];
        assert_string_equal(format_timespan(buf, sizeof buf,
                                            timespan_round_for_display(5 * MINUTE + 3 * USEC_PER_SEC + 123456)),
                            "5m 3s");
}

/* format_rfc3339() computes the civil date itself: it must agree with gmtime_r() and strftime()
 * on every day from 1970 to 2400 (leap years, centuries, 2000 and 2100), at several times of
 * day, and round-trip through parse_rfc3339(). */
static void test_format_rfc3339(void **state) {
        static const uint64_t times_of_day[] = { 0, 1, 59, 3599, 43210, 86399 };
        for (uint64_t day = 0; day < 157000; day++)
                for (size_t k = 0; k < sizeof times_of_day / sizeof times_of_day[0]; k++) {
                        uint64_t secs = day * 86400 + times_of_day[k], usec = secs * 1000000 + day % 1000000;
                        time_t t = (time_t) secs;
                        struct tm tm;
                        char want[64], got[64];
                        assert_non_null(gmtime_r(&t, &tm));
                        assert_true(strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0);
                        assert_string_equal(format_rfc3339(got, sizeof got, usec), want);
                        uint64_t back;
                        assert_int_equal(parse_rfc3339(got, &back), 0);
                        assert_int_equal(back, secs * 1000000);
                }
        char small[20];
        assert_string_equal(format_rfc3339(small, sizeof small, 0), "");
        char big[64];
        assert_string_equal(format_rfc3339(big, sizeof big, UINT64_C(253402300800) * 1000000), ""); /* year 10000 */
        assert_string_equal(format_rfc3339(big, sizeof big, UINT64_C(253402300799) * 1000000), "9999-12-31T23:59:59Z");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_timespan),
                cmocka_unit_test(test_parse_boolean),
                cmocka_unit_test(test_parse_unsigned),
                cmocka_unit_test(test_format_timespan),
                cmocka_unit_test(test_timespan_round_for_display),
                cmocka_unit_test(test_format_rfc3339),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* What committing poll results costs as the store grows: fills a fresh store with ROWS orders
 * (realistic snapshots), reads them all once as the daemon does at start-up, then commits ROUNDS
 * batches of BATCH results for random orders exactly as the manager's flush does (one transaction,
 * store_put_order() per result). Prints one JSON line; bench/scale.py compares store sizes.
 *
 *     commit-bench DIRECTORY ROWS BATCH ROUNDS
 */
#include <inttypes.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

#include "store.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void) {
        /* xorshift64*: deterministic, good enough to pick orders */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 0x2545f4914f6cdd1dULL;
}

static double now_sec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double cpu_sec(void) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 + (double) ru.ru_stime.tv_sec +
               (double) ru.ru_stime.tv_usec / 1e6;
}

static void make_ids(uint64_t i, char customer[64], char order[64]) {
        snprintf(customer, 64, "%08" PRIx64 "-0000-4000-8000-%012" PRIx64, i / 100, (uint64_t) (i / 100 * 7919));
        snprintf(order, 64, "%016" PRIx64 "%016" PRIx64, (uint64_t) (i * 0x9e3779b97f4a7c15ULL), i);
}

static void make_row(uint64_t i, OrderRow *row, char *customer, char *order, char *snapshot, size_t size) {
        make_ids(i, customer, order);
        unsigned items = i % 10 == 0 ? 3 : 1;
        size_t n = (size_t) snprintf(snapshot, size, "{\"items\":[");
        for (unsigned k = 0; k < items; k++)
                n += (size_t) snprintf(snapshot + n, size - n,
                                       "%s{\"n\":%u,\"olid\":%u,\"status\":\"fulfilled\",\"q\":{\"fulfilled\":%u}}",
                                       k ? "," : "", k, k, (unsigned) (i % 25) + 1);
        snprintf(snapshot + n, size - n, "]}");
        *row = (OrderRow) {
                .customer_id = customer,
                .order_id = order,
                .snapshot_json = snapshot,
                .last_poll_usec = 1700000000000000ULL + i,
                .last_success_usec = 1700000000000000ULL + i,
                .next_poll_usec = 1700021600000000ULL + i,
                .settled = true,
                .last_http_status = 200,
                .has_answer_digest = true,
        };
        memcpy(row->answer_digest, &i, sizeof i);
}

static int count_row(const OrderRow *row, void *userdata) {
        (*(uint64_t *) userdata)++;
        return 0;
}

int main(int argc, char *argv[]) {
        if (argc != 5) {
                fprintf(stderr, "Usage: %s DIRECTORY ROWS BATCH ROUNDS\n", argv[0]);
                return 64;
        }
        const char *dir = argv[1];
        uint64_t rows = strtoull(argv[2], NULL, 10), batch = strtoull(argv[3], NULL, 10),
                 rounds = strtoull(argv[4], NULL, 10);
        if (rows == 0 || batch == 0 || rounds == 0)
                return 64;

        Store *s = NULL;
        int r = store_open(dir, STORE_READ_WRITE, &s);
        if (r < 0) {
                fprintf(stderr, "store_open: %s\n", store_error(NULL));
                return 1;
        }

        char customer[64], order[64], snapshot[1024];
        OrderRow row;
        double fill_start = now_sec(CLOCK_MONOTONIC);
        for (uint64_t i = 0; i < rows && r >= 0; i += 1000) {
                r = store_begin(s);
                for (uint64_t k = i; r >= 0 && k < rows && k < i + 1000; k++) {
                        make_row(k, &row, customer, order, snapshot, sizeof snapshot);
                        r = store_put_order(s, &row);
                }
                r = r >= 0 ? store_commit(s) : (store_rollback(s), r);
        }
        double fill = now_sec(CLOCK_MONOTONIC) - fill_start;

        /* as at start-up: every row is read once */
        uint64_t loaded = 0;
        double load_start = now_sec(CLOCK_MONOTONIC);
        if (r >= 0)
                r = store_foreach_order(s, count_row, &loaded);
        double load = now_sec(CLOCK_MONOTONIC) - load_start;

        double wall_start = now_sec(CLOCK_MONOTONIC), cpu_start = cpu_sec();
        for (uint64_t k = 0; r >= 0 && k < rounds; k++) {
                r = store_begin(s);
                for (uint64_t b = 0; r >= 0 && b < batch; b++) {
                        uint64_t i = rng() % rows;
                        make_row(i, &row, customer, order, snapshot, sizeof snapshot);
                        row.last_poll_usec += k + 1;
                        row.last_success_usec += k + 1;
                        r = store_put_order(s, &row);
                }
                r = r >= 0 ? store_commit(s) : (store_rollback(s), r);
        }
        double wall = now_sec(CLOCK_MONOTONIC) - wall_start, cpu = cpu_sec() - cpu_start;
        if (r < 0) {
                fprintf(stderr, "store: %s\n", store_error(s));
                store_free(s);
                return 1;
        }
        store_free(s);

        double n = (double) (batch * rounds);
        printf("{\"rows\": %" PRIu64 ", \"batch\": %" PRIu64 ", \"commits\": %" PRIu64
               ", \"fill_sec\": %.3f, \"load_sec\": %.3f, \"loaded\": %" PRIu64
               ", \"wall_usec_per_result\": %.2f, \"cpu_usec_per_result\": %.2f"
               ", \"wall_usec_per_commit\": %.2f}\n",
               rows, batch, rounds, fill, load, loaded, wall * 1e6 / n, cpu * 1e6 / n, wall * 1e6 / (double) rounds);
        return 0;
}

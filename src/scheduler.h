/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Pure scheduling decisions (no clocks, no I/O): the request budget toward Partner Center and the
 * per-order due-time queues. Times are monotonic microseconds passed in by the caller. */

/* The global budget: requests are paced evenly at 60 s / (rpm × factor) and, as a hard guarantee,
 * never more than rpm are sent in any sliding 60-second window. A 429 pauses everything for its
 * Retry-After and halves the pace, which then recovers gradually. rpm = 0 means no limit. */
typedef struct Budget {
        unsigned rpm;
        uint64_t *ring; /* send times of the last rpm requests */
        size_t ring_head, ring_count;
        uint64_t last_slot;    /* the slot the previous request used */
        uint64_t paused_until; /* after a 429 */
        double factor;         /* 1 normally; lowered by 429s */
        uint64_t factor_changed;
        unsigned consecutive_429;
} Budget;

int budget_init(Budget *b, unsigned rpm);
void budget_done(Budget *b);
/* Changing the rate keeps the window history so a reload cannot create a burst. */
int budget_set_rpm(Budget *b, unsigned rpm);
/* Earliest time at or after now when one more request may be sent. */
uint64_t budget_next_slot(Budget *b, uint64_t now);
void budget_record(Budget *b, uint64_t now);
/* A 429: retry_after_usec = 0 when the answer had none (exponential backoff then). Returns true when
 * it starts a pause; a 429 during a pause only extends it to a later Retry-After. */
bool budget_throttle(Budget *b, uint64_t now, uint64_t retry_after_usec);
/* A request that was not rate limited. */
void budget_success(Budget *b, uint64_t now);
/* Requests sent in the 60 s before now. */
size_t budget_window_count(const Budget *b, uint64_t now);

/* A binary min-heap of items keyed by due time; each item stores its own position so that it can
 * be moved or removed in O(log n). */
typedef struct HeapItem {
        uint64_t due;
        size_t heap_pos; /* SIZE_MAX when not in a heap */
} HeapItem;

typedef struct Heap {
        HeapItem **items;
        size_t n, alloc;
} Heap;

void heap_done(Heap *h);
int heap_push(Heap *h, HeapItem *it);
HeapItem *heap_peek(const Heap *h);
HeapItem *heap_pop(Heap *h);
void heap_remove(Heap *h, HeapItem *it);
/* Re-positions an item after its due time changed. */
void heap_update(Heap *h, HeapItem *it);
static inline bool heap_item_queued(const HeapItem *it) {
        return it->heap_pos != SIZE_MAX;
}

/* Revisits of unsettled orders: every configured interval, or sooner while the budget has room, so
 * that detection is bounded by the budget rather than by a cautious setting. */
typedef struct RevisitPlan {
        uint64_t interval_usec; /* the configured interval: the longest revisit */
        uint64_t floor_usec;    /* the shortest (min-interval); 0 or >= interval_usec: always the interval */
        unsigned rpm;           /* the request budget; 0 = no limit */
} RevisitPlan;

/* The share of the budget that revisits may plan for: the rest absorbs retries, discovery's pages,
 * token requests and bursts of orders falling due together. */
#define REVISIT_BUDGET_SHARE 0.95

/* How often each of n_unsettled orders is revisited: the budget's planned share, less other_per_min
 * (what settled orders and other requests need per minute), shared evenly by them; never more often
 * than floor_usec, never less often than interval_usec. */
uint64_t revisit_interval(const RevisitPlan *p, size_t n_unsettled, double other_per_min);

/* When an order whose poll for due time due has just been committed (at now) is next due, interval
 * later: counted from due, so that the time it waited for a slot of the budget, the round trip and the
 * commit do not lengthen every revisit; a poll that ended more than half an interval late (after a
 * pause, a restart, a 429, a slow answer) starts a new rhythm from now instead of being followed by
 * another one straight away. */
uint64_t revisit_due(uint64_t due, uint64_t now, uint64_t interval);

/* Exponential backoff with ±20 % jitter: base × 2^(failures-1), capped; rnd in [0,1). */
uint64_t backoff_usec(unsigned failures, uint64_t base, uint64_t cap, double rnd);

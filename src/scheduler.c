/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "scheduler.h"
#include "util.h"

#define WINDOW_USEC (60 * USEC_PER_SEC)
/* Sends are spaced and counted over a slightly longer window, so that network jitter cannot make
 * the server see budget + 1 requests inside its own 60-second window. */
#define GUARD_WINDOW_USEC (WINDOW_USEC + 100 * USEC_PER_MSEC)
#define FACTOR_MIN 0.125
#define FACTOR_RECOVERY_USEC (60 * USEC_PER_SEC)

int budget_init(Budget *b, unsigned rpm) {
        *b = (Budget) { .factor = 1.0 };
        return budget_set_rpm(b, rpm);
}

void budget_done(Budget *b) {
        free(b->ring);
        b->ring = NULL;
}

static uint64_t ring_at(const Budget *b, size_t i) {
        /* i-th oldest */
        size_t cap = b->rpm;
        return b->ring[(b->ring_head + cap - b->ring_count + i) % cap];
}

int budget_set_rpm(Budget *b, unsigned rpm) {
        uint64_t *ring = NULL;
        size_t count = 0;
        if (rpm > 0) {
                ring = calloc(rpm, sizeof *ring);
                if (!ring)
                        return -ENOMEM;
                /* keep the newest sends */
                size_t keep = b->ring_count < rpm ? b->ring_count : rpm;
                for (size_t i = b->ring_count - keep; i < b->ring_count; i++)
                        ring[count++] = ring_at(b, i);
        }
        free(b->ring);
        b->ring = ring;
        b->rpm = rpm;
        b->ring_count = count;
        b->ring_head = rpm > 0 ? count % rpm : 0;
        return 0;
}

static void recover_factor(Budget *b, uint64_t now) {
        while (b->factor < 1.0 && now >= b->factor_changed + FACTOR_RECOVERY_USEC) {
                b->factor *= 1.25;
                if (b->factor > 1.0)
                        b->factor = 1.0;
                b->factor_changed += FACTOR_RECOVERY_USEC;
        }
}

static uint64_t gap_usec(const Budget *b) {
        return (uint64_t) ((double) GUARD_WINDOW_USEC / ((double) b->rpm * b->factor));
}

uint64_t budget_next_slot(Budget *b, uint64_t now) {
        uint64_t t = now;
        if (b->paused_until > t)
                t = b->paused_until;
        if (b->rpm == 0)
                return t;
        recover_factor(b, now);
        if (b->last_slot) {
                uint64_t paced = b->last_slot + gap_usec(b);
                if (paced > t)
                        t = paced;
        }
        if (b->ring_count == b->rpm) {
                uint64_t oldest = ring_at(b, 0) + GUARD_WINDOW_USEC;
                if (oldest > t)
                        t = oldest;
        }
        return t;
}

void budget_record(Budget *b, uint64_t now) {
        if (b->rpm == 0)
                return;
        /* Pace from the ideal slot, so timer lateness does not erode the rate, but never bank
         * idle time into a burst. */
        uint64_t gap = gap_usec(b);
        uint64_t ideal = b->last_slot ? b->last_slot + gap : now;
        b->last_slot = (ideal + gap >= now && ideal <= now) ? ideal : now;
        b->ring[b->ring_head] = now;
        b->ring_head = (b->ring_head + 1) % b->rpm;
        if (b->ring_count < b->rpm)
                b->ring_count++;
}

bool budget_throttle(Budget *b, uint64_t now, uint64_t retry_after_usec) {
        if (b->paused_until > now) {
                /* Answers to requests sent before the pause began say nothing new about the pace; a
                 * longer Retry-After than the one pausing now is still the server's word. */
                if (retry_after_usec > 0 && now + retry_after_usec > b->paused_until) {
                        b->paused_until = now + retry_after_usec;
                        b->factor_changed = b->paused_until;
                }
                return false;
        }
        b->consecutive_429++;
        if (retry_after_usec == 0) {
                unsigned k = b->consecutive_429 > 6 ? 6 : b->consecutive_429;
                retry_after_usec = (5 * USEC_PER_SEC) << (k - 1);
        }
        if (now + retry_after_usec > b->paused_until)
                b->paused_until = now + retry_after_usec;
        b->factor /= 2;
        if (b->factor < FACTOR_MIN)
                b->factor = FACTOR_MIN;
        b->factor_changed = b->paused_until;
        return true;
}

void budget_success(Budget *b, uint64_t now) {
        b->consecutive_429 = 0;
}

size_t budget_window_count(const Budget *b, uint64_t now) {
        size_t n = 0;
        for (size_t i = 0; i < b->ring_count; i++)
                if (ring_at(b, i) + WINDOW_USEC > now)
                        n++;
        return n;
}

/* heap */

static void heap_swap(Heap *h, size_t a, size_t b) {
        HeapItem *t = h->items[a];
        h->items[a] = h->items[b];
        h->items[b] = t;
        h->items[a]->heap_pos = a;
        h->items[b]->heap_pos = b;
}

static void sift_up(Heap *h, size_t i) {
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (h->items[p]->due <= h->items[i]->due)
                        break;
                heap_swap(h, p, i);
                i = p;
        }
}

/* The item at i moves down through a hole: each level moves one child up and compares against the
 * item's due kept here, instead of swapping (a first `once` pops 20,000 orders with due times
 * that differ, each through 15 levels of Orders spread over the heap's memory). */
static void sift_down(Heap *h, size_t i) {
        HeapItem *it = h->items[i];
        uint64_t due = it->due;
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = l;
                if (l >= h->n)
                        break;
                uint64_t m_due = h->items[l]->due;
                if (r < h->n && h->items[r]->due < m_due) {
                        m = r;
                        m_due = h->items[r]->due;
                }
                if (m_due >= due)
                        break;
                h->items[i] = h->items[m];
                h->items[i]->heap_pos = i;
                i = m;
        }
        h->items[i] = it;
        it->heap_pos = i;
}

void heap_done(Heap *h) {
        for (size_t i = 0; i < h->n; i++)
                h->items[i]->heap_pos = SIZE_MAX;
        free(h->items);
        *h = (Heap) {};
}

int heap_push(Heap *h, HeapItem *it) {
        if (h->n == h->alloc) {
                size_t a = h->alloc ? h->alloc * 2 : 64;
                HeapItem **n = realloc(h->items, a * sizeof *n);
                if (!n)
                        return -ENOMEM;
                h->items = n;
                h->alloc = a;
        }
        it->heap_pos = h->n;
        h->items[h->n++] = it;
        sift_up(h, it->heap_pos);
        return 0;
}

HeapItem *heap_peek(const Heap *h) {
        return h->n ? h->items[0] : NULL;
}

void heap_remove(Heap *h, HeapItem *it) {
        size_t i = it->heap_pos;
        if (i == SIZE_MAX || i >= h->n || h->items[i] != it)
                return;
        h->n--;
        if (i != h->n) {
                h->items[i] = h->items[h->n];
                h->items[i]->heap_pos = i;
                sift_down(h, i);
                sift_up(h, i);
        }
        it->heap_pos = SIZE_MAX;
}

HeapItem *heap_pop(Heap *h) {
        HeapItem *it = heap_peek(h);
        if (it)
                heap_remove(h, it);
        return it;
}

void heap_update(Heap *h, HeapItem *it) {
        if (it->heap_pos == SIZE_MAX)
                return;
        sift_down(h, it->heap_pos);
        sift_up(h, it->heap_pos);
}

uint64_t revisit_interval(const RevisitPlan *p, size_t n_unsettled, double other_per_min) {
        uint64_t iv = p->interval_usec;
        if (p->floor_usec == 0 || p->floor_usec >= iv || n_unsettled == 0)
                return iv;
        if (p->rpm == 0)
                return p->floor_usec;
        double spare = (double) p->rpm * REVISIT_BUDGET_SHARE - (other_per_min > 0 ? other_per_min : 0);
        if (spare <= 0)
                return iv;
        double usec = (double) n_unsettled * 60.0 * (double) USEC_PER_SEC / spare;
        if (usec >= (double) iv)
                return iv;
        return usec <= (double) p->floor_usec ? p->floor_usec : (uint64_t) usec;
}

uint64_t revisit_due(uint64_t due, uint64_t now, uint64_t interval) {
        if (interval == USEC_INFINITY)
                return USEC_INFINITY;
        if (now > due + interval / 2)
                return now + interval; /* long overdue: a new rhythm from now on */
        return due + interval;
}

uint64_t backoff_usec(unsigned failures, uint64_t base, uint64_t cap, double rnd) {
        if (failures == 0)
                return 0;
        uint64_t d = base;
        for (unsigned i = 1; i < failures && d < cap; i++)
                d *= 2;
        if (d > cap)
                d = cap;
        return (uint64_t) ((double) d * (0.8 + 0.4 * rnd));
}

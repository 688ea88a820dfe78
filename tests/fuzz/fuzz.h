/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "diff.h"
#include "event.h"
#include "snapshot.h"

/* The libFuzzer entry points. Without libFuzzer, replay.c calls them on the corpus. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken invariant is a finding: name it, then crash so that libFuzzer keeps the input. Never
 * compiled out, unlike assert(). */
#define fuzz_assert(expr)                                                                                  \
        do {                                                                                               \
                if (!(expr)) {                                                                             \
                        fprintf(stderr, "%s:%d: %s: invariant broken: %s\n", __FILE__, __LINE__, __func__, \
                                #expr);                                                                    \
                        abort();                                                                           \
                }                                                                                          \
        } while (0)

/* Some control character (< 0x20 or 0x7f) other than those in allowed. */
bool fuzz_has_control_chars(const char *s, const char *allowed);

/* Items sorted and unique, statuses valid and lowercased, quantities positive, sorted, unique. */
void fuzz_check_snapshot(const Snapshot *s);
/* Same items, same order line item ids, same statuses and quantities. */
bool fuzz_snapshots_equal(const Snapshot *a, const Snapshot *b);
/* snapshot_to_json() → snapshot_from_json() gives the same snapshot and the same JSON again;
 * snapshot_copy() gives the same snapshot. */
void fuzz_check_snapshot_round_trip(const Snapshot *s);

/* Runs diff_snapshots() and checks its result against a naive recomputation of SPEC §4: one
 * removed/changed/added event per differing line item in number order, then order.completed iff
 * new is settled and old (or NULL) is not; and that every event renders (fuzz_check_event()).
 * Returns the number of events. */
size_t fuzz_check_diff(const Snapshot *old, const Snapshot *new, char *const *terminal, const char *customer_id,
                       const char *order_id, uint64_t time_usec, uint64_t previous_poll_usec);

/* event_to_json() refuses without an id; after event_assign_id() it gives JSON that json-c parses
 * back completely, with the right id and type; the summary is one line without control
 * characters; the subject exists. */
void fuzz_check_event(Event *e);

/* SPDX-License-Identifier: MIT */
#pragma once

#include "event.h"
#include "snapshot.h"

/* The pure heart of provwatch: compare the previous snapshot (NULL on an order's first good poll)
 * with a new one and produce the events of SPEC §4 in the order they should be emitted:
 * removed, changed and added line items in line item number order, then order.completed when the
 * new snapshot is settled and the old one was not (or there was none). No ids are assigned. */
int diff_snapshots(const Snapshot *old, const Snapshot *new, char *const *terminal_statuses,
                   const char *customer_id, const char *order_id, uint64_t time_usec,
                   uint64_t previous_poll_usec, Event ***ret_events, size_t *ret_n);

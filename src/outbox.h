/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "event.h"
#include "metrics.h"
#include "store.h"

/* Where results wait for their commit (SPEC §5): everything added during one loop iteration is saved
 * in one transaction, rows and events together, each event queued for every webhook that wants it;
 * only once that transaction is committed are the events output (journal, standard output). A
 * crash before the commit loses the results, never an announced event; a crash after it leaves the
 * events queued under their ids. */

typedef struct Outbox Outbox;

/* Extra writes of an entry, inside the transaction (discovery's cursor, for instance). */
typedef int (*OutboxSaveFn)(Store *store, void *userdata);
/* After the commit (r < 0: it failed and nothing of the batch was saved), before the events are
 * output. row is the entry's row, which the callback may take over (its fields moved out). */
typedef void (*OutboxDoneFn)(int r, OrderRow *row, void *userdata);

int outbox_new(Store *store, const Config *config, const char *hostname, Metrics *metrics, bool print_events,
               Outbox **ret);
Outbox *outbox_free(Outbox *o); /* drops what was not committed, without callbacks */
void outbox_set_config(Outbox *o, const Config *config);

/* Adds one entry: row (may be NULL; taken over; a NULL snapshot_json keeps the stored snapshot),
 * events (taken over, with the array; ids are assigned and the CloudEvents rendered here), save
 * (may be NULL) and done (may be NULL). On failure nothing is taken and nothing is added. */
int outbox_add(Outbox *o, OrderRow *row, Event **events, size_t n_events, OutboxSaveFn save, OutboxDoneFn done,
               void *userdata);
bool outbox_pending(const Outbox *o);

/* Commits what was added, calls each entry's done, then outputs the events. Returns the number of
 * events output, or the failed commit's error (logged by the caller; store_error() tells why). */
int outbox_flush(Outbox *o);

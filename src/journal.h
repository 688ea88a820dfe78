/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "config.h"
#include "event.h"

/* Events to the systemd journal (SPEC §6 Journal): one entry per event with structured fields. */

/* Whether the journal socket exists (for [journal] enabled = auto). */
bool journal_available(void);

/* Whether events go to the journal under [journal] enabled = mode. */
bool journal_enabled(JournalMode mode);

/* Sends one entry; returns -errno from sd_journal_sendv. */
int journal_send_event(const Event *e);

/* The entry logged when a webhook gives up on an event (dead-letter MESSAGE_ID). */
int journal_send_dead_letter(const char *webhook, const char *event_id, const char *event_type,
                             const char *customer_id, const char *order_id, const char *reason);

#define MESSAGE_ID_DEAD_LETTER "b4a896983544420b9c3844541d16719f"

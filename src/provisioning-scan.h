/* SPDX-License-Identifier: MIT */
#pragma once
#include <stddef.h>

#include "partner-center.h"
#include "snapshot.h"

/* One pass over a provisioning page of the common, plain shape (see provisioning-scan.c), for
 * pc_parse_provisioning_page(): merges its line items into snap like the full parser, and clears
 * *page (may be NULL). -EAGAIN when the full parser has to look (snap and page are then untouched),
 * -ENOMEM. */
int provisioning_scan_page(const char *body, size_t size, Snapshot *snap, PcPage *page);

/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/* `provwatch status`: reads the state store read-only (safe while the daemon runs) and prints every
 * watched order and every webhook queue. Returns an exit status of SPEC §1. */
int status_print(const Config *config, bool json, FILE *out);

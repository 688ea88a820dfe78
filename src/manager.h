/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <uv.h>

#include "config.h"

/* The daemon's core: owns the loop's handles, the configuration, the store, token acquisition,
 * the poll scheduler, event output and webhook delivery. `run` and `once` are two modes of it. */

typedef enum ManagerMode {
        MANAGER_RUN,
        MANAGER_ONCE,
} ManagerMode;

typedef struct ManagerOptions {
        ManagerMode mode;
        bool print_events;
        const char *config_path;
} ManagerOptions;

typedef struct Manager Manager;

/* Takes ownership of config. Opens the store and loads the orders' state. */
int manager_new(uv_loop_t *loop, Config *config, const ManagerOptions *options, Manager **ret);
/* Runs until stopped (run: SIGTERM/SIGINT; once: every order polled and webhooks done or timed
 * out). Returns the process exit status of SPEC §1. */
int manager_run(Manager *m);
Manager *manager_free(Manager *m);

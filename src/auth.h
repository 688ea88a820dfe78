/* SPDX-License-Identifier: MIT */
#pragma once

#include <uv.h>

#include "config.h"
#include "http.h"
#include "metrics.h"
#include "store.h"

/* Access tokens for Partner Center (SPEC §3 "Tokens"): refresh-token and client-credentials grants
 * against the token endpoint, or a token file kept fresh by someone else. Tokens are renewed ahead
 * of expiry without stalling polls; a rotated refresh token is committed to the store before the
 * access token that came with it is used. Nothing here ever logs a token or secret. */

typedef struct Auth Auth;

/* Called whenever a token becomes available (or acquisition failed and waits for a retry). */
typedef void (*AuthChangedFn)(void *userdata);

int auth_new(uv_loop_t *loop, Http *http, Store *store, const Config *config, Metrics *metrics,
             AuthChangedFn changed, void *userdata, Auth **ret);
Auth *auth_free(Auth *a);

/* After a reload: new credentials or endpoint take effect with the next acquisition. */
void auth_set_config(Auth *a, const Config *config);

/* The access token to use now, or NULL while one is being acquired (acquisition is started). */
const char *auth_token(Auth *a);

/* A request with this token was answered 401: forget it and acquire a new one. */
void auth_reject(Auth *a, const char *token);

/* Short human description of the last failure, NULL when healthy (for STATUS=). */
const char *auth_problem(Auth *a);

/* A token the store holds for the configured refresh token, if any (exposed for tests). */
int auth_pick_refresh_token(Store *store, const char *configured, char **ret, bool *ret_from_store);

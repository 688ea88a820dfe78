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

/* SPEC §9: auth.failed when the grant is refused for good (invalid_grant, invalid_client,
 * unauthorized_client; a token file rejected or unreadable) or after failure-threshold failures in a
 * row; once per episode, also across restarts; auth.recovered with the next token. */
typedef struct AuthAlert {
        bool failed;       /* auth.failed; false: auth.recovered */
        const char *grant; /* "refresh_token", "client_credentials", "token_file" */
        long http_status;  /* 0: no answer */
        const char *error; /* the OAuth error, or unreachable, unexpected_answer, rejected, unreadable */
        const int64_t *error_codes;
        size_t n_error_codes;
        const char *description; /* at most 300 characters; never a token or secret */
        const char *action;      /* what the operator must do */
        uint64_t since_usec;     /* realtime: the first failure of the episode */
} AuthAlert;

typedef void (*AuthAlertFn)(const AuthAlert *alert, void *userdata);
void auth_set_alert_callback(Auth *a, AuthAlertFn fn, void *userdata);
/* The alert could not be committed: the next chance says it again. */
void auth_alert_not_saved(Auth *a, bool failed);

/* The state an alert leaves in the store (kv "auth-state"): status shows it, a restart resumes it. */
typedef struct AuthState {
        bool failing;
        uint64_t since_usec;
        char *error;
        char *description;
} AuthState;

char *auth_state_format(const AuthAlert *alert);
int auth_state_parse(const char *text, AuthState *ret);
void auth_state_done(AuthState *s);
int auth_state_save(Store *store, const AuthAlert *alert);
/* No state saved yet: *ret is all zero (not failing). */
int auth_state_load(Store *store, AuthState *ret);

/* A token the store holds for the configured refresh token, if any (exposed for tests). */
int auth_pick_refresh_token(Store *store, const char *configured, char **ret, bool *ret_from_store);

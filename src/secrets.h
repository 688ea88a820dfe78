/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Secrets (client secret, refresh token, webhook keys and URLs): read from a systemd credential or a
 * file, checked, never printed, wiped when freed. */

typedef enum SecretKind {
        SECRET_TEXT,    /* one line of printable characters (a trailing newline is not part of it) */
        SECRET_WEBHOOK, /* a Standard Webhooks key: see webhook_secret_decode() */
        SECRET_FIRST_LINE, /* the first line, white space around it stripped; what follows is ignored */
} SecretKind;

typedef struct Secret {
        char *data; /* NUL-terminated, also after binary bytes */
        size_t size;
        char *origin; /* "credential NAME" or the path, for messages and summaries */
        bool from_credential;
} Secret;

/* Wipes and frees. */
void secret_done(Secret *s);

/* Looks for the credential $CREDENTIALS_DIRECTORY/credential first, then for the file path (NULL:
 * none). Returns 1 with *ret filled, or 0 when neither is there. When the one found cannot be used
 * (unreadable, not a regular file, over 64 KiB, empty, more than one line, bad base64) returns
 * -EINVAL with *ret_error saying why, e.g. "cannot read \"/etc/x\": Permission denied", and
 * ret->from_credential telling which one it was. A secret file other users may read is used,
 * with a warning appended to *warnings. -ENOMEM. */
int secret_load(const char *credential, const char *path, SecretKind kind, char ***warnings, Secret *ret,
                char **ret_error);

/* Standard Webhooks secret: "whsec_<base64>" decoded, else the raw bytes (a trailing newline
 * stripped). Returns -EINVAL for whsec_ with bad base64, -ENOMEM. */
int webhook_secret_decode(const char *text, size_t size, char **ret, size_t *ret_size);

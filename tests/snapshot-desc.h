/* SPDX-License-Identifier: MIT */
#pragma once

/* For tests (after cmocka.h): a snapshot from a compact description, "0:status:q1=3,q2=2 1:status";
 * with_olid gives each line item its number as orderLineItemId. */

#include <stdlib.h>
#include <string.h>

#include "snapshot.h"

static inline Snapshot *snapshot_from_desc(const char *desc, bool with_olid) {
        Snapshot *s = snapshot_new();
        _cleanup_free_ char *copy = strdup(desc);
        char *save = NULL;

        assert_non_null(s);
        for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
                const char *qs[8];
                int64_t qn[8];
                size_t n_q = 0;
                char *number = strsep(&tok, ":"), *status = strsep(&tok, ":"), *quantities = tok;
                for (char *q; quantities && (q = strsep(&quantities, ","));) {
                        char *eq = strchr(q, '=');
                        assert_non_null(eq);
                        *eq = 0;
                        qs[n_q] = q;
                        qn[n_q++] = strtoll(eq + 1, NULL, 10);
                }
                int64_t n = strtoll(number, NULL, 10);
                assert_int_equal(snapshot_add_item(s, n, with_olid, with_olid ? n : 0, status, qs, qn, n_q), 0);
        }
        return s;
}

/* SPDX-License-Identifier: MIT */
#include "log.h"
#include "status.h"
#include "store.h"

int status_print(const Config *config, bool json, FILE *out) {
        Store *s = NULL;
        int r = store_open(config->state_directory, STORE_READ_ONLY, &s);
        if (r < 0) {
                log_error_errno(r, "Cannot open the state store in '%s': %m", config->state_directory);
                return 1;
        }
        store_free(s);
        return 0;
}

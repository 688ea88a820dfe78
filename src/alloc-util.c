/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc-util.h"

void *greedy_realloc(void **p, size_t *allocated, size_t need, size_t size) {
        if (need <= *allocated)
                return *p;
        size_t a = *allocated < 8 ? 8 : *allocated;
        while (a < need) {
                if (a > SIZE_MAX / 2)
                        return NULL;
                a *= 2;
        }
        if (a > SIZE_MAX / size)
                return NULL;
        void *q = realloc(*p, a * size);
        if (!q)
                return NULL;
        *p = q;
        *allocated = a;
        return q;
}

void *erase_and_free(void *p, size_t size) {
        if (p) {
                explicit_bzero(p, size);
                free(p);
        }
        return NULL;
}

char *erase_and_free_string(char *s) {
        return s ? erase_and_free(s, strlen(s)) : NULL;
}

/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* Growing arrays and wiping memory that held secrets. */

/* Makes room for at least need elements of size bytes in *p, whose capacity is *allocated: doubles
 * (from 8) instead of growing one by one. Returns *p, or NULL on overflow or ENOMEM (then *p and
 * *allocated are unchanged). */
void *greedy_realloc(void **p, size_t *allocated, size_t need, size_t size);
#define GREEDY_REALLOC(array, allocated, need) \
        greedy_realloc((void **) &(array), &(allocated), (need), sizeof(*(array)))

/* explicit_bzero() and free(); p may be NULL. Return NULL. */
void *erase_and_free(void *p, size_t size);
char *erase_and_free_string(char *s);

/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* NULL-terminated arrays of strings (a NULL list is an empty one wherever one is read). */

/* Frees the strings and the array; returns NULL. */
char **strv_free(char **l);
static inline void strv_freep(char ***l) {
        strv_free(*l);
}
/* The same, wiping each string first (headers that may hold credentials). */
char **strv_free_erase(char **l);

size_t strv_length(char *const *l);

/* An empty list (not NULL); NULL on ENOMEM. */
char **strv_new_empty(void);

/* A deep copy; NULL on ENOMEM (l NULL gives an empty list). */
char **strv_copy(char *const *l);

/* Appends s, taking ownership also on failure; s NULL (a failed allocation) gives -ENOMEM. */
int strv_consume(char ***l, char *s);

/* Appends the words of s separated by any of the characters in separators. -ENOMEM. */
int strv_split_extend(char ***l, const char *s, const char *separators);

bool strv_contains(char *const *l, const char *s);

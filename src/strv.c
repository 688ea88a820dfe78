/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "strv.h"

char **strv_free(char **l) {
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
        return NULL;
}

char **strv_free_erase(char **l) {
        for (char **p = l; p && *p; p++)
                explicit_bzero(*p, strlen(*p));
        return strv_free(l);
}

size_t strv_length(char *const *l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

char **strv_new_empty(void) {
        return calloc(1, sizeof(char *));
}

char **strv_copy(char *const *l) {
        size_t n = strv_length(l);
        char **c = calloc(n + 1, sizeof(char *));
        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!(c[i] = strdup(l[i])))
                        return strv_free(c);
        return c;
}

int strv_consume(char ***l, char *s) {
        if (!s)
                return -ENOMEM;
        size_t n = strv_length(*l);
        char **t = realloc(*l, (n + 2) * sizeof(char *));
        if (!t) {
                free(s);
                return -ENOMEM;
        }
        t[n] = s;
        t[n + 1] = NULL;
        *l = t;
        return 0;
}

int strv_split_extend(char ***l, const char *s, const char *separators) {
        for (s += strspn(s, separators); *s; s += strspn(s, separators)) {
                size_t n = strcspn(s, separators);
                int r = strv_consume(l, strndup(s, n));
                if (r < 0)
                        return r;
                s += n;
        }
        return 0;
}

bool strv_contains(char *const *l, const char *s) {
        for (char *const *p = l; p && *p; p++)
                if (strcmp(*p, s) == 0)
                        return true;
        return false;
}

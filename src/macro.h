/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Language-level helpers every module uses: attributes, cleanup, ownership. */

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* Take ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                                 \
        ({                                          \
                __typeof__(p) _tmp_ = (p);          \
                (p) = NULL;                         \
                _tmp_;                              \
        })

#define container_of(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))

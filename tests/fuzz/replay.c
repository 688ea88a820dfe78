/* SPDX-License-Identifier: MIT */
/* main() for builds without libFuzzer: runs LLVMFuzzerTestOneInput() once on every file named on
 * the command line and on every file of the directories named there, so that the corpus is a
 * regression test under `meson test` in every build (gcc, sanitizers, valgrind). Arguments
 * starting with '-' are libFuzzer options and ignored. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "util.h"

/* Defined by the targets that need it. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

#define INPUT_MAX ((size_t) 16 * 1024 * 1024)

static int run_file(const char *path) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0;

        int r = read_full_file(path, INPUT_MAX, &data, &size);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return r;
        }
        /* exactly size bytes, as libFuzzer passes them, so that ASan sees reads past the end */
        _cleanup_free_ uint8_t *copy = malloc(size > 0 ? size : 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, data, size);
        LLVMFuzzerTestOneInput(copy, size);
        return 0;
}

static int skip_dot(const struct dirent *de) {
        return de->d_name[0] != '.';
}

static int run_dir(const char *dir, size_t *n) {
        struct dirent **names = NULL;
        int k = scandir(dir, &names, skip_dot, alphasort), ret = 0;

        if (k < 0) {
                fprintf(stderr, "%s: %s\n", dir, strerror(errno));
                return -errno;
        }
        for (int i = 0; i < k; i++) {
                _cleanup_free_ char *path = strdup_printf("%s/%s", dir, names[i]->d_name);
                struct stat st;

                free(names[i]);
                if (!path) {
                        ret = -ENOMEM;
                        continue;
                }
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                int r = run_file(path);
                if (r < 0)
                        ret = r;
                else
                        (*n)++;
        }
        free(names);
        return ret;
}

int main(int argc, char **argv) {
        size_t n = 0;
        int ret = EXIT_SUCCESS;

        if (LLVMFuzzerInitialize)
                LLVMFuzzerInitialize(&argc, &argv);

        for (int i = 1; i < argc; i++) {
                struct stat st;
                int r;

                if (argv[i][0] == '-')
                        continue;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        ret = EXIT_FAILURE;
                        continue;
                }
                if (S_ISDIR(st.st_mode))
                        r = run_dir(argv[i], &n);
                else {
                        r = run_file(argv[i]);
                        n += r >= 0;
                }
                if (r < 0)
                        ret = EXIT_FAILURE;
        }
        printf("%s: %zu inputs replayed\n", argv[0], n);
        /* an empty corpus is a broken test, not a passing one */
        return n > 0 ? ret : EXIT_FAILURE;
}

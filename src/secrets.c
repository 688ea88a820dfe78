/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc-util.h"
#include "secrets.h"
#include "strv.h"
#include "util.h"

#define SECRET_FILE_MAX ((size_t) 64 * 1024)

static bool base64_char(unsigned char ch) {
        return ch < 0x80 && (isalnum(ch) || ch == '+' || ch == '/');
}

int webhook_secret_decode(const char *text, size_t size, char **ret, size_t *ret_size) {
        char *out;
        size_t n;

        if (!text || !ret)
                return -EINVAL;
        if (size > 0 && text[size - 1] == '\n') {
                size--;
                if (size > 0 && text[size - 1] == '\r')
                        size--;
        }

        if (size >= 6 && memcmp(text, "whsec_", 6) == 0) {
                const char *b = text + 6;
                size_t len = size - 6, data = 0, pad = 0;

                while (len > 0 && isspace((unsigned char) b[len - 1]))
                        len--;
                while (data < len && base64_char((unsigned char) b[data]))
                        data++;
                while (data + pad < len && b[data + pad] == '=')
                        pad++;
                if (data == 0 || data + pad != len || pad > 2 || data % 4 == 1)
                        return -EINVAL;
                if (pad > 0 && (data + pad) % 4 != 0)
                        return -EINVAL;

                /* EVP_DecodeBlock() wants whole quanta and counts padding as decoded zero bytes. */
                size_t quanta = (data + 3) / 4, missing = quanta * 4 - data;
                _cleanup_free_ unsigned char *in = malloc(quanta * 4);
                if (!in)
                        return -ENOMEM;
                memcpy(in, b, data);
                memset(in + data, '=', missing);
                out = malloc(quanta * 3 + 1);
                if (!out)
                        return -ENOMEM;
                int k = EVP_DecodeBlock((unsigned char *) out, in, (int) (quanta * 4));
                if (k < 0 || (size_t) k != quanta * 3) {
                        erase_and_free(out, quanta * 3 + 1);
                        return -EINVAL;
                }
                n = (size_t) k - missing;
        } else {
                out = malloc(size + 1);
                if (!out)
                        return -ENOMEM;
                memcpy(out, text, size);
                n = size;
        }
        out[n] = 0;
        *ret = out;
        if (ret_size)
                *ret_size = n;
        return 0;
}

void secret_done(Secret *s) {
        erase_and_free(s->data, s->size);
        free(s->origin);
        *s = (Secret) {};
}

/* Reads a credential or secret file: a FIFO or device would block or never end, so a file must be
 * regular (a credential is one systemd made). */
static int read_secret_file(const char *path, bool check_type, mode_t *ret_mode, char **ret, size_t *ret_size,
                            char **ret_error) {
        char buf[ESCAPE_BUF];
        struct stat st = {};
        int r;

        if (check_type) {
                if (stat(path, &st) < 0) {
                        r = -errno;
                        *ret_error = strdup_printf("cannot read %s: %s", escape_message(buf, path, true),
                                                   strerror(-r));
                        return *ret_error ? r : -ENOMEM;
                }
                if (!S_ISREG(st.st_mode)) {
                        *ret_error = strdup_printf("cannot read %s: not a regular file",
                                                   escape_message(buf, path, true));
                        return *ret_error ? -EINVAL : -ENOMEM;
                }
        }
        r = read_full_file(path, SECRET_FILE_MAX, ret, ret_size);
        if (r == -ENOMEM || (r == -ENOENT && !check_type)) /* no credential of that name */
                return r;
        if (r < 0) {
                *ret_error = strdup_printf("cannot read %s: %s", escape_message(buf, path, true),
                                           r == -EFBIG ? "file is larger than 64 KiB" : strerror(-r));
                return *ret_error ? r : -ENOMEM;
        }
        *ret_mode = st.st_mode;
        return 0;
}

/* Cuts data (NUL-terminated, size bytes) to its first line without the white space around it; what
 * is cut is wiped. Returns the new size. */
static size_t keep_first_line(char *data, size_t size) {
        const char *nl = memchr(data, '\n', size);
        if (nl) {
                size_t line = (size_t) (nl - data);
                explicit_bzero(data + line, size - line);
                size = line;
        }
        /* white space around a value is a copy-and-paste accident */
        while (size > 0 && (data[size - 1] == ' ' || data[size - 1] == '\t' || data[size - 1] == '\r'))
                data[--size] = 0;
        size_t lead = strspn(data, " \t");
        if (lead > 0) {
                memmove(data, data + lead, size - lead + 1);
                explicit_bzero(data + size - lead + 1, lead);
                size -= lead;
        }
        return size;
}

/* Checks and converts what was read (data is consumed). */
static int secret_parse(char *data, size_t size, SecretKind kind, const char *path, Secret *ret, char **ret_error) {
        char buf[ESCAPE_BUF];
        const char *problem = NULL;

        if (kind == SECRET_WEBHOOK) {
                char *key = NULL;
                size_t key_size = 0;
                int r = webhook_secret_decode(data, size, &key, &key_size);
                erase_and_free(data, size);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        problem = "starts with \"whsec_\" but is not valid base64";
                else if (key_size == 0) {
                        erase_and_free(key, key_size);
                        problem = "is empty";
                } else {
                        ret->data = key;
                        ret->size = key_size;
                        return 0;
                }
        } else {
                if (kind == SECRET_FIRST_LINE)
                        size = keep_first_line(data, size);
                if (size > 0 && data[size - 1] == '\n') {
                        data[--size] = 0;
                        if (size > 0 && data[size - 1] == '\r')
                                data[--size] = 0;
                }
                bool bad = false;
                for (size_t i = 0; i < size; i++)
                        if ((unsigned char) data[i] < 0x20 || (unsigned char) data[i] == 0x7f)
                                bad = true;
                if (size == 0 || bad) {
                        if (size == 0)
                                problem = "is empty";
                        else if (kind == SECRET_FIRST_LINE)
                                problem = "holds control characters in its first line";
                        else
                                problem = "holds more than one line or control characters";
                        erase_and_free(data, size);
                } else {
                        ret->data = data;
                        ret->size = size;
                        return 0;
                }
        }
        *ret_error = strdup_printf("%s %s", escape_message(buf, path, true), problem);
        return *ret_error ? -EINVAL : -ENOMEM;
}

int secret_load(const char *credential, const char *path, SecretKind kind, char ***warnings, Secret *ret,
                char **ret_error) {
        _cleanup_free_ char *cred_path = NULL;
        Secret s = {};
        char *data = NULL;
        size_t size = 0;
        mode_t mode = 0;
        int r = -ENOENT;

        *ret = (Secret) {};
        *ret_error = NULL;

        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        if (!isempty(dir)) {
                cred_path = path_join(dir, credential);
                if (!cred_path)
                        return -ENOMEM;
                r = read_secret_file(cred_path, false, &mode, &data, &size, ret_error);
                s.from_credential = r != -ENOENT;
        }
        if (r == -ENOENT) {
                if (!path)
                        return 0;
                r = read_secret_file(path, true, &mode, &data, &size, ret_error);
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                ret->from_credential = s.from_credential;
                return -EINVAL;
        }

        if (!s.from_credential && (mode & 0077) != 0 &&
            strv_consume(warnings, strdup_printf("%s is accessible by other users; secrets should be mode 0600",
                                                 path)) < 0) {
                erase_and_free(data, size);
                return -ENOMEM;
        }
        s.origin = s.from_credential ? strdup_printf("credential %s", credential) : strdup(path);
        if (!s.origin) {
                erase_and_free(data, size);
                return -ENOMEM;
        }
        r = secret_parse(data, size, kind, s.from_credential ? cred_path : path, &s, ret_error);
        if (r < 0) {
                ret->from_credential = s.from_credential;
                secret_done(&s);
                return r;
        }
        *ret = s;
        return 1;
}

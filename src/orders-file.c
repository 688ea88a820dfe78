/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "alloc-util.h"
#include "hashmap.h"
#include "orders-file.h"
#include "strv.h"
#include "util.h"

#define ORDERS_FILE_MAX ((size_t) 16 * 1024 * 1024)
#define ID_MAX 128

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

bool order_ref_id_is_valid(const char *s, size_t len) {
        return len >= 1 && len <= ID_MAX && ascii_alnum_or_in(s, len, "._~-");
}

OrderFile *order_file_unref(OrderFile *s) {
        if (s && --s->n_ref == 0)
                free(s);
        return NULL;
}

static void order_ref_done(OrderRef *o) {
        free(o->customer_id); /* and the order id inside it */
        order_file_unref(o->file);
}

void order_refs_free(OrderRef *orders, size_t n) {
        for (size_t i = 0; i < n; i++)
                order_ref_done(orders + i);
        free(orders);
}

void order_list_done(OrderList *l) {
        order_refs_free(l->items, l->n);
        order_file_unref(l->file);
        *l = (OrderList) {};
}

void order_list_take(OrderList *l, OrderRef **ret, size_t *ret_n) {
        *ret = TAKE_PTR(l->items);
        *ret_n = l->n;
        l->n = l->allocated = 0;
        order_list_done(l);
}

static int order_list_add(OrderList *l, const char *customer, size_t customer_len, const char *order,
                          size_t order_len, const char *file, unsigned line) {
        if (!l->file || !streq(l->file->path, file)) {
                size_t n = strlen(file);
                OrderFile *s = malloc(sizeof *s + n + 1);
                if (!s)
                        return -ENOMEM;
                s->n_ref = 1;
                memcpy(s->path, file, n + 1);
                order_file_unref(l->file);
                l->file = s;
        }
        if (!GREEDY_REALLOC(l->items, l->allocated, l->n + 1))
                return -ENOMEM;
        char *ids = malloc(customer_len + 1 + order_len + 1);
        if (!ids)
                return -ENOMEM;
        OrderRef o = { .customer_id = ids, .order_id = ids + customer_len + 1 };
        memcpy(o.customer_id, customer, customer_len);
        o.customer_id[customer_len] = 0;
        memcpy(o.order_id, order, order_len);
        o.order_id[order_len] = 0;
        o.file = l->file;
        o.file->n_ref++;
        o.line = line;
        l->items[l->n++] = o;
        return 0;
}

int order_list_add_line(OrderList *l, const char *value, const char *file, unsigned line, char *why,
                        size_t why_size) {
        char buf[ESCAPE_BUF];
        const char *p = value + strspn(value, WHITESPACE);
        const char *c = p;
        size_t cl = strcspn(p, WHITESPACE);
        p += cl;
        p += strspn(p, WHITESPACE);
        const char *o = p;
        size_t ol = strcspn(p, WHITESPACE);
        p += ol;
        p += strspn(p, WHITESPACE);

        if (cl == 0 || ol == 0 || *p) {
                snprintf(why, why_size, "%s is not \"CUSTOMER_ID ORDER_ID\"", escape_message(buf, value, true));
                return -EINVAL;
        }
        if (!order_ref_id_is_valid(c, cl) || !order_ref_id_is_valid(o, ol)) {
                bool customer = !order_ref_id_is_valid(c, cl);
                _cleanup_free_ char *bad = customer ? strndup(c, cl) : strndup(o, ol);
                if (!bad)
                        return -ENOMEM;
                snprintf(why, why_size,
                         "%s is not a valid %s ID (" ORDER_REF_ID_RULE ")",
                         escape_message(buf, bad, true), customer ? "customer" : "order");
                return -EINVAL;
        }
        return order_list_add(l, c, cl, o, ol, file, line);
}

static int parse_orders_list(const char *path, const char *data, size_t size, MessageList *errors,
                             OrderList *l) {
        char why[ORDER_WHY_MAX], buf[ESCAPE_BUF];
        unsigned line = 0;
        int ret = 0;

        for (size_t pos = 0; pos < size;) {
                const char *s = data + pos;
                const char *nl = memchr(s, '\n', size - pos);
                size_t len = nl ? (size_t) (nl - s) : size - pos;
                pos += nl ? len + 1 : len;
                line++;

                if (memchr(s, 0, len)) {
                        messages_add(errors, MESSAGE_NO_LINE, "%s:%u: line contains a NUL byte",
                                     escape_message(buf, path, false), line);
                        ret = -EINVAL;
                        continue;
                }
                _cleanup_free_ char *copy = strndup(s, len);
                if (!copy)
                        return -ENOMEM;
                char *hash = strchr(copy, '#'); /* never part of an ID */
                if (hash)
                        *hash = 0;
                char *v = strip(copy);
                if (!*v)
                        continue;
                int r = order_list_add_line(l, v, path, line, why, sizeof why);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        messages_add(errors, MESSAGE_NO_LINE, "%s:%u: %s", escape_message(buf, path, false), line, why);
                        ret = -EINVAL;
                }
        }
        return ret;
}

static int name_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int order_list_read_dir(OrderList *l, const char *dir, MessageList *errors) {
        char buf[ESCAPE_BUF];
        _cleanup_(closedirp) DIR *d = NULL;
        char **names = NULL;
        size_t n_names = 0, allocated = 0;
        int r, ret = 0;

        d = opendir(dir);
        if (!d) {
                if (errno == ENOENT)
                        return 0; /* nothing to watch yet */
                r = -errno;
                messages_add(errors, MESSAGE_NO_LINE, "%s: cannot read directory: %s", escape_message(buf, dir, false),
                             strerror(-r));
                return r;
        }
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0) {
                                ret = -errno;
                                messages_add(errors, MESSAGE_NO_LINE, "%s: cannot read directory: %s",
                                             escape_message(buf, dir, false), strerror(-ret));
                        }
                        break;
                }
                size_t len = strlen(de->d_name);
                if (de->d_name[0] == '.' || len <= 5 || !streq(de->d_name + len - 5, ".list"))
                        continue;
                if (!GREEDY_REALLOC(names, allocated, n_names + 1)) {
                        ret = -ENOMEM;
                        break;
                }
                names[n_names] = strdup(de->d_name);
                if (!names[n_names]) {
                        ret = -ENOMEM;
                        break;
                }
                n_names++;
        }
        if (n_names > 0)
                qsort(names, n_names, sizeof(char *), name_compare);

        for (size_t i = 0; i < n_names && ret != -ENOMEM; i++) {
                _cleanup_free_ char *path = path_join(dir, names[i]), *data = NULL;
                size_t size;
                struct stat st;

                if (!path) {
                        ret = -ENOMEM;
                        break;
                }
                if (stat(path, &st) < 0) {
                        if (errno == ENOENT) /* removed meanwhile */
                                continue;
                        ret = -errno;
                        messages_add(errors, MESSAGE_NO_LINE, "%s: %s", escape_message(buf, path, false), strerror(-ret));
                        continue;
                }
                if (!S_ISREG(st.st_mode))
                        continue;
                r = read_full_file(path, ORDERS_FILE_MAX, &data, &size);
                if (r == -ENOENT)
                        continue;
                if (r == -ENOMEM) {
                        ret = r;
                        break;
                }
                if (r < 0) {
                        messages_add(errors, MESSAGE_NO_LINE, "%s: %s", escape_message(buf, path, false),
                                     r == -EFBIG ? "file is larger than 16 MiB" : strerror(-r));
                        ret = r;
                        continue;
                }
                r = parse_orders_list(path, data, size, errors, l);
                if (r < 0 && (ret == 0 || r == -ENOMEM))
                        ret = r;
        }

        for (size_t i = 0; i < n_names; i++)
                free(names[i]);
        free(names);
        if (errors->oom)
                return -ENOMEM;
        return ret;
}

/* IDs are ASCII and compare case-insensitively. */
static uint64_t order_ref_hash(const void *key) {
        const OrderRef *o = key;
        uint64_t h = hash_string_case(o->customer_id, FNV_OFFSET);
        h = hash_bytes("", 1, h);
        return hash_string_case(o->order_id, h);
}

static bool order_ref_equal(const void *a, const void *b) {
        const OrderRef *x = a, *y = b;
        return strcasecmp(x->customer_id, y->customer_id) == 0 && strcasecmp(x->order_id, y->order_id) == 0;
}

static const HashOps order_ref_hash_ops = { .hash = order_ref_hash, .equal = order_ref_equal };

/* A hash table, not a sort: lists of 100,000 orders are read again on every reload. */
int order_list_dedup(OrderList *l, char ***warnings) {
        if (l->n < 2)
                return 0;

        _cleanup_(hashmap_freep) Hashmap *seen = hashmap_new(&order_ref_hash_ops);
        _cleanup_free_ size_t *first = calloc(l->n, sizeof(size_t)); /* SIZE_MAX: the first one */
        if (!seen || !first || hashmap_reserve(seen, l->n) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < l->n; i++) {
                first[i] = SIZE_MAX;
                int r = hashmap_put(seen, l->items + i, l->items + i);
                if (r == -EEXIST)
                        first[i] = (size_t) ((const OrderRef *) hashmap_get(seen, l->items + i) - l->items);
                else if (r < 0)
                        return r;
        }

        /* warnings first: compaction below overwrites the entries first[] points to */
        for (size_t i = 0; warnings && i < l->n; i++) {
                if (first[i] == SIZE_MAX)
                        continue;
                const OrderRef *o = l->items + i;
                int r = strv_consume(warnings, strdup_printf("%s:%u: order %s %s is listed twice (first at %s:%u)",
                                                             ORDER_REF_WHERE(o), o->customer_id, o->order_id,
                                                             ORDER_REF_WHERE(&l->items[first[i]])));
                if (r < 0)
                        return r;
        }

        size_t n = 0;
        for (size_t i = 0; i < l->n; i++) {
                if (first[i] == SIZE_MAX)
                        l->items[n++] = l->items[i];
                else
                        order_ref_done(l->items + i);
        }
        l->n = n;
        return 0;
}

int config_read_orders_dir(const char *dir, FILE *err, OrderRef **orders, size_t *n_orders) {
        MessageList errors = {};
        OrderList l = {};
        int r;

        if (!dir || !orders || !n_orders)
                return -EINVAL;
        r = order_list_read_dir(&l, dir, &errors);
        if (r >= 0)
                r = order_list_dedup(&l, NULL);
        messages_print(&errors, err);
        if (r >= 0 && errors.n > 0)
                r = -EINVAL;
        messages_done(&errors);
        if (r < 0) {
                order_list_done(&l);
                return r;
        }
        order_list_take(&l, orders, n_orders);
        return 0;
}

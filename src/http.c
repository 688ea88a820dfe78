/* SPDX-License-Identifier: MIT */
/* libcurl multi driven by libuv, after curl's docs/examples/multi-uv.c, plus: messages are drained
 * after every action (timeouts included), poll errors reach curl as CURL_CSELECT_ERR, every setopt
 * is checked, and handle memory is only freed in close callbacks. */
#include <curl/curl.h>
#include <stdio.h>
#include <strings.h>
#include <unistd.h>

#include "http.h"
#include "log.h"

#define HTTP_DEFAULT_MAX_BODY (8u * 1024u * 1024u)
#define HTTP_SPARE_HANDLES 256

/* What a finished easy handle keeps of the options its request set: a plain request (a GET without an
 * extra CA bundle) sets every option a plain request uses on every use, so the next plain request
 * takes the handle as it is; anything else starts from curl_easy_reset(). */
typedef enum EasyProfile {
        EASY_NEW,   /* curl_easy_init() or curl_easy_reset(): nothing set */
        EASY_PLAIN, /* the options of a plain request */
        EASY_OTHER,
} EasyProfile;

typedef struct Spare {
        CURL *easy;
        EasyProfile profile;
} Spare;

struct HttpRequest {
        Http *http;
        CURL *easy;
        EasyProfile profile;
        /* the headers in one allocation: the list's nodes, then their strings */
        struct curl_slist *headers;
        size_t headers_size;
        char *post_body;
        size_t post_body_size;
        char *body;
        size_t body_size, body_alloc, max_body;
        bool too_large;
        bool sensitive;
        bool wipe_answer;
        char capture_name[64];
        char *captured;
        uint64_t start_usec;
        HttpDoneFn done;
        void *userdata;
        char error[CURL_ERROR_SIZE];
        HttpRequest *prev, *next;
        bool waiting;               /* not yet handed to curl (see Http.waiting) */
        HttpRequest *waiting_next;
};

/* One per socket curl opened, from curl's first interest in it until curl closes it: curl forgets a
 * connection's socket whenever a transfer on it ends (CURL_POLL_REMOVE) and asks for it again, in the
 * same state, when the next transfer reuses the connection. Stopping and restarting the uv_poll for
 * that would cost libuv's epoll_ctl() calls every request (uv_poll_start() deletes before it adds,
 * and a new handle checks the descriptor with an add and a delete of its own). */
typedef struct SocketContext {
        uv_poll_t poll;
        curl_socket_t fd;
        Http *http;
        int events;  /* what the uv_poll watches now */
        bool wanted; /* curl watches the socket: between its interest and CURL_POLL_REMOVE */
        struct SocketContext *prev, *next;
} SocketContext;

/* See Http.waiting: 8, 16 and 32 measured the same (bench/README.md), 1 and "all" slower. */
#define HTTP_SEND_BURST 16

struct Http {
        uv_loop_t *loop;
        CURLM *multi;
        uv_timer_t timer;
        /* curl's "timeout 0": its action runs once this loop iteration's I/O is done, never from inside
         * the timer phase (libuv runs a timer re-armed at 0 by its own callback again in the same pass,
         * so request after request would be served one at a time without ever polling the others). */
        uv_idle_t immediate;
        /* Requests submitted since the last idle phase, handed to curl together there or once
         * HTTP_SEND_BURST of them wait: curl starts a new handle from inside any socket action, so a
         * request submitted by an answer's callback would go out right after that answer, one at a
         * time, each finding a server that answers faster than answers are processed asleep and
         * waking it (on one machine: the client's most expensive system call). Sent back to back,
         * they are served in one wake-up. */
        HttpRequest *waiting, *waiting_tail;
        size_t n_waiting;
        HttpRequest *requests; /* in flight, waiting ones included */
        size_t n_requests;
        SocketContext *sockets;  /* with an open uv_poll */
        SocketContext **by_fd;   /* the same, by descriptor */
        size_t n_by_fd;
        unsigned open_handles; /* uv handles not yet closed, incl. the timer and the idle handle */
        bool freeing;
        /* Finished easy handles for the next requests: creating one per request allocates and frees
         * its buffers every time. */
        Spare spare[HTTP_SPARE_HANDLES];
        size_t n_spare;
};

static void http_maybe_release(Http *h) {
        if (h->freeing && h->open_handles == 0)
                free(h);
}

static void handle_closed(uv_handle_t *handle) {
        Http *h = handle->data;
        h->open_handles--;
        http_maybe_release(h);
}

static void socket_context_closed(uv_handle_t *handle) {
        SocketContext *c = handle->data;
        Http *h = c->http;
        free(c);
        h->open_handles--;
        http_maybe_release(h);
}

static SocketContext *socket_context_get(Http *h, curl_socket_t fd) {
        return fd >= 0 && (size_t) fd < h->n_by_fd ? h->by_fd[fd] : NULL;
}

static void socket_context_close(Http *h, SocketContext *c) {
        /* uv_close() takes the descriptor out of epoll right away, before curl closes it */
        uv_poll_stop(&c->poll);
        if (socket_context_get(h, c->fd) == c)
                h->by_fd[c->fd] = NULL;
        if (c->prev)
                c->prev->next = c->next;
        else
                h->sockets = c->next;
        if (c->next)
                c->next->prev = c->prev;
        uv_close((uv_handle_t *) &c->poll, socket_context_closed);
}

static void request_free(HttpRequest *r) {
        if (!r)
                return;
        if (r->easy && r->http && !r->http->freeing && r->http->n_spare < HTTP_SPARE_HANDLES) {
                /* the pointers into this request must not outlive it */
                (void) curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, NULL);
                (void) curl_easy_setopt(r->easy, CURLOPT_PRIVATE, NULL);
                (void) curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, NULL);
                r->http->spare[r->http->n_spare++] = (Spare) { r->easy, r->profile };
        } else if (r->easy)
                curl_easy_cleanup(r->easy);
        if (r->sensitive) {
                if (r->headers)
                        explicit_bzero(r->headers, r->headers_size);
                if (r->post_body)
                        explicit_bzero(r->post_body, r->post_body_size);
        }
        /* only the bytes received were ever written (the sensitive path does not realloc) */
        if (r->wipe_answer && r->body)
                explicit_bzero(r->body, r->body_size + 1);
        free(r->headers);
        free(r->post_body);
        free(r->body);
        free(r->captured);
        free(r);
}

static HttpResult result_from_curl(CURLcode c, bool too_large) {
        if (too_large)
                return HTTP_TOO_LARGE;
        switch (c) {
        case CURLE_OK:
                return HTTP_OK;
        case CURLE_OPERATION_TIMEDOUT:
                return HTTP_TIMEOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_CONNECT:
                return HTTP_CONNECT_FAILED;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CRL_BADFILE:
                return HTTP_TLS_FAILED;
        default:
                return HTTP_FAILED;
        }
}

static void request_unlink(Http *h, HttpRequest *r) {
        if (r->waiting) {
                HttpRequest **p = &h->waiting;
                while (*p != r)
                        p = &(*p)->waiting_next;
                *p = r->waiting_next;
                if (h->waiting_tail == r) {
                        h->waiting_tail = NULL;
                        for (HttpRequest *w = h->waiting; w; w = w->waiting_next)
                                h->waiting_tail = w;
                }
                r->waiting = false;
                r->waiting_next = NULL;
                h->n_waiting--;
        }
        if (r->prev)
                r->prev->next = r->next;
        else
                h->requests = r->next;
        if (r->next)
                r->next->prev = r->prev;
        r->prev = r->next = NULL;
        h->n_requests--;
}

static void check_multi_info(Http *h) {
        CURLMsg *msg;
        int pending;

        while ((msg = curl_multi_info_read(h->multi, &pending))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                CURL *easy = msg->easy_handle;
                CURLcode result = msg->data.result;
                HttpRequest *r = NULL;
                (void) curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &r);
                curl_multi_remove_handle(h->multi, easy);
                if (!r)
                        continue;
                request_unlink(h, r);

                HttpResponse resp = {
                        .result = result_from_curl(result, r->too_large),
                        .retry_after_sec = -1,
                        .duration_usec = now_monotonic_usec() - r->start_usec,
                        .captured_header = r->captured,
                };
                (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &resp.status);
                curl_off_t ra = -1;
                if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra >= 0 &&
                    resp.status != 0) {
                        /* curl reports 0 both for "Retry-After: 0" and for no header; a 0 means
                         * "now" either way, so only a positive value is kept. */
                        resp.retry_after_sec = ra > 0 ? (int64_t) ra : -1;
                }
                if (resp.result != HTTP_OK) {
                        if (r->too_large)
                                resp.error = "answer larger than the limit";
                        else
                                resp.error = r->error[0] ? r->error : curl_easy_strerror(result);
                }
                resp.body = r->body ? r->body : "";
                resp.body_size = r->body_size;
                r->done(&resp, r->userdata);
                request_free(r);
        }
}

static void multi_action(Http *h, curl_socket_t fd, int flags) {
        int running;
        CURLMcode mc = curl_multi_socket_action(h->multi, fd, flags, &running);
        if (mc != CURLM_OK)
                log_debug("curl_multi_socket_action: %s", curl_multi_strerror(mc));
        check_multi_info(h);
}

static void add_waiting(Http *h);

static void socket_action(Http *h, curl_socket_t fd, int flags) {
        multi_action(h, fd, flags);
        /* a full burst goes out at once, rather than after all of the iteration's answers: the
         * server then works while the answers are read */
        if (fd != CURL_SOCKET_TIMEOUT && h->n_waiting >= HTTP_SEND_BURST) {
                add_waiting(h);
                multi_action(h, CURL_SOCKET_TIMEOUT, 0);
        }
}

static void on_poll(uv_poll_t *p, int status, int events) {
        SocketContext *c = p->data;
        if (!c->wanted) {
                /* an idle connection that the server closed (or a write interest left over): curl finds
                 * out for itself when it tries to reuse it */
                uv_poll_stop(&c->poll);
                c->events = 0;
                return;
        }
        int flags = 0;
        if (status < 0)
                flags = CURL_CSELECT_ERR;
        else {
                if (events & UV_READABLE)
                        flags |= CURL_CSELECT_IN;
                if (events & UV_WRITABLE)
                        flags |= CURL_CSELECT_OUT;
        }
        socket_action(c->http, c->fd, flags);
}

static void on_timeout(uv_timer_t *t) {
        Http *h = t->data;
        socket_action(h, CURL_SOCKET_TIMEOUT, 0);
}

/* The waiting requests to curl, which sends them in the action that follows. */
static void add_waiting(Http *h) {
        while (h->waiting) {
                HttpRequest *r = h->waiting;
                h->waiting = r->waiting_next;
                if (!h->waiting)
                        h->waiting_tail = NULL;
                r->waiting = false;
                r->waiting_next = NULL;
                h->n_waiting--;
                if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
                        /* as an answer would: the callback may submit again, to the end of the list */
                        request_unlink(h, r);
                        r->done(&(HttpResponse) { .result = HTTP_FAILED, .retry_after_sec = -1,
                                                  .error = "cannot start the request" },
                                r->userdata);
                        request_free(r);
                }
        }
}

static void on_immediate(uv_idle_t *i) {
        Http *h = i->data;
        uv_idle_stop(i);
        add_waiting(h);
        socket_action(h, CURL_SOCKET_TIMEOUT, 0);
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        Http *h = userp;
        uv_timer_stop(&h->timer);
        if (timeout_ms == 0 || h->waiting)
                /* through the loop all the same: curl must not be re-entered from its callback */
                uv_idle_start(&h->immediate, on_immediate);
        else
                uv_idle_stop(&h->immediate);
        if (timeout_ms > 0)
                uv_timer_start(&h->timer, on_timeout, (uint64_t) timeout_ms, 0);
        return 0;
}

static SocketContext *socket_context_new(Http *h, curl_socket_t fd) {
        if (fd < 0)
                return NULL;
        if ((size_t) fd >= h->n_by_fd) {
                size_t n = h->n_by_fd ? h->n_by_fd : 64;
                while (n <= (size_t) fd)
                        n *= 2;
                SocketContext **b = realloc(h->by_fd, n * sizeof *b);
                if (!b)
                        return NULL;
                memset(b + h->n_by_fd, 0, (n - h->n_by_fd) * sizeof *b);
                h->by_fd = b;
                h->n_by_fd = n;
        }
        SocketContext *c = calloc(1, sizeof *c);
        if (!c)
                return NULL;
        c->fd = fd;
        c->http = h;
        if (uv_poll_init_socket(h->loop, &c->poll, fd) < 0) {
                free(c);
                return NULL;
        }
        c->poll.data = c;
        c->next = h->sockets;
        if (h->sockets)
                h->sockets->prev = c;
        h->sockets = c;
        h->by_fd[fd] = c;
        h->open_handles++;
        return c;
}

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp) {
        Http *h = userp;
        SocketContext *c = socketp ? socketp : socket_context_get(h, fd);

        if (action == CURL_POLL_REMOVE) {
                /* the poll stays as it is until the socket is closed or has an event (see SocketContext) */
                if (c)
                        c->wanted = false;
                return 0;
        }

        if (!c && !(c = socket_context_new(h, fd)))
                return -1;
        if (!socketp)
                curl_multi_assign(h->multi, fd, c);
        c->wanted = true;
        int events = 0;
        if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
                events |= UV_READABLE;
        if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
                events |= UV_WRITABLE;
        if (events != c->events) {
                if (uv_poll_start(&c->poll, events, on_poll) < 0)
                        return -1;
                c->events = events;
        }
        return 0;
}

/* Every socket curl closes passes here, the idle ones of its connection cache included: its poll goes
 * first. */
static int close_socket_cb(void *clientp, curl_socket_t fd) {
        Http *h = clientp;
        SocketContext *c = socket_context_get(h, fd);
        if (c)
                socket_context_close(h, c);
        return close(fd) < 0 ? 1 : 0;
}

int http_global_init(void) {
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void http_global_cleanup(void) {
        curl_global_cleanup();
}

int http_new(uv_loop_t *loop, Http **ret) {
        Http *h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->loop = loop;
        h->multi = curl_multi_init();
        if (!h->multi) {
                free(h);
                return -ENOMEM;
        }
        if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX) != CURLM_OK) {
                curl_multi_cleanup(h->multi);
                free(h);
                return -EIO;
        }
        uv_timer_init(loop, &h->timer);
        h->timer.data = h;
        uv_idle_init(loop, &h->immediate);
        h->immediate.data = h;
        h->open_handles = 2;
        *ret = h;
        return 0;
}

void http_free(Http *h) {
        if (!h)
                return;
        while (h->requests) {
                HttpRequest *r = h->requests;
                curl_multi_remove_handle(h->multi, r->easy);
                request_unlink(h, r);
                request_free(r);
        }
        /* Cleaning up the multi handle may report sockets as removed (closing their polls); any
         * left are closed below. */
        curl_multi_cleanup(h->multi);
        h->multi = NULL;
        while (h->n_spare > 0)
                curl_easy_cleanup(h->spare[--h->n_spare].easy);
        while (h->sockets)
                socket_context_close(h, h->sockets);
        free(h->by_fd);
        h->by_fd = NULL;
        h->n_by_fd = 0;
        h->freeing = true;
        uv_timer_stop(&h->timer);
        uv_close((uv_handle_t *) &h->timer, handle_closed);
        uv_idle_stop(&h->immediate);
        uv_close((uv_handle_t *) &h->immediate, handle_closed);
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
        HttpRequest *r = userdata;
        size_t n = size * nmemb;
        if (r->body_size + n > r->max_body) {
                r->too_large = true;
                return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        if (r->body_size + n + 1 > r->body_alloc) {
                size_t a = r->body_alloc ? r->body_alloc : 4096;
                while (a < r->body_size + n + 1)
                        a *= 2;
                char *b;
                if (r->wipe_answer) {
                        /* realloc() could leave a copy behind unwiped */
                        b = malloc(a);
                        if (!b)
                                return 0;
                        if (r->body) {
                                memcpy(b, r->body, r->body_size);
                                explicit_bzero(r->body, r->body_alloc);
                                free(r->body);
                        }
                } else {
                        b = realloc(r->body, a);
                        if (!b)
                                return 0;
                }
                r->body = b;
                r->body_alloc = a;
        }
        memcpy(r->body + r->body_size, ptr, n);
        r->body_size += n;
        r->body[r->body_size] = 0;
        return n;
}

/* Only the one header the caller asked for is kept; the rest are not looked at. */
static size_t header_cb(char *buffer, size_t size, size_t nitems, void *userdata) {
        HttpRequest *r = userdata;
        size_t n = size * nitems, l = strlen(r->capture_name);
        if (n > l + 1 && buffer[l] == ':' && strncasecmp(buffer, r->capture_name, l) == 0) {
                const char *v = buffer + l + 1, *end = buffer + n;
                while (v < end && (*v == ' ' || *v == '\t'))
                        v++;
                while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
                        end--;
                free(r->captured);
                r->captured = strndup(v, (size_t) (end - v));
        }
        return n;
}

#define SETOPT(easy, opt, val)                                        \
        do {                                                          \
                if (curl_easy_setopt(easy, opt, val) != CURLE_OK)     \
                        goto fail;                                    \
        } while (0)

/* The header lines as one curl_slist in one allocation (curl only reads the list): one malloc and one
 * wipe instead of two of each per line. */
static int headers_build(HttpRequest *r, const char *const *headers) {
        size_t n = 0, chars = 0;
        for (const char *const *hd = headers; hd && *hd; hd++) {
                n++;
                chars += strlen(*hd) + 1;
        }
        if (n == 0)
                return 0;
        size_t size = n * sizeof(struct curl_slist) + chars;
        struct curl_slist *l = malloc(size);
        if (!l)
                return -ENOMEM;
        char *p = (char *) (l + n);
        for (size_t i = 0; i < n; i++) {
                size_t k = strlen(headers[i]) + 1;
                memcpy(p, headers[i], k);
                l[i] = (struct curl_slist) { .data = p, .next = i + 1 < n ? &l[i + 1] : NULL };
                p += k;
        }
        r->headers = l;
        r->headers_size = size;
        return 0;
}

/* The options every plain request sets the same way: set once per handle. */
static int setopt_plain_fixed(HttpRequest *r) {
        CURL *e = r->easy;
        SETOPT(e, CURLOPT_NOSIGNAL, 1L);
        SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
        SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
        SETOPT(e, CURLOPT_SSL_VERIFYPEER, 1L);
        SETOPT(e, CURLOPT_SSL_VERIFYHOST, 2L);
        SETOPT(e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);
        SETOPT(e, CURLOPT_WRITEFUNCTION, write_cb);
        SETOPT(e, CURLOPT_ACCEPT_ENCODING, "");
        SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
        SETOPT(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
        SETOPT(e, CURLOPT_CLOSESOCKETDATA, r->http);
        /* 4 KiB rather than 16: curl reads an answer into it piece by piece (Partner Center's are
         * mostly smaller), and 64 handles' buffers of 16 KiB were 0.45 MB of the peak RSS. */
        SETOPT(e, CURLOPT_BUFFERSIZE, 4096L);
        return 0;
fail:
        return -EIO;
}

static void take_easy(Http *h, HttpRequest *r, EasyProfile want) {
        if (h->n_spare == 0) {
                r->easy = curl_easy_init();
                r->profile = EASY_NEW;
                return;
        }
        Spare s = h->spare[--h->n_spare];
        r->easy = s.easy;
        r->profile = s.profile;
        if (r->profile != EASY_NEW && (r->profile != want || want != EASY_PLAIN)) {
                curl_easy_reset(r->easy);
                r->profile = EASY_NEW;
        }
}

int http_submit(Http *h, const HttpRequestSpec *spec, HttpDoneFn done, void *userdata, HttpRequest **ret) {
        bool post = spec->method && streq(spec->method, "POST");
        bool plain = (!spec->method || streq(spec->method, "GET")) && !spec->ca_file;

        if (spec->capture_header && strlen(spec->capture_header) >= sizeof ((HttpRequest *) NULL)->capture_name)
                return -EINVAL;
        HttpRequest *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->http = h;
        r->done = done;
        r->userdata = userdata;
        r->max_body = spec->max_body ? spec->max_body : HTTP_DEFAULT_MAX_BODY;
        r->sensitive = spec->sensitive;
        r->wipe_answer = spec->sensitive && !spec->public_answer;
        take_easy(h, r, plain ? EASY_PLAIN : EASY_OTHER);
        if (!r->easy)
                goto fail;
        if (headers_build(r, spec->headers) < 0)
                goto fail;

        CURL *e = r->easy;
        if (r->profile == EASY_NEW && setopt_plain_fixed(r) < 0)
                goto fail;
        r->profile = plain ? EASY_PLAIN : EASY_OTHER;
        SETOPT(e, CURLOPT_URL, spec->url);
        SETOPT(e, CURLOPT_PRIVATE, r);
        /* Waiting for a connection to multiplex on only makes sense where TLS tells at once
         * whether HTTP/2 is spoken; over plain http curl would queue every request to that host
         * behind the one in flight (curl#15838), and a slow webhook would delay all others. */
        SETOPT(e, CURLOPT_PIPEWAIT, strncmp(spec->url, "https:", 6) == 0 ? 1L : 0L);
        SETOPT(e, CURLOPT_ERRORBUFFER, r->error);
        SETOPT(e, CURLOPT_WRITEDATA, r);
        SETOPT(e, CURLOPT_HTTPHEADER, r->headers);
        if (spec->capture_header) {
                strcpy(r->capture_name, spec->capture_header);
                SETOPT(e, CURLOPT_HEADERFUNCTION, header_cb);
                SETOPT(e, CURLOPT_HEADERDATA, r);
        } else {
                SETOPT(e, CURLOPT_HEADERFUNCTION, NULL);
                SETOPT(e, CURLOPT_HEADERDATA, NULL);
        }
        SETOPT(e, CURLOPT_TIMEOUT_MS, (long) ((spec->timeout_usec + 999) / 1000));
        if (spec->ca_file)
                /* OpenSSL keeps using the system CA directory next to this file, so the bundle
                 * adds trust rather than replacing it. */
                SETOPT(e, CURLOPT_CAINFO, spec->ca_file);
        if (post) {
                r->post_body = malloc(spec->body_size + 1);
                if (!r->post_body)
                        goto fail;
                memcpy(r->post_body, spec->body ? spec->body : "", spec->body_size);
                r->post_body[spec->body_size] = 0;
                r->post_body_size = spec->body_size;
                SETOPT(e, CURLOPT_POST, 1L);
                SETOPT(e, CURLOPT_POSTFIELDS, r->post_body);
                SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) spec->body_size);
        } else if (spec->method && !streq(spec->method, "GET"))
                SETOPT(e, CURLOPT_CUSTOMREQUEST, spec->method);

        r->start_usec = now_monotonic_usec();
        r->waiting = true;
        if (h->waiting_tail)
                h->waiting_tail->waiting_next = r;
        else
                h->waiting = r;
        h->waiting_tail = r;
        h->n_waiting++;
        uv_idle_start(&h->immediate, on_immediate);

        r->next = h->requests;
        if (h->requests)
                h->requests->prev = r;
        h->requests = r;
        h->n_requests++;
        if (ret)
                *ret = r;
        return 0;

fail:
        request_free(r);
        return -EIO;
}

void http_cancel(Http *h, HttpRequest *r) {
        if (!r)
                return;
        curl_multi_remove_handle(h->multi, r->easy);
        request_unlink(h, r);
        request_free(r);
}

size_t http_in_flight(Http *h) {
        return h->n_requests;
}

/* SPDX-License-Identifier: MIT */
#include <openssl/evp.h>
#include <stdio.h>

#include "log.h"
#include "partner-center.h"
#include "poller.h"

#define MAX_PAGES 100

struct Poll {
        Poller *poller;
        PcCall *call;
        Snapshot *snap;
        uint8_t known_digest[POLL_DIGEST_SIZE];
        bool has_known_digest;
        uint8_t digest[POLL_DIGEST_SIZE];
        bool has_digest;
        PollDoneFn done;
        PollAbandonFn abandon;
        void *userdata;
        Poll *prev, *next;
        char order_id[]; /* for the debug log */
};

struct Poller {
        PcClient *client;
        const Config *config;
        EVP_MD *sha256;
        EVP_MD_CTX *ctx;
        EVP_MD_CTX *prefix; /* ctx after the part every answer's digest starts with; NULL: none */
        Poll *polls;
};

static void poll_free(Poll *poll) {
        Poller *p = poll->poller;
        if (poll->prev)
                poll->prev->next = poll->next;
        else
                p->polls = poll->next;
        if (poll->next)
                poll->next->prev = poll->prev;
        pc_call_free(poll->call);
        snapshot_free(poll->snap);
        free(poll);
}

static void poll_abandon(Poll *poll) {
        if (poll->abandon)
                poll->abandon(poll->userdata);
        poll_free(poll);
}

void poll_cancel(Poll *poll) {
        if (poll)
                poll_abandon(poll);
}

/* What an answer means depends on its bytes and on the terminal statuses (for "settled"); the digest
 * covers both, so that a changed configuration never reuses an old interpretation. The part before
 * the answer is hashed once per configuration, into p->prefix. */
static void digest_prefix(Poller *p) {
        static const char version[] = "provwatch answer 1";
        bool ok = p->sha256 && p->prefix && EVP_DigestInit_ex(p->prefix, p->sha256, NULL) == 1 &&
                  EVP_DigestUpdate(p->prefix, version, sizeof version) == 1;
        for (char **t = p->config->terminal_statuses; ok && t && *t; t++)
                ok = EVP_DigestUpdate(p->prefix, *t, strlen(*t) + 1) == 1;
        if (!ok || EVP_DigestUpdate(p->prefix, "", 1) != 1) {
                /* without a digest every answer is parsed, which is merely slower */
                EVP_MD_CTX_free(p->prefix);
                p->prefix = NULL;
        }
}

static bool answer_digest(Poller *p, const char *body, size_t size, uint8_t ret[static POLL_DIGEST_SIZE]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;

        if (!p->prefix || !p->ctx || EVP_MD_CTX_copy_ex(p->ctx, p->prefix) != 1 ||
            EVP_DigestUpdate(p->ctx, body, size) != 1 || EVP_DigestFinal_ex(p->ctx, md, &n) != 1 ||
            n < POLL_DIGEST_SIZE)
                return false;
        memcpy(ret, md, POLL_DIGEST_SIZE);
        return true;
}

static void finish(Poll *poll, PollAnswer *a, const PcAnswer *pa) {
        a->correlation_id = pa->correlation_id;
        a->request_id = pa->request_id;
        a->ms_cv = pa->ms_cv;
        a->duration_usec = pa->duration_usec;
        if (a->outcome == POLL_OUTCOME_OK && !a->snapshot)
                a->snapshot = TAKE_PTR(poll->snap);
        if (a->outcome == POLL_OUTCOME_OK && poll->has_digest) {
                memcpy(a->digest, poll->digest, sizeof a->digest);
                a->has_digest = true;
        }
        poll->done(a, poll->userdata);
        snapshot_free(a->snapshot);
        poll_free(poll);
}

static void finish_failed(Poll *poll, const PcAnswer *pa, long status, const char *reason) {
        finish(poll, &(PollAnswer) { .outcome = POLL_OUTCOME_FAILED, .http_status = status, .reason = reason }, pa);
}

static char *error_reason(const PcAnswer *pa, char **ret_code, char **ret_description) {
        char *code = NULL, *desc = NULL;
        (void) pc_parse_error(pa->body, pa->body_size, &code, &desc);
        char *reason = desc ? strdup_printf("HTTP %ld: %s", pa->status, desc) : strdup_printf("HTTP %ld", pa->status);
        if (ret_code)
                *ret_code = code;
        else
                free(code);
        if (ret_description)
                *ret_description = desc;
        else
                free(desc);
        return reason;
}

static void on_page(Poll *poll, const PcAnswer *pa) {
        Poller *p = poll->poller;
        PcPage page = {};
        const char *why = NULL;

        /* Steady state is the same answer again and again: a first page whose digest matches the
         * stored one needs no parsing, no snapshot and no diff. */
        if (pa->page == 1) {
                poll->has_digest = answer_digest(p, pa->body, pa->body_size, poll->digest);
                if (poll->has_digest && poll->has_known_digest &&
                    memcmp(poll->digest, poll->known_digest, POLL_DIGEST_SIZE) == 0) {
                        snapshot_free(TAKE_PTR(poll->snap));
                        finish(poll, &(PollAnswer) { .outcome = POLL_OUTCOME_OK, .http_status = 200 }, pa);
                        return;
                }
        }
        int r = pc_parse_provisioning_page(pa->body, pa->body_size, poll->snap, &page, &why);
        if (r < 0) {
                _cleanup_free_ char *reason = strdup_printf("unexpected answer: %s", why ? why : "malformed");
                finish_failed(poll, pa, 200, reason ? reason : "unexpected answer");
        } else if (page.next_uri && pa->page >= MAX_PAGES) {
                finish_failed(poll, pa, 200, "more than 100 pages");
        } else if (page.next_uri) {
                poll->has_digest = false; /* only single-page answers are remembered */
                r = pc_call_next_page(poll->call, page.next_uri, page.next_headers);
                if (r < 0)
                        finish_failed(poll, pa, 200, "out of memory");
                else
                        page.next_headers = NULL;
        } else {
                snapshot_finish(poll->snap);
                finish(poll, &(PollAnswer) { .outcome = POLL_OUTCOME_OK, .http_status = 200 }, pa);
        }
        pc_page_done(&page);
}

static void on_answer(PcCall *call, const PcAnswer *pa, void *userdata) {
        Poll *poll = userdata;

        log_debug("Order '%s': HTTP %ld (%s), %zu bytes.", poll->order_id, pa->status,
                  pa->result == HTTP_OK ? "complete" : pa->error, pa->body_size);
        if (pa->result != HTTP_OK) {
                _cleanup_free_ char *reason = pa->result == HTTP_TOO_LARGE
                                                      ? strdup_printf("answer larger than %u bytes", PC_MAX_BODY)
                                                      : strdup_printf("transport error: %s", pa->error);
                finish(poll,
                       &(PollAnswer) {
                               .outcome = POLL_OUTCOME_FAILED,
                               .timed_out = pa->result == HTTP_TIMEOUT,
                               .http_status = pa->status,
                               .reason = reason ? reason : "transport error",
                       },
                       pa);
        } else if (pa->status == 200) {
                on_page(poll, pa);
        } else if (pa->status == 404) {
                _cleanup_free_ char *code = NULL, *desc = NULL;
                _cleanup_free_ char *reason = error_reason(pa, &code, &desc);
                finish(poll,
                       &(PollAnswer) {
                               .outcome = POLL_OUTCOME_NOT_FOUND,
                               .http_status = 404,
                               .reason = reason,
                               .code = code,
                               .description = desc,
                       },
                       pa);
        } else if (pa->status == 429) {
                finish(poll,
                       &(PollAnswer) {
                               .outcome = POLL_OUTCOME_FAILED,
                               .throttled = true,
                               .http_status = 429,
                               .reason = "rate limited (HTTP 429)",
                       },
                       pa);
        } else {
                _cleanup_free_ char *reason = error_reason(pa, NULL, NULL);
                finish_failed(poll, pa, pa->status, reason ? reason : "HTTP error");
        }
}

int poller_start(Poller *p, const PollTarget *t, PollDoneFn done, PollAbandonFn abandon, void *userdata,
                 Poll **ret) {
        size_t n = strlen(t->order_id) + 1;
        Poll *poll = calloc(1, sizeof *poll + n);
        if (!poll)
                return -ENOMEM;
        memcpy(poll->order_id, t->order_id, n);
        poll->poller = p;
        poll->done = done;
        poll->abandon = abandon;
        poll->userdata = userdata;
        poll->next = p->polls;
        if (p->polls)
                p->polls->prev = poll;
        p->polls = poll;
        if (t->known_digest) {
                memcpy(poll->known_digest, t->known_digest, POLL_DIGEST_SIZE);
                poll->has_known_digest = true;
        }
        poll->snap = snapshot_new();
        _cleanup_free_ char *url = pc_provisioning_url(p->config->endpoint, p->config->api_version, t->customer_id,
                                                       t->order_id);
        if (!poll->snap || !url) {
                poll_free(poll);
                return -ENOMEM;
        }
        if (ret)
                *ret = poll;
        int r = pc_call_new(p->client, url, t->request_id, on_answer, poll, &poll->call);
        if (r < 0) {
                poll_free(poll);
                return r;
        }
        return 0;
}

void poller_set_config(Poller *p, const Config *config) {
        p->config = config;
        if (!p->prefix)
                p->prefix = EVP_MD_CTX_new();
        digest_prefix(p);
}

int poller_new(PcClient *client, const Config *config, Poller **ret) {
        Poller *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->client = client;
        p->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        p->ctx = EVP_MD_CTX_new();
        poller_set_config(p, config); /* and the digest's prefix */
        *ret = p;
        return 0;
}

Poller *poller_free(Poller *p) {
        if (!p)
                return NULL;
        while (p->polls)
                poll_abandon(p->polls);
        EVP_MD_CTX_free(p->ctx);
        EVP_MD_CTX_free(p->prefix);
        EVP_MD_free(p->sha256);
        free(p);
        return NULL;
}

/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"
#include "partner-center.h"

/* Partner Center's activity log (audit records) as SPEC §8 reads it: the request of one read and the
 * meaning of each record on a page. Pure: no clocks, no I/O. */

typedef enum AuditVerdict {
        AUDIT_CREATE_ORDER, /* a succeeded create_order: an order to watch */
        AUDIT_UPDATE_ORDER, /* a succeeded update_order: a watched order to poll now */
        AUDIT_IGNORED,      /* another resource or operation, or a failed one: not used, not a problem */
        AUDIT_UNUSABLE,     /* an order record that cannot be used: skipped, said once */
} AuditVerdict;

typedef struct AuditRecord {
        AuditVerdict verdict;
        /* De-duplication: the record's id, else customer id + order id + operation + date; for an
         * unusable record without those, a digest of the record itself. Never NULL. */
        char *key;
        char *label;       /* names the record in a log line: its id, or its place on the page */
        const char *why;   /* AUDIT_UNUSABLE, AUDIT_IGNORED: the reason (static) */
        char *customer_id; /* NULL when unusable for that reason */
        char *order_id;
        uint64_t operation_usec; /* operationDate (of any record), 0 when absent or unreadable */
        OrderNames *names;       /* customerName and the line items of resourceNewValue; never NULL when used */
} AuditRecord;

typedef struct AuditPage {
        AuditRecord *records; /* in page order */
        size_t n_records;
        PcPage next;
} AuditPage;

void audit_page_done(AuditPage *p);

/* Parses one page of GET /auditrecords. A record that cannot be used does not fail the page; a page
 * that is not a collection does (-EBADMSG/-E2BIG with *reason, -ENOMEM). */
int audit_parse_page(const char *body, size_t size, AuditPage *ret, const char **reason);

/* {endpoint}/v{api}/auditrecords?startDate=YYYY-MM-DD&size=500&filter=… (SPEC §8); start_usec is
 * realtime, its UTC date is used. NULL on ENOMEM. */
char *audit_log_url(const char *endpoint, const char *api_version, uint64_t start_usec);

/* The first day a read covers: the cursor (realtime of the newest operationDate processed) minus 15
 * minutes, never more than 89 days before now (Partner Center refuses 90). *ret_clamped tells
 * whether the cursor was further back than that (a gap nothing can read any more). */
uint64_t audit_log_start(uint64_t cursor_usec, uint64_t now_usec, bool *ret_clamped);

/* The orders of GET /customers/{id}/orders (SPEC §8 sweep): those whose status is "pending", with
 * their names (customer_name is not known there). */
typedef struct CustomerOrder {
        char *order_id;
        bool pending;
        OrderNames *names;
} CustomerOrder;

void customer_orders_free(CustomerOrder *o, size_t n);
int pc_parse_customer_orders(const char *body, size_t size, CustomerOrder **ret, size_t *ret_n, PcPage *page,
                             const char **reason);

/* GET /customers: ids and company names. */
typedef struct Customer {
        char *id;
        char *name; /* NULL when absent */
} Customer;

void customers_free(Customer *c, size_t n);
int pc_parse_customers(const char *body, size_t size, Customer **ret, size_t *ret_n, PcPage *page,
                       const char **reason);

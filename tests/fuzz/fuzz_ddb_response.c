/* fuzz_ddb_response.c: the DynamoDB response/error parser and what reads its
 * output: audit items and cursors.
 *
 * Input layout: byte 0 picks the HTTP status, byte 1 the length of an
 * X-Amzn-Errortype header value that follows, the rest is the body. Whatever
 * the bytes, the parser must classify the answer (OK with an object, or an
 * error rc with a NUL-terminated type and message) and never read past them. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/arena.h"
#include "store/audit_dynamodb.h"
#include "store/dynamodb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const long statuses[] = {200, 400, 500, 503, 413, 429, 403, 302};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct px_arena *a;
    if (!a)
        a = px_arena_new(16 << 20);
    else
        px_arena_reset(a);
    if (size < 2)
        return 0;
    long status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    size_t hl = data[1];
    if (hl > size - 2)
        hl = size - 2;
    char *hdr = NULL;
    if (hl) {
        hdr = malloc(hl + 1);
        if (!hdr)
            return 0;
        memcpy(hdr, data + 2, hl);
        hdr[hl] = '\0';
    }
    /* the body is copied to an exact-size heap block so ASan sees any over-read */
    size_t blen = size - 2 - hl;
    char *body = malloc(blen ? blen : 1);
    if (!body) {
        free(hdr);
        return 0;
    }
    memcpy(body, data + 2 + hl, blen);

    json_t *resp = NULL;
    struct px_ddb_error err;
    px_rc rc = px_ddb_parse_response(status, body, blen, hdr, &resp, &err);
    if (rc == PX_OK) {
        if (!json_is_object(resp))
            __builtin_trap();
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(resp, "Items"), i, it)
        {
            struct px_audit_record r;
            if (px_ddb_audit_item_parse(it, &r) == PX_OK &&
                (memchr(r.user_id, 0, sizeof(r.user_id)) == NULL ||
                 memchr(r.ts, 0, sizeof(r.ts)) == NULL))
                __builtin_trap();
        }
        json_t *lek = json_object_get(resp, "LastEvaluatedKey");
        const char *cursor = NULL;
        if (json_is_object(lek) && px_ddb_cursor_encode(lek, a, &cursor) == PX_OK) {
            /* whatever DynamoDB hands back must decode to itself or be refused */
            const char *u = json_string_value(json_object_get(json_object_get(lek, "pk"), "S"));
            struct px_audit_query q = {.user_id = u && strlen(u) > 5 ? u + 5 : "x", .limit = 1};
            json_t *k = NULL;
            if (px_ddb_cursor_decode(cursor, &q, &k) == PX_OK && !json_equal(k, lek))
                __builtin_trap();
            json_decref(k);
        }
        json_decref(resp);
    } else {
        if (resp || !memchr(err.type, 0, sizeof(err.type)) ||
            !memchr(err.message, 0, sizeof(err.message)) || !err.message[0])
            __builtin_trap();
    }
    /* the body as a cursor: refused or a well-formed key of the query */
    if (blen && blen < 4096) {
        char *cur = malloc(blen + 1);
        if (cur) {
            memcpy(cur, body, blen);
            cur[blen] = '\0';
            struct px_audit_query q = {.product_id = "PROD-101", .limit = 1};
            json_t *k = NULL;
            if (px_ddb_cursor_decode(cur, &q, &k) == PX_OK && json_object_size(k) != 4)
                __builtin_trap();
            json_decref(k);
            free(cur);
        }
    }
    char name[32];
    px_ddb_error_name(hdr, name, sizeof(name));
    free(body);
    free(hdr);
    return 0;
}

/* audit_chain.h: tamper evidence for the audit trail (CONTRACT §11,
 * docs/internals/audit-integrity.md).
 *
 * Each writer chains its own records: record i carries its writer id, wseq i,
 * the hash of record i-1 (prev) and its hash, SHA-256 over a canonical
 * encoding of the record and prev. Checkpoints (writer, seq, head hash, time)
 * are C2SP tlog-checkpoint texts in C2SP signed notes, signed with Ed25519.
 * A verifier is fed a store's records in the store's own order and its
 * checkpoints, and names the first record that does not fit. Nothing here
 * touches storage. */
#ifndef PX_AUDIT_CHAIN_H
#define PX_AUDIT_CHAIN_H

#include "audit.h"

#include <stdint.h>

#define PX_CHAIN_HASH_LEN   32
#define PX_CHAIN_HEX_LEN    64
#define PX_CHAIN_WRITER_LEN 17 /* 'w' and 16 hex digits */
#define PX_CHAIN_NOTE_MAX   1024
/* The key name in signature lines and the origin prefix. */
#define PX_CHAIN_KEY_NAME "pricing.audit"
/* A writer checkpoints after this many records or seconds with new records. */
#define PX_CHAIN_CHECKPOINT_RECORDS 1000
#define PX_CHAIN_CHECKPOINT_MS      10000

/* A writer's chain state: the last record's wseq and hash (seq 0: zero hash). */
struct px_chain {
    char writer[PX_CHAIN_WRITER_LEN + 1];
    uint64_t seq;
    unsigned char head[PX_CHAIN_HASH_LEN];
    /* Smallest expires_at among the records since the last committed
     * checkpoint (INT64_MAX: none): DynamoDB's TTL may delete any of them
     * once it has passed. */
    int64_t seg_min;
};

/* A fresh chain: a random writer id, seq 0, zero head. PX_ERR_INTERNAL when
 * the random generator fails. */
px_rc px_chain_init(struct px_chain *c) PX_WUR;
/* The hash of r as record wseq of writer, chained to prev (32 bytes). */
void px_chain_hash(const char *writer, uint64_t wseq, const struct px_audit_record *r,
                   const unsigned char prev[PX_CHAIN_HASH_LEN],
                   unsigned char out[PX_CHAIN_HASH_LEN]);
/* Now as RFC 3339 UTC with milliseconds ("2026-01-23T12:00:00.123Z"). */
void px_chain_now_ts(char out[25]);
/* Lower-case hex of h, NUL-terminated. */
void px_chain_hex(const unsigned char h[PX_CHAIN_HASH_LEN], char out[PX_CHAIN_HEX_LEN + 1]);
/* Strict inverse of px_chain_hex (exactly 64 lower-case hex digits). */
bool px_chain_unhex(const char *s, unsigned char out[PX_CHAIN_HASH_LEN]);

/* An Ed25519 key: private (signs and verifies) or public (verifies). Opaque. */
struct px_chain_key;
/* Reads a PEM key file: private when want_private, else a public or a
 * private key (its public half is used); for verifying, a comma-separated
 * list of files gives several keys (rotation: each signature is checked by
 * the key its key id names). *out owned by the caller
 * (px_chain_key_free). PX_ERR_CONFIG with a line naming the file in err. */
px_rc px_chain_key_load(const char *path, bool want_private, struct px_chain_key **out, char *err,
                        size_t errlen) PX_WUR;
/* Accepts NULL. */
void px_chain_key_free(struct px_chain_key *k);
/* Writes a new key pair: PREFIX.key (private PEM, mode 0600, never replaced)
 * and PREFIX.pub (public PEM). PX_ERR_CONFLICT when PREFIX.key exists. */
px_rc px_chain_keygen(const char *prefix, char *err, size_t errlen) PX_WUR;

/* One checkpoint as the signed text says. */
struct px_checkpoint {
    char writer[PX_CHAIN_WRITER_LEN + 1];
    uint64_t seq;
    unsigned char head[PX_CHAIN_HASH_LEN];
    char time[25]; /* RFC 3339 UTC with milliseconds */
    /* A purge checkpoint: records 1..seq of the writer were removed on
     * purpose (all past expiresAt); verify starts the chain after seq from
     * head. Extension line "purged". */
    bool purged;
    /* Smallest expires_at of the records since the writer's previous
     * checkpoint; 0 when none. Extension line "expires-min N". */
    int64_t expires_min;
};

/* The signed note for c into out (NUL-terminated, *len bytes). */
px_rc px_checkpoint_sign(const struct px_chain_key *k, const struct px_checkpoint *c, char *out,
                         size_t cap, size_t *len) PX_WUR;
/* Parses a signed note strictly and checks its signature with k:
 * PX_ERR_INVALID when malformed, PX_ERR_DENIED when no signature line is by
 * k or the signature does not verify. k may be NULL to parse only. */
px_rc px_checkpoint_open(const struct px_chain_key *k, const char *note, size_t len,
                         struct px_checkpoint *out) PX_WUR;

/* Any signed note (export digests): text (ending in a newline, no blank
 * line, no control characters but newlines) and one signature line by k, into
 * out. */
px_rc px_note_sign(const struct px_chain_key *k, const char *text, size_t tl, char *out, size_t cap,
                   size_t *len) PX_WUR;
/* Checks note's signature by k; *text_len is the signed text's length (its
 * final newline included). PX_ERR_INVALID malformed, PX_ERR_DENIED not by k. */
px_rc px_note_open(const struct px_chain_key *k, const char *note, size_t len,
                   size_t *text_len) PX_WUR;
#define PX_NOTE_MAX (1024 * 1024)

/* The tenant an export digest's signed text (text, tl bytes) names: its one
 * optional line "tenant NAME" (after "created", before the file lines) into
 * out; "" when it has none (an export of the whole trail, every tenant).
 * PX_ERR_INVALID when the line is given twice, after a file line, or NAME is
 * not a tenant name (px_tenant_valid). */
px_rc px_digest_tenant(const char *text, size_t tl, char out[64 + 1]) PX_WUR;

/* ---- verifier --------------------------------------------------------------------------- */

struct px_chain_verifier;

/* What a verifier found. */
struct px_chain_report {
    uint64_t records, chained, unchained, writers, checkpoints, in_range;
    /* With px_chain_verifier_set_tenant: the records of that tenant (the
     * rest, records - tenant_records, are other tenants'). */
    uint64_t tenant_records;
    bool broken;
    char where[256]; /* the first broken record or checkpoint, as the store names it */
    char what[256];  /* what is wrong with it */
};

/* k verifies checkpoint signatures (not NULL). from/to (normalised ts, or
 * NULL) bound what in_range counts; everything is checked. *out owned by the
 * caller (px_chain_verifier_free). */
px_rc px_chain_verifier_new(const struct px_chain_key *k, const char *from, const char *to,
                            struct px_chain_verifier **out) PX_WUR;
void px_chain_verifier_free(struct px_chain_verifier *v);
/* Every checkpoint first, in any order; where names it in a failure. */
void px_chain_verifier_checkpoint(struct px_chain_verifier *v, const char *note, size_t len,
                                  const char *where);
/* Then every record, in the store's insertion order. writer NULL or "" for a
 * record written before the chain existed. */
void px_chain_verifier_record(struct px_chain_verifier *v, const struct px_audit_record *r,
                              const char *writer, int64_t wseq, const char *prev_hex,
                              const char *hash_hex, const char *where);
/* Like px_chain_verifier_record for a store that has checked the record's
 * hash itself (hash_ok) and feeds each writer's records in wseq order: the
 * links, the checkpoints and in_range (by ts) are checked here. */
void px_chain_verifier_link(struct px_chain_verifier *v, const char *ts, const char *writer,
                            int64_t wseq, const char *prev_hex, const char *hash_hex, bool hash_ok,
                            const char *where);
/* A store whose expired records may vanish (DynamoDB TTL): records in a
 * segment between two checkpoints whose expires-min is <= now may be missing
 * (the chain starts again at the segment's end checkpoint); 0 = never. */
void px_chain_verifier_set_ttl(struct px_chain_verifier *v, int64_t now);
/* Bound on the pages a store may read for one verify (DynamoDB: Scan
 * pages); 0 = the store's default. */
void px_chain_verifier_set_read_budget(struct px_chain_verifier *v, long pages);
long px_chain_verifier_read_budget(const struct px_chain_verifier *v);
/* Counts the records of tenant (TENANCY=on; a record with no tenant is
 * "default's") in tenant_records; every record is still checked. A failure
 * at a record not known to be tenant's names it by writer and wseq only,
 * never by the store's where (which may carry another tenant's ids). */
void px_chain_verifier_set_tenant(struct px_chain_verifier *v, const char *tenant);
/* Which record the next px_chain_verifier_link or _fail call is about: its
 * tenant ("" = default; NULL when the store could not read it), writer and
 * wseq (NULL / 0 when it has none). px_chain_verifier_record sets it itself. */
void px_chain_verifier_next(struct px_chain_verifier *v, const char *tenant, const char *writer,
                            int64_t wseq);
/* Marks the run broken at where (a record the store could not even decode). */
void px_chain_verifier_fail(struct px_chain_verifier *v, const char *where, const char *what);
/* Ends the run (tails against checkpoints) and fills *rep. false when broken. */
bool px_chain_verifier_finish(struct px_chain_verifier *v, struct px_chain_report *rep);

#endif

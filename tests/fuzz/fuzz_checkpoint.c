/* fuzz_checkpoint.c: the checkpoint notes `pricing audit verify` reads from a
 * store it does not trust, and the signed notes of export digests
 * (audit_chain.c), with a fixed Ed25519 key.
 *
 * Every input is parsed and checked as a note, then handed to a verifier as a
 * checkpoint followed by one record of its writer. Whatever is accepted must
 * survive a round trip: signed again with the same key, it opens to the same
 * checkpoint; a digest's "tenant" line parses to a tenant name or none. The
 * seeds are notes signed by this key (tests/fuzz/corpus). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/audit_chain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char pem[] = "-----BEGIN PRIVATE KEY-----\n"
                          "MC4CAQAwBQYDK2VwBCIEIOWaD3MxRvH6cAXkvNtpufeNTiSKUAXIuZC0vma8DV3Z\n"
                          "-----END PRIVATE KEY-----\n";

static struct px_chain_key *key;

static void load_key(void)
{
    char path[] = "/tmp/px-fuzz-key-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, pem, sizeof(pem) - 1) != (ssize_t)(sizeof(pem) - 1))
        abort();
    close(fd);
    if (px_chain_key_load(path, true, &key, NULL, 0) != PX_OK)
        abort();
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!key)
        load_key();
    struct px_checkpoint c;
    px_rc rc = px_checkpoint_open(key, (const char *)data, size, &c);
    if (rc == PX_OK) {
        char note[PX_CHAIN_NOTE_MAX];
        size_t len = 0;
        struct px_checkpoint again;
        if (px_checkpoint_sign(key, &c, note, sizeof(note), &len) != PX_OK ||
            px_checkpoint_open(key, note, len, &again) != PX_OK ||
            memcmp(&again, &c, sizeof(c)) != 0)
            abort();
    } else if (rc != PX_ERR_INVALID && rc != PX_ERR_DENIED) {
        abort();
    }
    /* As an export digest: a note that opens signed its text, and re-signing
     * that text gives a note that opens the same way. */
    size_t tl = 0;
    px_rc nrc = px_note_open(key, (const char *)data, size, &tl);
    if (nrc == PX_OK) {
        static char again[PX_CHAIN_NOTE_MAX * 2];
        size_t al = 0, tl2 = 0;
        if (tl > size || tl > PX_CHAIN_NOTE_MAX ||
            px_note_sign(key, (const char *)data, tl, again, sizeof(again), &al) != PX_OK ||
            px_note_open(key, again, al, &tl2) != PX_OK || tl2 != tl)
            abort();
        /* Its tenant line: a name px_tenant_valid accepts, or none. */
        char tenant[64 + 1];
        px_rc trc = px_digest_tenant((const char *)data, tl, tenant);
        if ((trc != PX_OK && trc != PX_ERR_INVALID) || (trc != PX_OK && tenant[0]) ||
            strlen(tenant) > 64)
            abort();
    } else if (nrc != PX_ERR_INVALID && nrc != PX_ERR_DENIED) {
        abort();
    }
    struct px_chain_verifier *v = NULL;
    if (px_chain_verifier_new(key, NULL, NULL, &v) != PX_OK)
        abort();
    px_chain_verifier_checkpoint(v, (const char *)data, size, "fuzz");
    struct px_audit_record r;
    memset(&r, 0, sizeof(r));
    memcpy(r.ts, "2026-01-23T12:00:00.000Z", 25);
    unsigned char zero[PX_CHAIN_HASH_LEN] = {0}, h[PX_CHAIN_HASH_LEN];
    char prev[PX_CHAIN_HEX_LEN + 1], hash[PX_CHAIN_HEX_LEN + 1];
    const char *writer = rc == PX_OK ? c.writer : "w0000000000000000";
    px_chain_hash(writer, 1, &r, zero, h);
    px_chain_hex(zero, prev);
    px_chain_hex(h, hash);
    px_chain_verifier_record(v, &r, writer, 1, prev, hash, "fuzz record");
    struct px_chain_report rep;
    bool ok = px_chain_verifier_finish(v, &rep);
    /* A note that does not open can never let a trail pass. */
    if (rc != PX_OK && ok)
        abort();
    px_chain_verifier_free(v);
    return 0;
}

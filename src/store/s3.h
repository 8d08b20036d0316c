/* s3.h: a small S3 client (PutObject, GetObject, ListObjectsV2) over libcurl,
 * signed with SigV4 (sigv4.h), for `pricing audit export --out s3://...`.
 *
 * Keys are restricted to the characters SigV4 leaves as they are (A-Z a-z 0-9
 * - . _ ~ and '/', no empty, "." or ".." segment), so the signer's canonical
 * path is S3's. A local endpoint is addressed path-style
 * (ENDPOINT/BUCKET/KEY); AWS's own virtual-hosted style
 * (https://BUCKET.s3.REGION.amazonaws.com/KEY). One easy handle, one call at
 * a time. Ownership: the client copies every configuration string; buffers
 * handed in stay the caller's. */
#ifndef PX_S3_H
#define PX_S3_H

#include "../kernel/buf.h"
#include "../kernel/px.h"

struct px_s3;

struct px_s3_config {
    const char *region;   /* required */
    const char *endpoint; /* NULL/"" = AWS; else e.g. "http://127.0.0.1:4568" (path-style) */
    const char *access_key_id, *secret_access_key; /* required */
    const char *session_token;                     /* NULL/"" = none */
    long timeout_ms;                               /* per request; 0 = 60000 */
};

/* true when bucket is a valid S3 bucket name (3-63 of a-z 0-9 . -). */
bool px_s3_bucket_ok(const char *bucket);
/* true when key (or a key prefix, may end in '/') uses only the characters above. */
bool px_s3_key_ok(const char *key);

/* New client for one bucket; err gets one line naming the bad setting. */
px_rc px_s3_new(const struct px_s3_config *cfg, const char *bucket, struct px_s3 **out, char *err,
                size_t errlen) PX_WUR;
/* Accepts NULL. */
void px_s3_free(struct px_s3 *s);

/* PutObject of data[0..len) with Content-MD5, x-amz-checksum-sha256 and a signed
 * x-amz-content-sha256, so S3 refuses bytes changed on the way (BadDigest);
 * the returned ETag is compared with the MD5 too (unless the object is
 * KMS-encrypted, whose ETag is no MD5). if_absent sends If-None-Match: *
 * (S3 answers 412 instead of replacing an object: PX_ERR_CONFLICT). */
px_rc px_s3_put(struct px_s3 *s, const char *key, const void *data, size_t len, bool if_absent,
                char *err, size_t errlen) PX_WUR;
/* GetObject into out (cleared first; its cap bounds the object).
 * PX_ERR_NOT_FOUND on 404. */
px_rc px_s3_get(struct px_s3 *s, const char *key, struct px_buf *out, char *err,
                size_t errlen) PX_WUR;
/* ListObjectsV2 of every key beginning with prefix, page by page (at most
 * max_pages pages of 1000), each key handed to each() in key order; each()
 * returning non-zero stops with that rc. */
px_rc px_s3_list(struct px_s3 *s, const char *prefix, long max_pages,
                 px_rc (*each)(void *arg, const char *key), void *arg, char *err,
                 size_t errlen) PX_WUR;

/* The canonical request headers a PutObject signs, for tests: fills
 * md5_b64 (25 bytes), sha_b64 (45) and sha_hex (65) for data[0..len). */
px_rc px_s3_digests(const void *data, size_t len, char *md5_b64, char *sha_b64,
                    char *sha_hex) PX_WUR;

#endif

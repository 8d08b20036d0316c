/* ossl.h: how the process initialises OpenSSL (TLS for DynamoDB, SigV4, JWT). */
#ifndef PX_OSSL_H
#define PX_OSSL_H

#include "px.h"

#include <openssl/evp.h>

/* Initialises OpenSSL once, before anything else in the process uses it:
 * the system openssl.cnf is read only when OPENSSL_CONF names a file, and
 * the error-string tables are not loaded. Thread-safe; PX_ERR_NOMEM when
 * OpenSSL cannot initialise. */
px_rc px_ossl_init(void);
/* SHA-256, fetched once for the process: the implicit fetch behind EVP_sha256()
 * costs more than hashing a short input. NULL when OpenSSL cannot provide it.
 * Owned by this module; never freed. */
const EVP_MD *px_ossl_sha256(void);

#endif

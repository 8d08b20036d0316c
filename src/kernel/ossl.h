/* ossl.h: how the process initialises OpenSSL (TLS for DynamoDB, SigV4, JWT). */
#ifndef PX_OSSL_H
#define PX_OSSL_H

#include "px.h"

/* Initialises OpenSSL once, before anything else in the process uses it:
 * the system openssl.cnf is read only when OPENSSL_CONF names a file, and
 * the error-string tables are not loaded. Thread-safe; PX_ERR_NOMEM when
 * OpenSSL cannot initialise. */
px_rc px_ossl_init(void);

#endif

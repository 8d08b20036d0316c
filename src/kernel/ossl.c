/* Of a cold start's own work, OpenSSL's default initialisation was the largest
 * share (44% of the instructions from exec to the first /next, callgrind):
 * reading and applying openssl.cnf and loading ~4,000 error strings into hash
 * tables. The binary links OpenSSL statically, so the file OpenSSL would look
 * for is Debian's (/usr/lib/ssl/openssl.cnf), which Amazon Linux does not
 * have; an operator who wants a configuration (a FIPS provider, say) names
 * it with OPENSSL_CONF and gets it. Error strings only make some libcurl TLS
 * messages print codes ("lib(20)::reason(134)") instead of words; certificate
 * failures keep their text, which comes from a separate table. */
#include "ossl.h"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static px_rc once_rc = PX_OK;

static void init_once(void)
{
    const char *conf = getenv("OPENSSL_CONF");
    uint64_t opts = OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS;
    opts |= conf && *conf ? OPENSSL_INIT_LOAD_CONFIG : OPENSSL_INIT_NO_LOAD_CONFIG;
    /* Nor the by-name table of every cipher (a few hundred thousand
     * instructions and page faults of a cold start): TLS fetches its ciphers
     * from the providers, and nothing in the process looks one up by name.
     * The digest table stays: X.509 verification finds digests by NID through
     * it (without it no certificate chain verifies; test_package.py's TLS
     * checks). An operator's configuration may name ciphers, so it keeps them. */
    if (!(conf && *conf))
        opts |= OPENSSL_INIT_NO_ADD_ALL_CIPHERS;
    /* Whichever of LOAD/NO_LOAD comes first wins for the process: libcurl's
     * own OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG) later is a no-op. */
    if (!OPENSSL_init_crypto(opts, NULL) ||
        !OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_SSL_STRINGS, NULL))
        once_rc = PX_ERR_NOMEM;
}

px_rc px_ossl_init(void)
{
    if (pthread_once(&once, init_once) != 0)
        return PX_ERR_NOMEM;
    return once_rc;
}

static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *px_ossl_sha256(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    return sha256_md;
}

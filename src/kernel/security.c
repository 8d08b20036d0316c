/* security.c: security headers on every response (see security.h). */
#include "security.h"

#include <string.h>
#include <strings.h>

static bool first_token_is_https(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strcspn(v, ", \t;");
    return n == 5 && strncasecmp(v, "https", 5) == 0;
}

/* RFC 7239: Forwarded: for=1.2.3.4;proto=https, for=... (first element only,
 * the hop nearest the client). */
static bool forwarded_https(const char *v)
{
    size_t elem = strcspn(v, ",");
    for (size_t i = 0; i + 6 <= elem; i++) {
        bool start = i == 0 || v[i - 1] == ';' || v[i - 1] == ' ' || v[i - 1] == '\t';
        if (start && strncasecmp(v + i, "proto=", 6) == 0) {
            const char *p = v + i + 6;
            if (*p == '"')
                p++;
            return strncasecmp(p, "https", 5) == 0 &&
                   (p[5] == '\0' || p[5] == ';' || p[5] == ',' || p[5] == '"' || p[5] == ' ');
        }
    }
    return false;
}

bool px_security_behind_tls(const struct px_request *req)
{
    if (!req)
        return false;
    if (req->api_request_id)
        return true;
    const char *xfp = px_request_header(req, "x-forwarded-proto");
    if (xfp && first_token_is_https(xfp))
        return true;
    const char *fwd = px_request_header(req, "forwarded");
    return fwd && forwarded_https(fwd);
}

void px_security_headers(const struct px_request *req, struct px_response *resp)
{
    if (!resp)
        return;
    px_response_header_default(resp, "Content-Security-Policy", PX_CSP);
    px_response_header_default(resp, "Referrer-Policy", PX_REF_POLICY);
    if (px_security_behind_tls(req))
        px_response_header_default(resp, "Strict-Transport-Security", PX_HSTS);
}

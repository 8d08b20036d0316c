/* cmd_token.c: `pricing token`, an HS256 bearer token for local development
 * and tests, signed with the secret that `serve --auth jwt` verifies with. */
#include "cli.h"
#include "kernel/jwt.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TTL_S (365L * 86400L)

/* "90", "90s", "15m", "1h", "7d" -> seconds in 1..MAX_TTL_S. */
static bool parse_ttl(const char *s, long *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (errno || end == s)
        return false;
    long unit = 1;
    if (*end) {
        if (end[1])
            return false;
        switch (*end) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return false;
        }
    }
    if (v < 1 || v > MAX_TTL_S / unit)
        return false;
    *out = v * unit;
    return true;
}

static bool printable_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return false;
    }
    return true;
}

/* The claims as compact JSON (heap, caller frees), or NULL. */
static char *claims_json(const char *sub, const char *scope, const char *iss, const char *aud,
                         long ttl)
{
    unsigned char rnd[16];
    char jti[33];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return NULL;
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
    json_int_t now = (json_int_t)time(NULL);
    json_t *o = json_object();
    int bad = !o;
    if (!bad) {
        bad |= json_object_set_new(o, "sub", json_string(sub));
        if (scope && scope[0])
            bad |= json_object_set_new(o, "scope", json_string(scope));
        if (iss && iss[0])
            bad |= json_object_set_new(o, "iss", json_string(iss));
        if (aud && aud[0])
            bad |= json_object_set_new(o, "aud", json_string(aud));
        bad |= json_object_set_new(o, "iat", json_integer(now));
        bad |= json_object_set_new(o, "exp", json_integer(now + (json_int_t)ttl));
        bad |= json_object_set_new(o, "jti", json_string(jti));
    }
    char *text = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

int px_cmd_token(int argc, char **argv)
{
    const char *sub = NULL, *scope = NULL, *ttl_s = "1h", *secret_file = NULL, *iss = NULL,
               *aud = NULL;
    const struct px_cli_flag flags[] = {
        {"--sub", true, &sub, NULL, "subject: who the token speaks for (required)"},
        {"--scope", true, &scope, NULL, "permissions, space-separated: \"price:read audit:read\""},
        {"--ttl", true, &ttl_s, NULL, "lifetime: N, Ns, Nm, Nh or Nd, at most 365d (default 1h)"},
        {"--secret-file", true, &secret_file, NULL, "HS256 secret (default $AUTH_JWT_SECRET_FILE)"},
        {"--iss", true, &iss, NULL, "iss claim (default $AUTH_ISSUER)"},
        {"--aud", true, &aud, NULL, "aud claim (default $AUTH_AUDIENCE)"},
    };
    const struct px_cli_cmd cmd = {
        .name = "token",
        .synopsis = "token --sub NAME [--scope \"price:read audit:read\"] [--ttl 1h] "
                    "[--secret-file F] [--iss I] [--aud A]",
        .summary = "print an HS256 bearer token for serve --auth jwt (local development, tests)",
        .flags = flags,
        .nflags = PX_COUNTOF(flags),
    };
    struct px_config cfg;
    const char *args[1];
    size_t nargs;
    int st = px_cli_parse(&cmd, argc, argv, &cfg, args, &nargs);
    if (st >= 0)
        return st;

    long ttl = 0;
    if (!sub || !printable_text(sub, PX_MAX_PRINCIPAL)) {
        fprintf(stderr, "pricing token: --sub is required: 1-%d printable bytes\n",
                PX_MAX_PRINCIPAL);
        return PX_EXIT_USAGE;
    }
    if (scope && scope[0] && !printable_text(scope, 4096)) {
        fprintf(stderr, "pricing token: --scope must be printable text\n");
        return PX_EXIT_USAGE;
    }
    if (!parse_ttl(ttl_s, &ttl)) {
        fprintf(stderr, "pricing token: --ttl must be N, Ns, Nm, Nh or Nd between 1s and 365d\n");
        return PX_EXIT_USAGE;
    }
    if (!secret_file)
        secret_file = cfg.jwt_secret_file;
    if (!secret_file[0]) {
        fprintf(stderr, "pricing token: --secret-file (or AUTH_JWT_SECRET_FILE) is required\n");
        return PX_EXIT_USAGE;
    }
    if (!iss)
        iss = cfg.jwt_issuer;
    if (!aud)
        aud = cfg.jwt_audience;

    char err[512];
    unsigned char *secret = NULL;
    size_t secret_len = 0;
    if (px_jwt_read_secret(secret_file, &secret, &secret_len, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing token: --secret-file: %s\n", err);
        return PX_EXIT_USAGE;
    }
    int status = PX_EXIT_OK;
    struct px_buf out;
    px_buf_init(&out, PX_JWT_MAX_TOKEN);
    char *payload = claims_json(sub, scope, iss, aud, ttl);
    if (!payload ||
        px_jwt_sign_hs256(secret, secret_len, payload, strlen(payload), &out) != PX_OK) {
        fprintf(stderr, "pricing token: cannot build the token (longer than %d bytes?)\n",
                PX_JWT_MAX_TOKEN);
        status = PX_EXIT_FAIL;
    } else if (!px_cli_print_line(out.data, out.len)) {
        status = PX_EXIT_FAIL;
    }
    free(payload);
    px_buf_free(&out);
    px_jwt_secret_free(secret, secret_len);
    return status;
}

#include "px.h"

const char *px_strerror(px_rc rc)
{
    static const char *const msg[PX_ERR__COUNT] = {
        [PX_OK] = "ok",
        [PX_ERR_NOMEM] = "out of memory or over a size cap",
        [PX_ERR_INVALID] = "invalid input",
        [PX_ERR_TOO_LARGE] = "input too large",
        [PX_ERR_NOT_FOUND] = "not found",
        [PX_ERR_CONFLICT] = "already exists",
        [PX_ERR_IO] = "I/O error",
        [PX_ERR_UNAVAILABLE] = "dependency unavailable",
        [PX_ERR_TIMEOUT] = "timed out",
        [PX_ERR_BUSY] = "busy",
        [PX_ERR_CONFIG] = "bad configuration",
        [PX_ERR_PROTOCOL] = "protocol error",
        [PX_ERR_DENIED] = "access denied",
        [PX_ERR_INTERNAL] = "internal error",
        [PX_ERR_STALE] = "changed since it was read",
    };
    if ((unsigned)rc >= PX_ERR__COUNT || !msg[rc])
        return "unknown error";
    return msg[rc];
}

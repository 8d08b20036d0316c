/* handler.h: product-service's routes (CONTRACT §8): the catalogue and its prices. */
#ifndef PX_PS_HANDLER_H
#define PX_PS_HANDLER_H

#include "kernel/app.h"

extern const struct px_function px_fn_product_service;

/* The version an If-Match value names: "\"3\"" (or W/"3") -> 3; "*" -> -1
 * (any); 0 when the value names no version of ours. */
long px_ps_if_match(const char *value);

#endif

/* handler.h: price-fetcher's routes: GET /price and GET /audit. */
#ifndef PX_PF_HANDLER_H
#define PX_PF_HANDLER_H

#include "kernel/app.h"

extern const struct px_function px_fn_price_fetcher;

#endif

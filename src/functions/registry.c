/* registry.c: the functions this binary ships. Adding a function = one line. */
#include "kernel/app.h"
#include "price-fetcher/handler.h"
#include "product-service/handler.h"
#include "config-service/handler.h"

#include <string.h>

static const struct px_function *const functions[] = {
    &px_fn_price_fetcher,
    &px_fn_product_service,
    &px_fn_config_service,
};

const struct px_function *const *px_functions(size_t *n)
{
    *n = PX_COUNTOF(functions);
    return functions;
}

const struct px_function *px_function_find(const char *name)
{
    for (size_t i = 0; name && i < PX_COUNTOF(functions); i++)
        if (strcmp(functions[i]->name, name) == 0)
            return functions[i];
    return NULL;
}

/* sql_assets.h: the SQL of infra/ built into the binary.
 *
 * The definitions are generated at build time by cmake/embed-sql.cmake from
 * infra/seed/prices.sql and infra/sql/NNN_name.sql into the build directory
 * (sql_assets.c there); nothing here is read from disk at run time, so the
 * binary seeds and migrates from any directory. All data is static and owned
 * by the binary: never freed, never written. */
#ifndef PX_SQL_ASSETS_H
#define PX_SQL_ASSETS_H

#include <stddef.h>

struct px_sql_asset {
    const char *name; /* file name, e.g. "001_product_prices.sql" */
    const char *text; /* the file's bytes plus a NUL (the build refuses NULs inside) */
    size_t len;       /* bytes before that NUL */
};

/* The sample prices (infra/seed/prices.sql), for `pricing db seed`. */
extern const struct px_sql_asset px_sql_assets_seed;
/* The PostgreSQL migrations (infra/sql/NNN_name.sql), in version order, at least one. */
extern const struct px_sql_asset px_sql_assets_migrations[];
/* How many entries px_sql_assets_migrations holds. */
extern const size_t px_sql_assets_nmigrations;

#endif

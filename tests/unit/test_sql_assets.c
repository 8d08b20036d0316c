/* test_sql_assets.c: the SQL built into the binary is infra/ byte for byte,
 * and the migrations come in version order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql_assets.h"

/* The whole file at PX_SOURCE_DIR/rel; the caller frees it. */
static char *read_source(const char *rel, size_t *len)
{
    const char *src = getenv("PX_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", src ? src : ".", rel);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static void expect_same(const struct px_sql_asset *a, const char *rel)
{
    size_t len = 0;
    char *want = read_source(rel, &len);
    assert_int_equal(a->len, len);
    assert_memory_equal(a->text, want, len);
    assert_int_equal(a->text[a->len], '\0'); /* usable as a C string */
    assert_int_equal(strlen(a->text), a->len);
    free(want);
}

static void test_seed(void **state)
{
    (void)state;
    assert_string_equal(px_sql_assets_seed.name, "prices.sql");
    expect_same(&px_sql_assets_seed, "infra/seed/prices.sql");
    assert_non_null(strstr(px_sql_assets_seed.text, "('PROD-101','99.99','USD')"));
}

static int by_version(const void *a, const void *b)
{
    long x = strtol(*(const char *const *)a, NULL, 10),
         y = strtol(*(const char *const *)b, NULL, 10);
    return (x > y) - (x < y);
}

/* Every .sql file of infra/sql is built in, in version order (numeric: 2 before 10). */
static void test_migrations(void **state)
{
    (void)state;
    const char *src = getenv("PX_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/infra/sql", src ? src : ".");
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".sql") == 0) {
            assert_true(n < 256);
            names[n] = strdup(de->d_name);
            assert_non_null(names[n]);
            n++;
        }
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), by_version);
    assert_true(n >= 1);
    assert_int_equal(px_sql_assets_nmigrations, n);
    for (size_t i = 0; i < n; i++) {
        char rel[512];
        snprintf(rel, sizeof(rel), "infra/sql/%s", names[i]);
        assert_string_equal(px_sql_assets_migrations[i].name, names[i]);
        expect_same(&px_sql_assets_migrations[i], rel);
        free(names[i]);
    }
    assert_string_equal(px_sql_assets_migrations[0].name, "001_product_prices.sql");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_migrations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

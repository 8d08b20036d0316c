/* test_ossl.c: OpenSSL is initialised without openssl.cnf unless OPENSSL_CONF
 * names one, and then that file is applied. Each case runs in a child process:
 * OpenSSL's initialisation happens once per process. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/ossl.h"

/* A configuration whose effect is visible: every algorithm fetch must come
 * from a FIPS provider, which is not loaded, so SHA-256 cannot be fetched. */
static const char fips_only[] = "openssl_conf = openssl_init\n"
                                "[openssl_init]\n"
                                "alg_section = evp_properties\n"
                                "[evp_properties]\n"
                                "default_properties = \"fips=yes\"\n";

/* Exit status of a child that sets OPENSSL_CONF to conf (NULL: unset),
 * initialises and tries to fetch SHA-256: 0 fetched, 1 refused, 2 init failed. */
static int child_fetch(const char *conf)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (conf)
            setenv("OPENSSL_CONF", conf, 1);
        else
            unsetenv("OPENSSL_CONF");
        if (px_ossl_init() != PX_OK)
            _exit(2);
        EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
        int st = md ? 0 : 1;
        EVP_MD_free(md);
        _exit(st);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_named_file_is_applied(void **state)
{
    (void)state;
    char path[] = "/tmp/px-ossl-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(fips_only, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    int st = child_fetch(path);
    unlink(path);
    assert_int_equal(st, 1);
}

static void test_default_reads_no_file(void **state)
{
    (void)state;
    assert_int_equal(child_fetch(NULL), 0);
    assert_int_equal(child_fetch(""), 0);
}

static void test_init_is_idempotent(void **state)
{
    (void)state;
    assert_int_equal(px_ossl_init(), PX_OK);
    assert_int_equal(px_ossl_init(), PX_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_named_file_is_applied),
        cmocka_unit_test(test_default_reads_no_file),
        cmocka_unit_test(test_init_is_idempotent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

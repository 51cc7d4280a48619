/* Unit tests of lib/base/util.c's array growth (ll_grow): room is made
 * only when the array is full, capacity doubles from 16, items already
 * there are kept, and an impossible size fails without touching the array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "landlord/error.h"
#include "landlord/util.h"

static void test_grow(void **state)
{
    (void)state;
    long long *v = NULL;
    size_t n = 0, cap = 0;

    for (long long i = 0; i < 1000; i++) {
        assert_int_equal(ll_grow((void **)&v, &cap, n, sizeof(*v)), 0);
        assert_true(cap > n);
        v[n++] = i * 7;
    }
    assert_int_equal(cap, 1024); /* 16, 32, ... 1024 */
    for (long long i = 0; i < 1000; i++)
        assert_int_equal(v[i], i * 7);
    /* Not full: nothing moves. */
    long long *before = v;
    assert_int_equal(ll_grow((void **)&v, &cap, 10, sizeof(*v)), 0);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 1024);
    free(v);
}

static void test_grow_too_big(void **state)
{
    (void)state;
    char *v = NULL;
    size_t cap = SIZE_MAX / 2 + 1; /* doubling overflows */
    assert_int_equal(ll_grow((void **)&v, &cap, cap, 1), -1);
    assert_null(v);
    assert_int_equal(cap, SIZE_MAX / 2 + 1);
    assert_string_equal(ll_error_last()->message, "out of memory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_grow_too_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

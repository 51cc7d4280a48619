/* Unit tests of lib/base/worker.c: a poke is kept until the next wait, a
 * wait without one sleeps its time, stop wakes a sleeping thread and is
 * joined, a stopped worker starts again, a sleep without a time limit
 * ends on a poke or a stop, deadlines carry into seconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "landlord/util.h"
#include "landlord/worker.h"

typedef struct {
    ll_worker w;
    ll_worker done;  /* poked by the thread after each round */
    int rounds;      /* written by the thread; read after the join */
    int64_t wait_ms; /* how long each wait may sleep */
} counter;

static void *count_rounds(void *arg)
{
    counter *c = arg;
    while (!ll_worker_wait(&c->w, c->wait_ms)) {
        c->rounds++;
        ll_worker_poke(&c->done);
    }
    return NULL;
}

static void test_poke_is_kept(void **state)
{
    (void)state;
    ll_worker w;
    ll_worker_init(&w);
    /* A poke before the wait: the wait returns at once, and clears it. */
    ll_worker_poke(&w);
    int64_t t0 = ll_monotonic_ms();
    assert_int_equal(ll_worker_wait(&w, 60000), 0);
    assert_true(ll_monotonic_ms() - t0 < 30000);
    /* Without a poke the wait sleeps its time. */
    t0 = ll_monotonic_ms();
    assert_int_equal(ll_worker_wait(&w, 50), 0);
    assert_true(ll_monotonic_ms() - t0 >= 40);
    /* ms <= 0: no sleep at all. */
    assert_int_equal(ll_worker_wait(&w, 0), 0);
    assert_int_equal(ll_worker_stopping(&w), 0);
    ll_worker_destroy(&w);
}

static void test_stop_wakes_and_joins(void **state)
{
    (void)state;
    counter c = {.wait_ms = 600000};
    ll_worker_init(&c.w);
    ll_worker_init(&c.done);
    assert_int_equal(ll_worker_start(&c.w, count_rounds, &c, "a counter"), 0);
    /* Each poke is a round; a stop ends a wait of ten minutes at once. */
    ll_worker_poke(&c.w);
    int64_t t0 = ll_monotonic_ms();
    ll_worker_stop(&c.w);
    assert_true(ll_monotonic_ms() - t0 < 30000);
    assert_true(c.rounds <= 1);
    assert_int_equal(ll_worker_stopping(&c.w), 1);
    assert_int_equal(ll_worker_wait(&c.w, 600000), 1); /* stopped: no sleep */
    /* Started again, it runs rounds again. */
    c.rounds = 0;
    assert_int_equal(ll_worker_start(&c.w, count_rounds, &c, "a counter"), 0);
    assert_int_equal(ll_worker_stopping(&c.w), 0);
    ll_worker_wait(&c.done, 0); /* forget the first run's poke */
    ll_worker_poke(&c.w);
    t0 = ll_monotonic_ms();
    assert_int_equal(ll_worker_wait(&c.done, 600000), 0); /* the round ran */
    assert_true(ll_monotonic_ms() - t0 < 30000);
    ll_worker_destroy(&c.w);
    ll_worker_destroy(&c.done);
    assert_int_equal(c.rounds, 1);
}

static void *sleep_rounds(void *arg)
{
    counter *c = arg;
    while (!ll_worker_sleep(&c->w)) {
        c->rounds++;
        ll_worker_poke(&c->done);
    }
    return NULL;
}

static void test_sleep(void **state)
{
    (void)state;
    counter c = {0};
    ll_worker_init(&c.w);
    ll_worker_init(&c.done);
    /* A poke kept from before the sleep ends it at once. */
    ll_worker_poke(&c.w);
    assert_int_equal(ll_worker_sleep(&c.w), 0);
    assert_int_equal(ll_worker_start(&c.w, sleep_rounds, &c, "a sleeper"), 0);
    /* Without a poke the thread sleeps: no round (done not poked) in 100 ms. */
    int64_t t0 = ll_monotonic_ms();
    assert_int_equal(ll_worker_wait(&c.done, 100), 0);
    assert_true(ll_monotonic_ms() - t0 >= 90);
    /* Each poke is a round. */
    ll_worker_poke(&c.w);
    t0 = ll_monotonic_ms();
    assert_int_equal(ll_worker_wait(&c.done, 600000), 0);
    assert_true(ll_monotonic_ms() - t0 < 30000);
    /* Stop ends the sleep and joins. */
    ll_worker_stop(&c.w);
    assert_int_equal(c.rounds, 1);
    assert_int_equal(ll_worker_sleep(&c.w), 1); /* stopped: no sleep */
    ll_worker_destroy(&c.w);
    ll_worker_destroy(&c.done);
}

static void test_deadline(void **state)
{
    (void)state;
    struct timespec now, d;
    clock_gettime(CLOCK_REALTIME, &now);
    ll_deadline_in(&d, 2999);
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
    int64_t diff = ((int64_t)d.tv_sec - now.tv_sec) * 1000 + (d.tv_nsec - now.tv_nsec) / 1000000;
    assert_true(diff >= 2999 && diff < 2999 + 1000);
    ll_deadline_in(&d, -5); /* the past is now */
    assert_true(d.tv_sec >= now.tv_sec && d.tv_sec <= now.tv_sec + 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poke_is_kept),
        cmocka_unit_test(test_stop_wakes_and_joins),
        cmocka_unit_test(test_sleep),
        cmocka_unit_test(test_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

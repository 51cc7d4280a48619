/* ratelimit.c - token buckets per caller.
 *
 * An open-addressing table (linear probing) of buckets keyed by a string,
 * guarded by one mutex: a request costs a hash, a probe and a few float
 * operations.  When the table is three quarters full, buckets that have
 * refilled completely are dropped (their callers are idle, and a full bucket
 * is what a new one would be); if that frees nothing, unknown keys are let
 * through untracked, so memory stays bounded whatever callers do.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/ratelimit.h"

#define KEY_MAX 160

typedef struct bucket {
    char key[KEY_MAX]; /* "" = empty slot */
    double tokens;
    int64_t last_ms;
} bucket;

struct ll_ratelimit {
    pthread_mutex_t lock;
    double rate, burst;
    bucket *slots;
    int cap, used;
};

int ll_ratelimit_new(ll_ratelimit **out, double rate, double burst, int max_keys)
{
    ll_ratelimit *rl = calloc(1, sizeof(*rl));
    int cap = 16;
    if (!rl)
        return ll_error_set(-1, "out of memory");
    while (cap < max_keys * 4 / 3 + 1)
        cap *= 2;
    if (!(rl->slots = calloc((size_t)cap, sizeof(bucket)))) {
        free(rl);
        return ll_error_set(-1, "out of memory");
    }
    pthread_mutex_init(&rl->lock, NULL);
    rl->rate = rate;
    rl->burst = burst;
    rl->cap = cap;
    *out = rl;
    return 0;
}

void ll_ratelimit_free(ll_ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl->slots);
    free(rl);
}

static unsigned long hash(const char *s)
{
    unsigned long h = 1469598103934665603UL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211UL;
    return h;
}

static void refill(const ll_ratelimit *rl, bucket *b, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rl->rate / 1000.0;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
        b->last_ms = now_ms;
    }
}

/* Drops buckets that are full again; rebuilds the table without them. */
static void sweep(ll_ratelimit *rl, int64_t now_ms)
{
    bucket *old = rl->slots, *fresh = calloc((size_t)rl->cap, sizeof(bucket));
    if (!fresh)
        return;
    rl->used = 0;
    for (int i = 0; i < rl->cap; i++) {
        if (!old[i].key[0])
            continue;
        refill(rl, &old[i], now_ms);
        if (old[i].tokens >= rl->burst)
            continue;
        unsigned long j = hash(old[i].key) & (unsigned long)(rl->cap - 1);
        while (fresh[j].key[0])
            j = (j + 1) & (unsigned long)(rl->cap - 1);
        fresh[j] = old[i];
        rl->used++;
    }
    free(old);
    rl->slots = fresh;
}

int ll_ratelimit_take(int *retry_after_s, ll_ratelimit *rl, const char *key, int64_t now_ms)
{
    char k[KEY_MAX];
    unsigned long j;
    bucket *b = NULL;
    int allowed = 1;

    *retry_after_s = 0;
    snprintf(k, sizeof(k), "%s", key);
    pthread_mutex_lock(&rl->lock);
    j = hash(k) & (unsigned long)(rl->cap - 1);
    while (rl->slots[j].key[0]) {
        if (strcmp(rl->slots[j].key, k) == 0) {
            b = &rl->slots[j];
            break;
        }
        j = (j + 1) & (unsigned long)(rl->cap - 1);
    }
    if (!b) {
        if (rl->used + 1 > rl->cap * 3 / 4) {
            sweep(rl, now_ms);
            j = hash(k) & (unsigned long)(rl->cap - 1);
            while (rl->slots[j].key[0])
                j = (j + 1) & (unsigned long)(rl->cap - 1);
        }
        if (rl->used + 1 > rl->cap * 3 / 4)
            goto done; /* full of active callers: let this one through */
        b = &rl->slots[j];
        memcpy(b->key, k, sizeof(k));
        b->tokens = rl->burst;
        b->last_ms = now_ms;
        rl->used++;
    }
    refill(rl, b, now_ms);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
    } else {
        allowed = 0;
        double wait = (1.0 - b->tokens) / rl->rate;
        *retry_after_s = (int)wait + ((double)(int)wait < wait);
        if (*retry_after_s < 1)
            *retry_after_s = 1;
    }
done:
    pthread_mutex_unlock(&rl->lock);
    return allowed;
}

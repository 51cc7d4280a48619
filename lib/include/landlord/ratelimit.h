/* ratelimit.h - token buckets per caller, in memory.
 *
 * Each key (a caller's subject) has a bucket of `burst` tokens refilled at
 * `rate` per second; a request takes one.  The table is bounded: when it
 * fills, buckets that are full again (idle callers) are dropped; a key that
 * still finds no room is let through rather than refused.  Thread-safe.
 *
 * Ownership: key is borrowed for the call (copied into the table).
 */
#ifndef LANDLORD_RATELIMIT_H
#define LANDLORD_RATELIMIT_H

#include <stdint.h>

typedef struct ll_ratelimit ll_ratelimit;

/* rate: tokens per second (> 0); burst: bucket size (>= 1); max_keys: how
 * many callers are tracked at once.  *out: a new limiter (ll_ratelimit_free). */
int ll_ratelimit_new(ll_ratelimit **out, double rate, double burst, int max_keys);
void ll_ratelimit_free(ll_ratelimit *rl);

/* Takes a token from key's bucket at now_ms (monotonic).  1: allowed; 0:
 * limited, *retry_after_s the whole seconds until a token is back (>= 1). */
int ll_ratelimit_take(int *retry_after_s, ll_ratelimit *rl, const char *key, int64_t now_ms);

#endif

/* answers.c - kept answers of GET /api/v1/tenants/{id}: the JSON text of a
 * tenant as last sent, served again while nothing it shows can have
 * changed.
 *
 * An answer is immutable and reference-counted (the map holds one
 * reference, each reader another; libmicrohttpd sends its text without a
 * copy).  It is kept with the registry's change generation and the
 * tenant's status stamp it was built with, both read before the rows, and
 * served only while both are unchanged: a change racing with a read costs
 * a rebuild, never a stale answer.  The map is a fixed array of chains
 * under answers_lock; past ANSWERS_MAX_BYTES of text every answer is
 * dropped at once (readers keep theirs).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/registry.h"
#include "landlord/status.h"

#include "core_int.h"

/* Kept answers: chains of the map, and at most this many bytes of text
 * (then all are dropped). */
#define ANSWER_BUCKETS    1024
#define ANSWERS_MAX_BYTES (4u << 20)

struct ll_answer {
    int refs;                      /* atomic: the map's and each reader's */
    unsigned long long gen, stamp; /* what the answer was built with */
    struct ll_answer *next;        /* in its chain of c->answers */
    char etag[LL_ETAG_MAX];
    char *id; /* points after text */
    size_t len;
    char text[]; /* len bytes, NUL, then the id and its NUL */
};

const char *ll_answer_text(size_t *out_len, const ll_answer *a)
{
    *out_len = a->len;
    return a->text;
}

const char *ll_answer_etag(const ll_answer *a)
{
    return a->etag;
}

void ll_answer_release(ll_answer *a)
{
    if (a && __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(a);
}

static size_t answer_bucket(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h & (ANSWER_BUCKETS - 1);
}

/* Under answers_lock: drops every kept answer (readers keep theirs). */
static void answers_clear(ll_core *c)
{
    for (size_t i = 0; i < ANSWER_BUCKETS; i++) {
        while (c->answers[i]) {
            ll_answer *a = c->answers[i];
            c->answers[i] = a->next;
            ll_answer_release(a);
        }
    }
    c->answers_bytes = 0;
}

/* Under answers_lock: takes id's answer out of the map (the map's
 * reference moves to the caller), or NULL. */
static ll_answer *answers_take(ll_core *c, const char *id)
{
    for (ll_answer **pp = &c->answers[answer_bucket(id)]; *pp; pp = &(*pp)->next) {
        ll_answer *a = *pp;
        if (strcmp(a->id, id) == 0) {
            *pp = a->next;
            a->next = NULL;
            c->answers_bytes -= a->len;
            return a;
        }
    }
    return NULL;
}

int ll_tenant_answer(ll_answer **out, ll_core *c, const char *id)
{
    /* Read both before the rows and the cluster's objects: an answer is
     * kept with them and served while neither has moved. */
    unsigned long long gen = ll_registry_generation();
    unsigned long long stamp = ll_status_stamp(c->status, id);
    ll_answer *a = NULL;
    json_t *t = NULL;
    char *text = NULL;
    size_t len, idlen = strlen(id);
    int error;

    *out = NULL;
    if (stamp) {
        pthread_mutex_lock(&c->answers_lock);
        for (a = c->answers[answer_bucket(id)]; a; a = a->next)
            if (strcmp(a->id, id) == 0)
                break;
        if (a && a->gen == gen && a->stamp == stamp)
            __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
        else
            a = NULL;
        pthread_mutex_unlock(&c->answers_lock);
        if ((*out = a))
            return 0;
    }
    if ((error = ll_tenant_get(&t, c, id)) < 0)
        return error;
    text = json_dumps(t, JSON_COMPACT);
    len = text ? strlen(text) : 0;
    if (!text || !(a = malloc(sizeof(*a) + len + 1 + idlen + 1))) {
        free(text);
        json_decref(t);
        return ll_error_set(-1, "out of memory");
    }
    a->refs = 1;
    a->gen = gen;
    a->stamp = stamp;
    a->next = NULL;
    snprintf(a->etag, sizeof(a->etag), "%s", json_string_value(json_object_get(t, "etag")) ?: "");
    a->len = len;
    memcpy(a->text, text, len + 1);
    a->id = a->text + len + 1;
    memcpy(a->id, id, idlen + 1);
    free(text);
    json_decref(t);
    if (stamp) {
        pthread_mutex_lock(&c->answers_lock);
        ll_answer_release(answers_take(c, id));
        if (c->answers_bytes + len > ANSWERS_MAX_BYTES)
            answers_clear(c);
        __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED); /* the map's */
        size_t b = answer_bucket(id);
        a->next = c->answers[b];
        c->answers[b] = a;
        c->answers_bytes += len;
        pthread_mutex_unlock(&c->answers_lock);
    }
    *out = a;
    return 0;
}

int ll_core_answers_init(ll_core *c)
{
    pthread_mutex_init(&c->answers_lock, NULL);
    if (!(c->answers = calloc(ANSWER_BUCKETS, sizeof(*c->answers))))
        return ll_error_set(-1, "out of memory");
    return 0;
}

void ll_core_answers_free(ll_core *c)
{
    if (c->answers)
        answers_clear(c);
    free(c->answers);
    c->answers = NULL;
    pthread_mutex_destroy(&c->answers_lock);
}

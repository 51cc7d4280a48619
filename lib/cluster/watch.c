/* watch.c - list + watch of one Kubernetes collection (see watch.h).
 *
 * The thread loops: probe (optional APIs), list every page, report RESYNC,
 * then watch from the list's resourceVersion until the stream fails.  A
 * normal end (timeoutSeconds) re-watches from the last resourceVersion; 410
 * lists again; anything else backs off and re-watches.  stop and the status
 * fields are guarded by lock; the collection itself is not kept here (the
 * callback's owner keeps what it needs).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/util.h"
#include "landlord/watch.h"
#include "landlord/worker.h"
#include "kube_int.h"
#include "watch_int.h"

#define WATCH_TIMEOUT_S 300
#define WATCH_IDLE_S    (WATCH_TIMEOUT_S + 30)
#define BACKOFF_MIN_MS  1000
#define BACKOFF_MAX_MS  30000
#define PROBE_EVERY_MS  60000
#define PAGE_LIMIT      250

struct ll_informer {
    ll_kube *kube;
    ll_informer_spec spec;
    char *kind, *path, *label_selector, *field_selector, *probe;
    ll_worker worker;

    pthread_mutex_t lock; /* what ll_informer_health reads */
    ll_watch_state state;
    int absent;
    long long objects, restarts;
    int listed; /* a list succeeded once */
    char error[LL_ERROR_MSG_MAX];

    /* The watch thread's own: the position and the live count. */
    char rv[128];
};

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

static int stopping(ll_informer *inf)
{
    return ll_worker_stopping(&inf->worker);
}

/* Sleeps ms unless stopped first; returns 1 when stopped. */
static int pause_ms(ll_informer *inf, int ms)
{
    return ll_worker_wait(&inf->worker, ms);
}

/* Synced (error NULL), or failed with error. */
static void set_state(ll_informer *inf, int synced, const char *error)
{
    pthread_mutex_lock(&inf->lock);
    inf->state = synced ? LL_WATCH_SYNCED : LL_WATCH_FAILED;
    snprintf(inf->error, sizeof(inf->error), "%s", error ? error : "");
    pthread_mutex_unlock(&inf->lock);
}

/* "ns/name", or "name" for cluster-scoped objects. */
static void object_key(char *out, size_t cap, const json_t *object)
{
    const json_t *meta = json_object_get(object, "metadata");
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *name = json_string_value(json_object_get(meta, "name"));
    if (ns && ns[0])
        snprintf(out, cap, "%s/%s", ns, name ? name : "");
    else
        snprintf(out, cap, "%s", name ? name : "");
}

/* path?<query>&labelSelector=...&fieldSelector=... */
static void build_path(ll_buf *b, ll_informer *inf, const char *query)
{
    ll_buf_printf(b, "%s?%s", inf->path, query);
    const char *names[] = {"labelSelector", "fieldSelector"};
    const char *values[] = {inf->label_selector, inf->field_selector};
    for (int i = 0; i < 2; i++) {
        if (!values[i])
            continue;
        char *esc = curl_easy_escape(NULL, values[i], 0);
        if (esc)
            ll_buf_printf(b, "&%s=%s", names[i], esc);
        curl_free(esc);
    }
}

int ll_informer_take_page(json_t *objects, const ll_informer_spec *spec, const json_t *page,
                          char *rv, size_t rv_cap, char *cont, size_t cont_cap)
{
    const json_t *meta = json_object_get(page, "metadata"), *items = json_object_get(page, "items"),
                 *item;
    size_t i;

    if (!json_is_array(items))
        return ll_error_set(LL_EMALFORMED, "kubernetes: the %s list has no items", spec->kind);
    json_array_foreach(items, i, item)
    {
        char key[512];
        object_key(key, sizeof(key), item);
        json_object_set_new(objects, key, spec->slim(item));
    }
    const char *version = json_string_value(json_object_get(meta, "resourceVersion"));
    const char *next = json_string_value(json_object_get(meta, "continue"));
    snprintf(rv, rv_cap, "%s", version ? version : "");
    snprintf(cont, cont_cap, "%s", next ? next : "");
    return 0;
}

/* Lists every page into a new map key -> slim; *rv gets the list's
 * resourceVersion. */
static int list_all(json_t **out, ll_informer *inf)
{
    json_t *objects = json_object(), *page = NULL;
    char cont[2048] = "";
    int error = 0;

    *out = NULL;
    do {
        ll_buf path;
        char query[2300];
        ll_buf_init(&path, 16384);
        if (cont[0]) {
            char *esc = curl_easy_escape(NULL, cont, 0);
            snprintf(query, sizeof(query), "limit=%d&continue=%s", PAGE_LIMIT, esc ? esc : "");
            curl_free(esc);
        } else {
            snprintf(query, sizeof(query), "limit=%d", PAGE_LIMIT);
        }
        build_path(&path, inf, query);
        error = ll_kube_get(&page, inf->kube, path.data);
        ll_buf_free(&path);
        if (error < 0)
            break;
        if ((error = ll_informer_take_page(objects, &inf->spec, page, inf->rv, sizeof(inf->rv),
                                           cont, sizeof(cont))) < 0)
            break;
        json_decref(page);
        page = NULL;
    } while (cont[0] && !stopping(inf));
    json_decref(page);
    if (error < 0) {
        json_decref(objects);
        return error;
    }
    *out = objects;
    return 0;
}

static int on_event(void *ctx, const char *type, json_t *object)
{
    ll_informer *inf = ctx;
    const char *rv =
        json_string_value(json_object_get(json_object_get(object, "metadata"), "resourceVersion"));
    char key[512];

    if (rv)
        snprintf(inf->rv, sizeof(inf->rv), "%s", rv);
    if (strcmp(type, "BOOKMARK") == 0)
        return 0;
    if (strcmp(type, "ADDED") != 0 && strcmp(type, "MODIFIED") != 0 && strcmp(type, "DELETED") != 0)
        return 0;
    object_key(key, sizeof(key), object);
    json_t *slim = inf->spec.slim(object);
    pthread_mutex_lock(&inf->lock);
    if (strcmp(type, "ADDED") == 0)
        inf->objects++;
    else if (strcmp(type, "DELETED") == 0 && inf->objects > 0)
        inf->objects--;
    pthread_mutex_unlock(&inf->lock);
    inf->spec.on_change(type, key, slim, NULL, inf->spec.payload);
    json_decref(slim);
    return 0;
}

/* 1 when the optional API is missing (reported as an empty collection). */
static int probe_absent(ll_informer *inf)
{
    json_t *body = NULL;
    if (!inf->probe)
        return 0;
    int error = ll_kube_get(&body, inf->kube, inf->probe);
    json_decref(body);
    pthread_mutex_lock(&inf->lock);
    inf->absent = error == LL_ENOTFOUND;
    pthread_mutex_unlock(&inf->lock);
    return error == LL_ENOTFOUND;
}

/* The path of the next list, when the spec resolves it (informer thread:
 * nobody else reads inf->path once started).  0, or the resolver's code. */
static int resolve_path(ll_informer *inf)
{
    char path[512];
    int error;
    if (!inf->spec.resolve)
        return 0;
    if ((error = inf->spec.resolve(path, sizeof(path), inf->spec.payload)) < 0)
        return error;
    if (strcmp(path, inf->path) != 0) {
        char *copy = strdup(path);
        if (!copy)
            return ll_error_set(-1, "out of memory");
        free(inf->path);
        inf->path = copy;
    }
    return 0;
}

static void *run(void *arg)
{
    ll_informer *inf = arg;
    int backoff = 0;

    while (!stopping(inf)) {
        json_t *objects = NULL;
        if (probe_absent(inf)) {
            json_t *none = json_object();
            inf->spec.on_change("RESYNC", NULL, NULL, none, inf->spec.payload);
            json_decref(none);
            set_state(inf, 1, NULL);
            if (pause_ms(inf, PROBE_EVERY_MS))
                break;
            continue;
        }
        if (resolve_path(inf) < 0 || list_all(&objects, inf) < 0) {
            if (stopping(inf))
                break;
            set_state(inf, 0, ll_error_last()->message);
            ll_log_warn("msg=\"cannot list %s\" error=\"%s\"", inf->kind, ll_error_last()->message);
            backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
            if (backoff > BACKOFF_MAX_MS)
                backoff = BACKOFF_MAX_MS;
            if (pause_ms(inf, backoff))
                break;
            continue;
        }
        pthread_mutex_lock(&inf->lock);
        inf->objects = (long long)json_object_size(objects);
        inf->restarts += inf->listed; /* every list after the first */
        inf->listed = 1;
        pthread_mutex_unlock(&inf->lock);
        inf->spec.on_change("RESYNC", NULL, NULL, objects, inf->spec.payload);
        json_decref(objects);
        set_state(inf, 1, NULL);
        backoff = 0;
        /* Listing parsed megabytes of JSON on this thread: give the pages
         * back instead of keeping them in its arena. */
        malloc_trim(0);

        /* Watch until a 410 says the position is gone. */
        while (!stopping(inf)) {
            ll_buf path;
            char query[600];
            char *esc = curl_easy_escape(NULL, inf->rv, 0);
            snprintf(query, sizeof(query),
                     "watch=1&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=%s",
                     WATCH_TIMEOUT_S, esc ? esc : "");
            curl_free(esc);
            ll_buf_init(&path, 16384);
            build_path(&path, inf, query);
            int error = ll_kube_watch(inf->kube, path.data, WATCH_IDLE_S, on_event, inf);
            ll_buf_free(&path);
            if (stopping(inf))
                break;
            if (error == 0) {
                set_state(inf, 1, NULL);
                backoff = 0;
                continue;
            }
            if (error == LL_EGONE) {
                ll_log_info("msg=\"watch expired; listing again\" kind=%s", inf->kind);
                break;
            }
            /* Events may have been lost with the stream: list again (after a
             * pause), which also tells when the cluster answers again. */
            set_state(inf, 0, ll_error_last()->message);
            ll_log_warn("msg=\"watch failed\" kind=%s error=\"%s\"", inf->kind,
                        ll_error_last()->message);
            backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
            if (backoff > BACKOFF_MAX_MS)
                backoff = BACKOFF_MAX_MS;
            pause_ms(inf, backoff);
            break;
        }
    }
    return NULL;
}

int ll_informer_start(ll_informer **out, ll_kube *k, const ll_informer_spec *spec)
{
    ll_informer *inf = calloc(1, sizeof(*inf));
    *out = NULL;
    if (!inf)
        return ll_error_set(-1, "out of memory");
    inf->kube = k;
    inf->spec = *spec;
    inf->kind = strdup(spec->kind);
    inf->path = strdup(spec->path);
    inf->label_selector = dup_or_null(spec->label_selector);
    inf->field_selector = dup_or_null(spec->field_selector);
    inf->probe = dup_or_null(spec->probe);
    pthread_mutex_init(&inf->lock, NULL);
    ll_worker_init(&inf->worker);
    if (!inf->kind || !inf->path) {
        ll_informer_stop(inf);
        return ll_error_set(-1, "out of memory");
    }
    if (ll_worker_start(&inf->worker, run, inf, "a watch") < 0) {
        ll_informer_stop(inf);
        return ll_error_set(-1, "cannot start the %s watch", spec->kind);
    }
    *out = inf;
    return 0;
}

void ll_informer_stop(ll_informer *inf)
{
    if (!inf)
        return;
    ll_worker_destroy(&inf->worker);
    pthread_mutex_destroy(&inf->lock);
    free(inf->kind);
    free(inf->path);
    free(inf->label_selector);
    free(inf->field_selector);
    free(inf->probe);
    free(inf);
}

void ll_informer_health(ll_watch_health *out, ll_informer *inf)
{
    memset(out, 0, sizeof(*out));
    out->kind = inf->kind;
    pthread_mutex_lock(&inf->lock);
    out->state = inf->state;
    out->objects = inf->objects;
    out->restarts = inf->restarts;
    out->absent = inf->absent;
    snprintf(out->error, sizeof(out->error), "%s", inf->error);
    pthread_mutex_unlock(&inf->lock);
}

int ll_informer_synced(ll_informer *inf)
{
    pthread_mutex_lock(&inf->lock);
    int synced = inf->state == LL_WATCH_SYNCED;
    pthread_mutex_unlock(&inf->lock);
    return synced;
}

int ll_informer_take_stream(const ll_informer_spec *spec, const char *body, size_t len,
                            size_t chunk, char *rv, size_t rv_cap)
{
    ll_informer inf;
    int error;

    memset(&inf, 0, sizeof(inf));
    inf.spec = *spec;
    inf.kind = (char *)spec->kind;
    inf.path = (char *)spec->path;
    pthread_mutex_init(&inf.lock, NULL);
    error = ll_kube_watch_parse(spec->path, body, len, chunk, on_event, &inf);
    snprintf(rv, rv_cap, "%s", inf.rv);
    pthread_mutex_destroy(&inf.lock);
    return error;
}

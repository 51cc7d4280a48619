/* events.c - the service's event and webhook use cases: subscriptions
 * checked completely before they are stored (the receiver's host last: it
 * is resolved, and every address must be public or in webhook-allow-cidr),
 * the delivery log, the event stream's reads, and /metrics.
 *
 * Events are written by the status follower (status.c) and delivered by
 * webhooks.c; this file only reads them, and stores subscriptions.  The
 * registry hands records (ll_webhook, ll_delivery, ll_event,
 * ll_state_count); each becomes the API's JSON in one function here
 * (webhook_json, delivery_json, event_json).  A subscription's secret is
 * shown once, in the answer to its creation, and never read back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/gitops.h"
#include "landlord/netpolicy.h"
#include "landlord/registry.h"
#include "landlord/tiers.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "core_int.h"

#define URL_MAX         2048
#define TYPES_MAX       20
#define DESCRIPTION_MAX 200

static const char *const states[] = {"provisioning", "ready",      "updating", "failed",  "blocked",
                                     "offboarding",  "offboarded", "drifted",  "unknown", NULL};

/* What rollouts announce (rollouts.c, registry_rollouts.c). */
static const char *const rollout_events[] = {
    "started", "wave_started", "wave_succeeded", "tenant_ready", "tenant_failed", "failed",
    "paused",  "resumed",      "aborted",        "rolling_back", "rolled_back",   "succeeded",
    NULL};

/* "*", "tenant.*", "tenant.<state>", "rollout.*" or "rollout.<event>". */
static int valid_type(const char *t)
{
    const char *const *list = NULL;
    if (strcmp(t, "*") == 0 || strcmp(t, "tenant.*") == 0 || strcmp(t, "rollout.*") == 0)
        return 1;
    if (strncmp(t, "tenant.", 7) == 0)
        list = states, t += 7;
    else if (strncmp(t, "rollout.", 8) == 0)
        list = rollout_events, t += 8;
    for (const char *const *s = list; s && *s; s++)
        if (strcmp(t, *s) == 0)
            return 1;
    return 0;
}

/* An absolute http(s) URL with a host and no user information. */
static int check_url(const char *url)
{
    CURLU *u = NULL;
    char *scheme = NULL, *host = NULL, *user = NULL;
    int error = 0;

    if (strlen(url) > URL_MAX)
        return ll_core_field_error("url", "url is longer than %d characters", URL_MAX);
    u = curl_url();
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
        error = ll_core_field_error("url", "url is not an absolute URL");
    } else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        error = ll_core_field_error("url", "url must be http:// or https://, not %.16s://", scheme);
    } else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        error = ll_core_field_error("url", "url must not carry credentials; the secret signs "
                                           "each delivery");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return error;
}

/* The receiver is somewhere webhooks may go (webhooks.h): refused with
 * kind webhook-address-not-allowed, or not resolving, before anything is
 * stored. */
static int check_receiver(ll_core *c, const char *url)
{
    ll_netpolicy *policy = NULL;
    int error = ll_netpolicy_parse(&policy, c->cfg.webhook_allow_cidr);
    if (error == 0)
        error = ll_webhook_check_url(NULL, url, policy, LL_WEBHOOK_RESOLVE_MS);
    ll_netpolicy_free(policy);
    return error;
}

/* A subscription as POST /api/v1/webhooks asks for it; the strings and
 * types are borrowed from the body. */
typedef struct webhook_request {
    const char *url, *secret, *description;
    const json_t *types; /* NULL: the default, tenant.* */
} webhook_request;

/* The body's fields, each of one JSON type; any other field is refused. */
static int read_request(webhook_request *out, const json_t *body)
{
    static const struct {
        const char *name;
        json_type type;
    } fields[] = {
        {"url", JSON_STRING},
        {"secret", JSON_STRING},
        {"description", JSON_STRING},
        {"event_types", JSON_ARRAY},
    };
    const char **strings[] = {&out->url, &out->secret, &out->description};
    const size_t nfields = sizeof(fields) / sizeof(fields[0]);
    const char *key;
    json_t *v;

    *out = (webhook_request){.description = ""};
    if (!json_is_object(body))
        return ll_core_field_error("", "the body must be a JSON object");
    json_object_foreach((json_t *)body, key, v)
    {
        size_t i = 0;
        while (i < nfields && strcmp(key, fields[i].name) != 0)
            i++;
        if (i == nfields)
            return ll_core_field_error(key, "unknown field '%.64s'", key);
        if (json_typeof(v) != fields[i].type)
            return ll_core_field_error(key, "%s has the wrong type", key);
        if (fields[i].type == JSON_STRING)
            *strings[i] = json_string_value(v);
        else
            out->types = v;
    }
    return 0;
}

/* The caller's secret (16-256 printable characters without spaces), or,
 * when there is none, 32 random bytes in hex written to generated[65]. */
static int check_secret(const char **secret, char generated[65])
{
    if (!*secret) {
        if (ll_random_hex(generated, 32) < 0)
            return -1;
        *secret = generated;
        return 0;
    }
    size_t n = strlen(*secret);
    int printable = n >= 16 && n <= 256;
    for (size_t i = 0; printable && i < n; i++)
        printable = (*secret)[i] > 0x20 && (*secret)[i] < 0x7f;
    if (!printable)
        return ll_core_field_error("secret",
                                   "secret must be 16-256 printable characters without spaces");
    return 0;
}

/* event_types, when given: 1 to TYPES_MAX known event types. */
static int check_types(const json_t *types)
{
    size_t i, n = json_array_size(types);
    json_t *v;

    if (!types)
        return 0;
    if (n == 0 || n > TYPES_MAX)
        return ll_core_field_error("event_types", "event_types must list 1 to %d types", TYPES_MAX);
    json_array_foreach(types, i, v)
    {
        if (!json_is_string(v) || !valid_type(json_string_value(v)))
            return ll_core_field_error("event_types",
                                       "event_types[%zu] is not an event type (tenant.*, "
                                       "tenant.ready, rollout.*, rollout.failed, ...)",
                                       i);
    }
    return 0;
}

/* The checked event_types of a request (borrowed; NULL: the default,
 * tenant.*) into out (ll_names_clear). */
static int request_types(ll_names *out, const json_t *types)
{
    size_t i;
    json_t *t;
    if (!types && ll_names_add(out, "tenant.*") < 0)
        return ll_error_set(-1, "out of memory");
    json_array_foreach(types, i, t)
    {
        if (ll_names_add(out, json_string_value(t)) < 0)
            return ll_error_set(-1, "out of memory");
    }
    return 0;
}

/* A subscription as the API shows it: {"id", "url", "event_types",
 * "description", "created_at"}, and "secret" when secret is not NULL
 * (borrowed; shown once, to whoever created the subscription).  New
 * reference. */
static json_t *webhook_json(const ll_webhook *w, const char *secret)
{
    json_t *types = json_array();
    for (size_t i = 0; i < w->event_types.n; i++)
        json_array_append_new(types, json_string(w->event_types.v[i]));
    json_t *o =
        json_pack("{s:I, s:s?, s:o, s:s?, s:s}", "id", (json_int_t)w->id, "url", w->url,
                  "event_types", types, "description", w->description, "created_at", w->created_at);
    if (o && secret)
        json_object_set_new(o, "secret", json_string(secret));
    return o;
}

int ll_webhook_create(json_t **out, ll_core *c, const json_t *body)
{
    ll_registry *r = ll_core_registry(c);
    webhook_request req;
    ll_webhook hook = {0};
    ll_names types = {NULL, 0};
    char generated[65];
    int error;

    *out = NULL;
    if (!r)
        return -1;
    if ((error = read_request(&req, body)) < 0)
        return error;
    if (!req.url)
        return ll_core_field_error("url", "url is required");
    if ((error = check_url(req.url)) < 0)
        return error;
    if (strlen(req.description) > DESCRIPTION_MAX)
        return ll_core_field_error("description", "description is longer than %d characters",
                                   DESCRIPTION_MAX);
    if ((error = check_secret(&req.secret, generated)) < 0 ||
        (error = check_types(req.types)) < 0 || (error = check_receiver(c, req.url)) < 0)
        return error;
    if ((error = request_types(&types, req.types)) == 0 &&
        (error = ll_registry_webhook_create(&hook, r, req.url, req.secret, &types,
                                            req.description)) == 0 &&
        !(*out = webhook_json(&hook, req.secret)))
        error = ll_error_set(-1, "out of memory");
    ll_names_clear(&types);
    ll_registry_webhook_clear(&hook);
    return error;
}

int ll_webhook_list(json_t **out, ll_core *c)
{
    ll_registry *r = ll_core_registry(c);
    ll_webhook *hooks = NULL;
    size_t n = 0;
    int error;
    if (!r)
        return -1;
    if ((error = ll_registry_webhook_list(&hooks, &n, r)) < 0)
        return error;
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, webhook_json(&hooks[i], NULL));
    ll_registry_webhooks_free(hooks, n);
    *out = json_pack("{s:o}", "items", items);
    return 0;
}

int ll_webhook_get(json_t **out, ll_core *c, long long id)
{
    ll_registry *r = ll_core_registry(c);
    ll_webhook hook = {0};
    int error;
    *out = NULL;
    if (!r)
        return -1;
    if ((error = ll_registry_webhook_get(&hook, r, id)) < 0)
        return error;
    *out = webhook_json(&hook, NULL);
    ll_registry_webhook_clear(&hook);
    return *out ? 0 : ll_error_set(-1, "out of memory");
}

int ll_webhook_delete(ll_core *c, long long id)
{
    ll_registry *r = ll_core_registry(c);
    return r ? ll_registry_webhook_delete(r, id) : -1;
}

/* A delivery as the log shows it: {"id", "webhook", "event", "state",
 * "attempts", "last_error", "created_at", "updated_at", "event_type",
 * "last_status"} (null for no status or error).  New reference. */
static json_t *delivery_json(const ll_delivery *d)
{
    return json_pack("{s:I, s:I, s:I, s:s, s:I, s:s?, s:s, s:s, s:s, s:o}", "id", (json_int_t)d->id,
                     "webhook", (json_int_t)d->webhook, "event", (json_int_t)d->event, "state",
                     ll_delivery_state_name(d->state), "attempts", (json_int_t)d->attempts,
                     "last_error", d->last_error, "created_at", d->created_at, "updated_at",
                     d->updated_at, "event_type", d->event_type, "last_status",
                     d->last_status ? json_integer(d->last_status) : json_null());
}

int ll_webhook_deliveries(json_t **out, ll_core *c, long long id, long long before, int limit)
{
    ll_registry *r = ll_core_registry(c);
    ll_webhook hook = {0};
    ll_delivery *rows = NULL;
    size_t n = 0;
    int error;

    if (!r)
        return -1;
    if ((error = ll_registry_webhook_get(&hook, r, id)) < 0)
        return error;
    ll_registry_webhook_clear(&hook);
    if ((error = ll_registry_deliveries(&rows, &n, r, id, before, limit + 1)) < 0)
        return error;
    /* One more than asked for says whether a next page exists. */
    json_t *items = json_array(), *next = json_null();
    for (size_t i = 0; i < n && i < (size_t)limit; i++)
        json_array_append_new(items, delivery_json(&rows[i]));
    if (n > (size_t)limit)
        next = json_sprintf("%lld", rows[limit - 1].id);
    ll_registry_deliveries_free(rows, n);
    *out = json_pack("{s:o, s:o}", "items", items, "next_cursor", next);
    return 0;
}

/* An event as the event stream shows it: {"id", "type", "tenant" (null
 * when of no single tenant), "data", "created_at"} (new reference). */
static json_t *event_json(const ll_event *e)
{
    json_t *data = json_loads(e->data, 0, NULL);
    return json_pack("{s:I, s:s, s:s?, s:o, s:s}", "id", (json_int_t)e->id, "type", e->type,
                     "tenant", e->tenant[0] ? e->tenant : NULL, "data", data ? data : json_object(),
                     "created_at", e->created_at);
}

int ll_events_after(json_t **out, ll_core *c, long long after, int limit)
{
    ll_registry *r = ll_core_registry(c);
    ll_event *events = NULL;
    size_t n = 0;
    int error;

    *out = NULL;
    if (!r)
        return -1;
    if ((error = ll_registry_events_after(&events, &n, r, after, limit)) < 0)
        return error;
    *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(*out, event_json(&events[i]));
    ll_registry_events_free(events, n);
    return 0;
}

int ll_events_last(long long *out, ll_core *c)
{
    ll_registry *r = ll_core_registry(c);
    return r ? ll_registry_events_last(out, r) : -1;
}

unsigned long long ll_core_events_generation(ll_core *c)
{
    /* Tenants' transitions and rollouts' events: both only grow. */
    return ll_status_generation(c->status) + ll_rollouts_generation(ll_core_rollouts(c));
}

int ll_core_metrics(char **out, size_t *out_len, ll_core *c)
{
    ll_registry *r = ll_core_registry(c);
    ll_state_count *counts = NULL;
    size_t ncounts = 0;
    ll_kube_health kube;
    long long buckets[LL_PUSH_BUCKETS + 1], count = 0, sum_ms = 0, queued = 0, cumulative = 0;
    long long delivered = 0, failed = 0, given_up = 0;
    size_t i;
    ll_buf b;
    int error;

    *out = NULL;
    if (!r)
        return -1;
    if ((error = ll_registry_state_counts(&counts, &ncounts, r)) < 0 ||
        (error = ll_registry_ops_count_queued(&queued, r)) < 0) {
        ll_registry_state_counts_free(counts, ncounts);
        return error;
    }
    ll_buf_init(&b, 4 << 20);
    ll_buf_adds(&b, "# HELP landlord_tenants Tenants by tier and observed state.\n"
                    "# TYPE landlord_tenants gauge\n");
    /* Offboarded tenants of a tier that is gone are no series: a deleted
     * tier's series end with it. */
    ll_tier_catalogue *cat = ll_gitops_tiers(c->git);
    for (i = 0; i < ncounts; i++) {
        if (strcmp(counts[i].state, "offboarded") == 0 && !ll_tiers_find(cat, counts[i].tier))
            continue;
        ll_buf_printf(&b, "landlord_tenants{tier=\"%s\",state=\"%s\"} %lld\n", counts[i].tier,
                      counts[i].state, counts[i].count);
    }
    ll_tier_catalogue_unref(cat);
    ll_registry_state_counts_free(counts, ncounts);
    ll_buf_printf(&b,
                  "# HELP landlord_operations_queued Operations waiting to be pushed.\n"
                  "# TYPE landlord_operations_queued gauge\n"
                  "landlord_operations_queued %lld\n",
                  queued);
    ll_gitops_push_stats(buckets, &count, &sum_ms, c->git);
    ll_buf_adds(&b, "# HELP landlord_git_push_seconds Time of each successful push.\n"
                    "# TYPE landlord_git_push_seconds histogram\n");
    for (int k = 0; k < LL_PUSH_BUCKETS; k++) {
        cumulative += buckets[k];
        ll_buf_printf(&b, "landlord_git_push_seconds_bucket{le=\"%g\"} %lld\n",
                      ll_push_bounds_ms[k] / 1000.0, cumulative);
    }
    ll_buf_printf(&b,
                  "landlord_git_push_seconds_bucket{le=\"+Inf\"} %lld\n"
                  "landlord_git_push_seconds_sum %.3f\n"
                  "landlord_git_push_seconds_count %lld\n",
                  count, sum_ms / 1000.0, count);
    ll_status_health(&kube, c->status);
    ll_buf_adds(&b, "# HELP landlord_watch_restarts_total Lists repeated after a watch expired "
                    "(410 Gone) or failed.\n# TYPE landlord_watch_restarts_total counter\n");
    for (i = 0; i < kube.n_watches; i++)
        ll_buf_printf(&b, "landlord_watch_restarts_total{kind=\"%s\"} %lld\n", kube.watches[i].kind,
                      kube.watches[i].restarts);
    ll_buf_adds(&b, "# HELP landlord_watch_synced 1 while the collection is listed and watched.\n"
                    "# TYPE landlord_watch_synced gauge\n");
    for (i = 0; i < kube.n_watches; i++)
        ll_buf_printf(&b, "landlord_watch_synced{kind=\"%s\"} %d\n", kube.watches[i].kind,
                      kube.watches[i].state == LL_WATCH_SYNCED);
    ll_webhooks_counts(&delivered, &failed, &given_up, c->webhooks);
    ll_buf_printf(&b,
                  "# HELP landlord_webhook_deliveries_total Webhook deliveries made.\n"
                  "# TYPE landlord_webhook_deliveries_total counter\n"
                  "landlord_webhook_deliveries_total %lld\n"
                  "# HELP landlord_webhook_failures_total Webhook attempts that failed "
                  "(retried until the last).\n"
                  "# TYPE landlord_webhook_failures_total counter\n"
                  "landlord_webhook_failures_total %lld\n"
                  "# HELP landlord_webhook_given_up_total Deliveries failed for good.\n"
                  "# TYPE landlord_webhook_given_up_total counter\n"
                  "landlord_webhook_given_up_total %lld\n",
                  delivered, failed, given_up);
    *out = ll_buf_steal(out_len, &b);
    return *out ? 0 : ll_error_set(-1, "out of memory");
}

/* access.c - the use cases of identity and access: tier changes, the audit
 * log, idempotent POSTs, and a tenant's history read from git.
 *
 * Tier changes go through the outbox like tenant changes: a PUT is checked
 * completely (fields, the template rendered for a sample tenant, the tier
 * policy, the deployment model it declares, If-Match / If-None-Match) before one
 * operation is queued; the git writer makes it one commit of its own.  One
 * change per tier may be queued at a time, so a version checked here is
 * still the current one when the operation is stored.
 *
 * The audit log and idempotency keys live in the registry, which hands
 * back typed records (ll_audit_item, ll_idem_answer); an audit record
 * becomes the API's JSON here, in ll_audit_item_json, and nowhere else.
 * An idempotent POST is known by its fingerprint (method, path, and the
 * body's JSON value), computed here so that server/ needs no hashing.
 * Expired rows are pruned at most once a minute, by whichever request
 * thread gets there first.  History opens its own libgit2 handle on landlord's clone
 * (the writer thread owns the other one) and walks first parents from the
 * remote head, comparing tree ids so that unrelated commits cost a lookup
 * or two.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <git2.h>
#include <openssl/evp.h>

#include "landlord/auth.h"
#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/gitops.h"
#include "landlord/log.h"
#include "landlord/template.h"
#include "landlord/tiers.h"
#include "landlord/util.h"
#include "landlord/validate.h"

#include "core_int.h"

#define TEMPLATE_MAX    (256 * 1024)
#define DESCRIPTION_MAX 1000
#define HISTORY_SCAN    20000 /* commits looked at per history request */
#define PRUNE_EVERY_MS  60000

/* --- pruning ----------------------------------------------------------------------- */

static void prune(ll_core *c, int at_start)
{
    ll_registry *r = ll_core_registry(c);
    int64_t now = ll_monotonic_ms();
    char before[32];
    time_t t;
    struct tm tm;

    pthread_mutex_lock(&c->prune_lock);
    if (!at_start && now < c->next_prune_ms) {
        pthread_mutex_unlock(&c->prune_lock);
        return;
    }
    c->next_prune_ms = now + PRUNE_EVERY_MS;
    pthread_mutex_unlock(&c->prune_lock);
    if (!r)
        return;
    t = time(NULL) - (time_t)c->cfg.audit_retention * 86400;
    gmtime_r(&t, &tm);
    strftime(before, sizeof(before), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    if (ll_registry_audit_prune(r, before) < 0 ||
        ll_registry_idem_prune(r, (long long)time(NULL) * 1000 - c->cfg.idempotency_ttl * 1000LL,
                               at_start) < 0)
        ll_log_warn("msg=\"cannot prune audit records and idempotency keys\" error=\"%s\"",
                    ll_error_last()->message);
}

void ll_access_start(ll_core *c)
{
    prune(c, 1);
}

const ll_auth *ll_core_auth(ll_core *c)
{
    return c->auth;
}

/* --- audit ------------------------------------------------------------------------------ */

int ll_audit_record(ll_core *c, const ll_audit_entry *e)
{
    ll_registry *r = ll_core_registry(c);
    ll_audit_entry copy = *e;
    ll_operation op = {0};
    int error;

    if (!r)
        return -1;
    /* The operation says which tenant or tier the request changed. */
    if (e->operation > 0 && ll_registry_op_get(&op, r, e->operation) == 0) {
        if (!copy.tenant && op.tenant && op.tenant[0])
            copy.tenant = op.tenant;
        if (!copy.tier)
            copy.tier = op.tier;
    }
    error = ll_registry_audit_add(r, &copy);
    ll_operation_clear(&op);
    prune(c, 0);
    return error;
}

/* A timestamp filter: YYYY-MM-DDTHH:MM:SS[.mmm]Z, normalised to the stored
 * form (with milliseconds) so that text order is time order. */
static int timestamp(char out[64], const char *s, const char *field)
{
    int y, mo, d, h, mi, se, n = 0;
    char ms[4] = "000";
    size_t len = s ? strlen(s) : 0;

    if (len == 20 && sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &se, &n) == 6 &&
        n == 20) {
        /* whole seconds */
    } else if (len == 24 &&
               sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3[0-9]Z%n", &y, &mo, &d, &h, &mi, &se, ms, &n) ==
                   7 &&
               n == 24) {
        /* milliseconds */
    } else {
        ll_error_set(LL_EINVALID, "%s must be an RFC 3339 UTC time like 2026-11-23T18:16:26Z",
                     field);
        ll_error_field(field);
        return LL_EINVALID;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) {
        ll_error_set(LL_EINVALID, "%s is not a valid time", field);
        ll_error_field(field);
        return LL_EINVALID;
    }
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%sZ", y, mo, d, h, mi, se, ms);
    return 0;
}

/* What became of the request, from its status and its operation's state
 * (NULL: none). */
static const char *outcome(int status, const char *op_state)
{
    if (status >= 500)
        return "failed";
    if (status >= 400)
        return "refused";
    if (op_state && strcmp(op_state, "queued") == 0)
        return "pending";
    if (op_state && strcmp(op_state, "failed") == 0)
        return "failed";
    return "done";
}

/* s as a JSON string, or null (new reference). */
static json_t *text_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *ll_audit_item_json(const ll_audit_item *item)
{
    json_t *e = json_object(), *actor = json_null(), *op = json_null();

    if (item->actor)
        actor = json_pack("{s:o, s:o, s:o}", "sub", text_or_null(item->actor), "name",
                          text_or_null(item->actor_name), "email", text_or_null(item->actor_email));
    if (item->op_id)
        op = json_pack("{s:I, s:o, s:o, s:o, s:{s:o, s:o}}", "id", (json_int_t)item->op_id, "kind",
                       text_or_null(item->op_kind), "state", text_or_null(item->op_state), "commit",
                       text_or_null(item->op_commit), "author", "name",
                       text_or_null(item->op_author_name), "email",
                       text_or_null(item->op_author_email));
    json_object_set_new(e, "id", json_integer(item->id));
    json_object_set_new(e, "at", text_or_null(item->at));
    json_object_set_new(e, "request_id", text_or_null(item->request_id));
    json_object_set_new(e, "actor", actor);
    json_object_set_new(e, "method", text_or_null(item->method));
    json_object_set_new(e, "path", text_or_null(item->path));
    json_object_set_new(e, "route", text_or_null(item->route));
    json_object_set_new(e, "tenant", text_or_null(item->tenant));
    json_object_set_new(e, "tier", text_or_null(item->tier));
    json_object_set_new(e, "status", json_integer(item->status));
    json_object_set_new(e, "outcome",
                        json_string(outcome(item->status, item->op_id ? item->op_state : NULL)));
    json_object_set_new(e, "problem", text_or_null(item->problem));
    json_object_set_new(e, "replayed", json_boolean(item->replayed));
    json_object_set_new(e, "operation", op);
    json_object_set_new(e, "commit", item->op_id ? text_or_null(item->op_commit) : json_null());
    return e;
}

/* The filters of an audit listing, checked, into *out (times in the
 * stored form, in from and to). */
static int audit_filter(ll_audit_filter *out, char from[64], char to[64], const char *tenant,
                        const char *actor, const char *since, const char *until, const char *cursor)
{
    int error;

    *out = (ll_audit_filter){.tenant = tenant, .actor = actor};
    if (tenant && ll_validate_label(tenant, 253, "tenant") < 0)
        return LL_EINVALID;
    if (actor && (!*actor || strlen(actor) > 255))
        return ll_core_field_error("actor", "actor must be a token subject of 1-255 characters");
    if ((since && (error = timestamp(from, since, "since")) < 0) ||
        (until && (error = timestamp(to, until, "until")) < 0))
        return error;
    out->since = since ? from : NULL;
    out->until = until ? to : NULL;
    if (cursor) {
        char *end;
        out->before = strtoll(cursor, &end, 10);
        if (*end || end == cursor || out->before <= 0)
            return ll_core_field_error("cursor", "cursor is not one this server gave out");
    }
    return 0;
}

int ll_audit_list(json_t **out, ll_core *c, const char *tenant, const char *actor,
                  const char *since, const char *until, const char *cursor, int limit)
{
    ll_registry *r = ll_core_registry(c);
    ll_audit_filter filter;
    ll_audit_page page = {0};
    char from[64], to[64], nc[32];
    json_t *items;
    int error;

    if (!r)
        return -1;
    if ((error = audit_filter(&filter, from, to, tenant, actor, since, until, cursor)) < 0 ||
        (error = ll_registry_audit_list(&page, r, &filter, limit)) < 0)
        return error;
    items = json_array();
    for (size_t i = 0; i < page.count; i++)
        json_array_append_new(items, ll_audit_item_json(&page.items[i]));
    snprintf(nc, sizeof(nc), "%lld", page.next);
    *out = json_pack("{s:o, s:o}", "items", items, "next_cursor",
                     page.next ? json_string(nc) : json_null());
    ll_audit_page_free(&page);
    return 0;
}

/* --- idempotency ------------------------------------------------------------------------ */

void ll_idempotency_fingerprint(char out[65], const ll_idem_request *req)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    json_t *value =
        req->len ? json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL)
                 : NULL;
    char *canonical =
        value ? json_dumps(value, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
        EVP_DigestUpdate(ctx, req->method, strlen(req->method) + 1);
        EVP_DigestUpdate(ctx, req->path, strlen(req->path) + 1);
        if (canonical)
            EVP_DigestUpdate(ctx, canonical, strlen(canonical));
        else if (req->len)
            EVP_DigestUpdate(ctx, req->body, req->len);
        EVP_DigestFinal_ex(ctx, md, &n);
    }
    free(canonical);
    json_decref(value);
    EVP_MD_CTX_free(ctx);
    if (n < 32)
        memset(md, 0, 32);
    ll_hex_encode(out, md, 32);
}

int ll_idempotency_begin(ll_idem_state *out_state, ll_idem_answer *out_answer, ll_core *c,
                         const ll_idem_request *req)
{
    ll_registry *r = ll_core_registry(c);
    char fp[65];

    *out_state = LL_IDEM_NEW;
    memset(out_answer, 0, sizeof(*out_answer));
    if (!r)
        return -1;
    ll_idempotency_fingerprint(fp, req);
    return ll_registry_idem_begin(out_state, out_answer, r, req->subject, req->key, fp,
                                  (long long)time(NULL) * 1000, c->cfg.idempotency_ttl * 1000LL);
}

int ll_idempotency_finish(ll_core *c, const char *subject, const char *key,
                          const ll_idem_answer *answer)
{
    ll_registry *r = ll_core_registry(c);
    if (!r)
        return -1;
    return ll_registry_idem_finish(r, subject, key, answer);
}

int ll_idempotency_release(ll_core *c, const char *subject, const char *key)
{
    ll_registry *r = ll_core_registry(c);
    if (!r)
        return -1;
    return ll_registry_idem_release(r, subject, key);
}

/* --- tiers -------------------------------------------------------------------------------- */

static const char *const tier_fields[] = {"template", "description", "deployment_model", NULL};

static int check_tier_name(const char *name)
{
    if (ll_validate_label(name, 63, "name") < 0)
        return LL_EINVALID;
    return 0;
}

/* The template: text without NUL, no "${" (Flux would substitute it in
 * every tenant file), at least one {TENANT_ID}, it renders into valid
 * objects for a sample tenant, and it meets the tier policy (kinds,
 * namespaces, core YAML: 422 tier-policy naming the rule).  *out_model is
 * the deployment model the catalogue will read off it. */
static int check_template(ll_deployment_model *out_model, ll_core *c, const json_t *tmpl,
                          const char *name)
{
    const char *text = json_string_value(tmpl), *root = c->cfg.git_root;
    size_t len = json_string_length(tmpl);
    char *rendered = NULL, path[512];
    size_t rlen = 0;
    json_t *files, *locked = NULL;
    ll_tier_catalogue *cat, *current;
    const ll_tier *tier;
    int error;

    if (!text)
        return ll_core_field_error("template", "template is required: the tier's YAML text");
    if (len > TEMPLATE_MAX)
        return ll_core_field_error("template", "template is %zu bytes; at most %d are allowed", len,
                                   TEMPLATE_MAX);
    if (strlen(text) != len)
        return ll_core_field_error("template", "template holds a NUL character");
    if (strstr(text, "${")) {
        ll_core_field_error("template", "template holds '${', which Flux's postBuild "
                                        "substitution would expand in every tenant's file");
        ll_error_hint("write the value out, or escape it as $${ if Flux should see ${");
        return LL_EINVALID;
    }
    if (!strstr(text, "{TENANT_ID}")) {
        ll_core_field_error("template", "template never uses {TENANT_ID}: every tenant would get "
                                        "the same objects");
        ll_error_hint("name the tenant's objects after {TENANT_ID}");
        return LL_EINVALID;
    }
    ll_render_input in = {"sample-tenant", name, "0.0", NULL, NULL};
    if ((error = ll_template_render(&rendered, &rlen, text, len, &in)) < 0) {
        ll_error_field("template");
        ll_error_kind("render-failed");
        return error;
    }
    free(rendered);
    /* The pools a HelmRelease may target: those of the repository now. */
    current = ll_gitops_tiers(c->git);
    ll_tier_policy policy = ll_tiers_policy(current, c->cfg.tier_kinds, c->cfg.flux_namespace);
    if ((error = ll_template_check_policy(NULL, text, len, &policy)) < 0 ||
        (error = ll_template_locked_values(&locked, text, len, policy.pools, policy.n_pools)) < 0) {
        ll_tier_catalogue_unref(current);
        ll_error_field("template");
        return error;
    }
    json_decref(locked);
    ll_tier_template_path(path, sizeof(path), root, name);
    files = json_object();
    json_object_set_new(files, path, json_stringn(text, len));
    cat = ll_tiers_build(files, root, &policy);
    ll_tier_catalogue_unref(current);
    json_decref(files);
    if (!cat)
        return -1;
    if (!(tier = ll_tiers_find(cat, name))) {
        ll_tier_catalogue_unref(cat);
        ll_core_field_error("template", "template does not render for a sample tenant");
        ll_error_kind("render-failed");
        return LL_EINVALID;
    }
    *out_model = tier->model;
    ll_tier_catalogue_unref(cat);
    return 0;
}

static int check_description(const json_t *v)
{
    const char *d = json_string_value(v);
    if (!v)
        return 0;
    if (!d)
        return ll_core_field_error("description", "description must be a string");
    if (json_string_length(v) > DESCRIPTION_MAX)
        return ll_core_field_error("description", "description is longer than %d bytes",
                                   DESCRIPTION_MAX);
    for (size_t i = 0; i < json_string_length(v); i++) {
        unsigned char ch = (unsigned char)d[i];
        if (ch < 0x20 || ch == 0x7f)
            return ll_core_field_error("description",
                                       "description holds a control character (one line of text)");
    }
    return 0;
}

/* The tier's current version, for If-Match; "" when it does not exist. */
static void current_etag(char out[LL_ETAG_MAX], ll_core *c, ll_registry *r, const char *name)
{
    ll_tier_catalogue *tiers = ll_gitops_tiers(c->git);
    const ll_tier *t = ll_tiers_find(tiers, name);
    ll_tier_note *notes = NULL;
    size_t n = 0;
    out[0] = '\0';
    if (t && ll_registry_tier_info(&notes, &n, r) == 0)
        ll_core_tier_etag(out, t, ll_tier_note_of(notes, n, name));
    ll_registry_tier_notes_free(notes, n);
    ll_tier_catalogue_unref(tiers);
}

static int preconditions(const char *etag, const char *if_match, const char *if_none_match,
                         const char *name)
{
    if (if_none_match && (strcmp(if_none_match, "*") == 0 ? etag[0] != '\0'
                                                          : ll_etag_matches(if_none_match, etag))) {
        ll_error_set(LL_EPRECONDITION, "tier '%s' exists (If-None-Match)", name);
        return LL_EPRECONDITION;
    }
    if (if_match && (!etag[0] || !ll_etag_matches(if_match, etag))) {
        if (!etag[0])
            ll_error_set(LL_EPRECONDITION, "tier '%s' does not exist (If-Match)", name);
        else
            ll_error_set(LL_EPRECONDITION, "tier '%s' has changed: it is at version %s", name,
                         etag);
        ll_error_hint("read it again (GET /api/v1/tiers/%s) and send its ETag in If-Match", name);
        return LL_EPRECONDITION;
    }
    return 0;
}

int ll_tier_put(long long *out_op, int *out_created, ll_core *c, const char *name,
                const json_t *body, const char *if_match, const char *if_none_match)
{
    ll_registry *r = ll_core_registry(c);
    const json_t *tmpl, *desc, *model;
    char etag[LL_ETAG_MAX], *payload = NULL;
    const char *derived;
    ll_deployment_model model_read = LL_MODEL_CUSTOM;
    ll_author_buf author_buf;
    ll_registry_author author = ll_core_author(c, &author_buf);
    const char *key;
    json_t *v, *p = NULL;
    int error;

    *out_op = 0;
    *out_created = 0;
    if (!r)
        return -1;
    if ((error = check_tier_name(name)) < 0)
        return error;
    if (!json_is_object(body))
        return ll_core_field_error("", "the body must be a JSON object");
    json_object_foreach((json_t *)body, key, v)
    {
        int known = 0;
        for (const char *const *f = tier_fields; *f; f++)
            known |= strcmp(*f, key) == 0;
        if (!known) {
            ll_core_field_error(key, "unknown field '%.64s'", key);
            ll_error_hint("a tier takes template, description and deployment_model");
            return LL_EINVALID;
        }
    }
    tmpl = json_object_get(body, "template");
    desc = json_object_get(body, "description");
    model = json_object_get(body, "deployment_model");
    if (tmpl && !json_is_string(tmpl))
        return ll_core_field_error("template", "template must be a string");
    if ((error = check_description(desc)) < 0)
        return error;
    if (model && !json_is_string(model))
        return ll_core_field_error("deployment_model", "deployment_model must be a string");
    if ((error = check_template(&model_read, c, tmpl, name)) < 0)
        return error;
    derived = ll_deployment_model_name(model_read);
    if (model && strcmp(json_string_value(model), derived) != 0) {
        ll_core_field_error("deployment_model",
                            "the template deploys tenants %s, not %.16s (the model is read off "
                            "which apps the template enables per tenant)",
                            derived, json_string_value(model));
        ll_error_hint("send deployment_model %s, or leave it out", derived);
        return LL_EINVALID;
    }
    current_etag(etag, c, r, name);
    if ((error = preconditions(etag, if_match, if_none_match, name)) < 0)
        return error;
    p = json_pack("{s:O, s:s, s:b, s:s}", "template", tmpl, "description",
                  desc ? json_string_value(desc) : "", "replace", etag[0] != '\0',
                  "deployment_model", derived);
    if (!p || !(payload = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS))) {
        json_decref(p);
        return ll_error_set(-1, "cannot encode the operation");
    }
    error = ll_registry_tier_op(out_op, r, "tier_put", name, payload, &author);
    json_decref(p);
    free(payload);
    if (error < 0)
        return error;
    *out_created = etag[0] == '\0';
    ll_log_info("msg=\"tier change queued\" tier=%s op=%lld", name, *out_op);
    ll_gitops_notify(c->git);
    return 0;
}

int ll_tier_delete(long long *out_op, ll_core *c, const char *name, const char *if_match)
{
    ll_registry *r = ll_core_registry(c);
    char etag[LL_ETAG_MAX];
    ll_author_buf author_buf;
    ll_registry_author author = ll_core_author(c, &author_buf);
    int error;

    *out_op = 0;
    if (!r)
        return -1;
    if (ll_validate_label(name, 63, "name") < 0)
        return ll_error_set(LL_ENOTFOUND, "no tier '%.64s'", name);
    current_etag(etag, c, r, name);
    if (!etag[0])
        return ll_error_set(LL_ENOTFOUND, "no tier '%.64s'", name);
    if ((error = preconditions(etag, if_match, NULL, name)) < 0)
        return error;
    if ((error = ll_registry_tier_op(out_op, r, "tier_delete", name, "{}", &author)) < 0)
        return error;
    ll_log_info("msg=\"tier removal queued\" tier=%s op=%lld", name, *out_op);
    ll_gitops_notify(c->git);
    return 0;
}

int ll_tier_outcome(json_t **out, int *pending, ll_core *c, long long op, const char *name)
{
    ll_registry *r = ll_core_registry(c);
    ll_operation rec;
    int error;

    *out = NULL;
    *pending = 0;
    if (!r)
        return -1;
    if ((error = ll_registry_op_get(&rec, r, op)) < 0)
        return error;
    if (rec.state == LL_OP_QUEUED) {
        *pending = 1;
        *out = ll_core_operation_json(&rec);
        ll_operation_clear(&rec);
        return *out ? 0 : ll_error_set(-1, "out of memory");
    }
    if (rec.state == LL_OP_FAILED) {
        const char *why = rec.error;
        if (rec.failure == LL_OP_FAILURE_CONFLICT)
            error = ll_error_set(LL_ECONFLICT, "%s", why ? why : "conflict in the repository");
        else {
            error = ll_error_set(LL_EUPSTREAM, "%s", why ? why : "push failed");
            ll_error_hint("check the GitOps remote; /readyz shows its state");
        }
        ll_operation_clear(&rec);
        return error;
    }
    ll_operation_clear(&rec);
    error = ll_tier_get(out, c, name);
    if (error == LL_ENOTFOUND) {
        *out = NULL; /* deleted */
        return 0;
    }
    return error;
}

/* --- a tenant's history, from git --------------------------------------------------------- */

static void rfc3339(char out[32], git_time_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

static json_t *signature(const git_signature *s)
{
    char at[32];
    rfc3339(at, s->when.time);
    return json_pack("{s:s, s:s, s:s}", "name", s->name ? s->name : "", "email",
                     s->email ? s->email : "", "at", at);
}

/* The oid of the entry at path in tree, or NULL (borrowed from *e). */
static const git_oid *entry_id(git_tree_entry **e, git_tree *tree, const char *path)
{
    *e = NULL;
    if (!tree || git_tree_entry_bypath(e, tree, path) < 0)
        return NULL;
    return git_tree_entry_id(*e);
}

static int same_oid(const git_oid *a, const git_oid *b)
{
    return (!a && !b) || (a && b && git_oid_equal(a, b));
}

/* Adds to changes the tenant files (flat or sharded, in any tier folder)
 * that differ between tree and parent. */
static void tenant_changes(json_t *changes, git_tree *tree, git_tree *parent, const char *root,
                           const char *id)
{
    char base[600], path[1200];
    git_tree_entry *a = NULL, *b = NULL;
    git_tree *dirs[2] = {NULL, NULL};
    git_repository *repo = git_tree_owner(tree ? tree : parent);
    json_t *tiers = json_object();
    const char *tier;
    json_t *unused;
    const git_oid *oa, *ob;

    snprintf(base, sizeof(base), "%s/tenants", root);
    oa = entry_id(&a, tree, base);
    ob = entry_id(&b, parent, base);
    if (same_oid(oa, ob))
        goto done;
    if (oa)
        git_tree_lookup(&dirs[0], repo, oa);
    if (ob)
        git_tree_lookup(&dirs[1], repo, ob);
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; dirs[k] && i < git_tree_entrycount(dirs[k]); i++) {
            const git_tree_entry *e = git_tree_entry_byindex(dirs[k], i);
            if (git_tree_entry_type(e) == GIT_OBJECT_TREE)
                json_object_set_new(tiers, git_tree_entry_name(e), json_true());
        }
    }
    json_object_foreach(tiers, tier, unused)
    {
        git_tree_entry *ta = NULL, *tb = NULL;
        snprintf(path, sizeof(path), "%s/%s", base, tier);
        int same = same_oid(entry_id(&ta, tree, path), entry_id(&tb, parent, path));
        git_tree_entry_free(ta);
        git_tree_entry_free(tb);
        if (same)
            continue;
        for (int sharded = 0; sharded < 2; sharded++) {
            git_tree_entry *fa = NULL, *fb = NULL;
            ll_tenant_file_path(path, sizeof(path), root, sharded, tier, id);
            const git_oid *x = entry_id(&fa, tree, path), *y = entry_id(&fb, parent, path);
            if (!same_oid(x, y))
                json_array_append_new(changes, json_pack("{s:s, s:s}", "path", path, "change",
                                                         !y   ? "added"
                                                         : !x ? "removed"
                                                              : "modified"));
            git_tree_entry_free(fa);
            git_tree_entry_free(fb);
        }
    }
done:
    json_decref(tiers);
    git_tree_free(dirs[0]);
    git_tree_free(dirs[1]);
    git_tree_entry_free(a);
    git_tree_entry_free(b);
}

/* The operation ids of a Landlord-Operations: trailer. */
static json_t *trailer_ops(const char *message)
{
    json_t *ops = json_array();
    const char *t = message ? strstr(message, "\nLandlord-Operations:") : NULL;
    if (t) {
        t += strlen("\nLandlord-Operations:");
        while (*t && *t != '\n') {
            char *end;
            long long v = strtoll(t, &end, 10);
            if (end == t) {
                t++;
                continue;
            }
            json_array_append_new(ops, json_integer(v));
            t = end;
        }
    }
    return ops;
}

/* Appends commit oid to items when it changed tenant id's files. */
static void history_item(json_t *items, git_repository *repo, const git_oid *oid, const char *root,
                         const char *id)
{
    git_commit *commit = NULL, *parent = NULL;
    git_tree *tree = NULL, *ptree = NULL;
    json_t *changes = json_array();
    char sha[GIT_OID_HEXSZ + 1];

    git_oid_tostr(sha, sizeof(sha), oid);
    if (git_commit_lookup(&commit, repo, oid) < 0 || git_commit_tree(&tree, commit) < 0)
        goto done;
    if (git_commit_parentcount(commit) > 0 && git_commit_parent(&parent, commit, 0) == 0)
        git_commit_tree(&ptree, parent);
    tenant_changes(changes, tree, ptree, root, id);
    if (json_array_size(changes) > 0) {
        const char *msg = git_commit_message(commit);
        json_array_append_new(items,
                              json_pack("{s:s, s:s%, s:o, s:o, s:O, s:o}", "sha", sha, "message",
                                        msg ? msg : "", msg ? strcspn(msg, "\n") : 0, "author",
                                        signature(git_commit_author(commit)), "committer",
                                        signature(git_commit_committer(commit)), "changes", changes,
                                        "operations", trailer_ops(msg)));
    }
done:
    json_decref(changes);
    git_tree_free(tree);
    git_tree_free(ptree);
    git_commit_free(parent);
    git_commit_free(commit);
}

int ll_tenant_history(json_t **out, ll_core *c, const char *id, const char *cursor, int limit)
{
    ll_registry *r = ll_core_registry(c);
    git_repository *repo = NULL;
    git_revwalk *walk = NULL;
    json_t *items = json_array();
    ll_tenant_record t = {0};
    char ref[400], next[GIT_OID_HEXSZ + 1] = "";
    git_oid oid;
    int error = 0, scanned = 0;

    *out = NULL;
    if (!r) {
        error = -1;
        goto done;
    }
    if (ll_validate_label(id, 253, "id") < 0 || ll_registry_tenant_get(&t, r, id, 0) < 0) {
        error = ll_error_set(LL_ENOTFOUND, "no tenant '%.64s'", id);
        goto done;
    }
    if (cursor && (strlen(cursor) != GIT_OID_HEXSZ || git_oid_fromstr(&oid, cursor) < 0)) {
        error = ll_core_field_error("cursor", "cursor is not one this server gave out");
        goto done;
    }
    snprintf(ref, sizeof(ref), "refs/remotes/origin/%s", c->cfg.git_branch);
    if (git_repository_open_bare(&repo, c->work_path) < 0 || git_revwalk_new(&walk, repo) < 0) {
        error = ll_error_set(-1, "git: cannot open landlord's clone");
        goto done;
    }
    git_revwalk_simplify_first_parent(walk);
    if ((cursor ? git_revwalk_push(walk, &oid) : git_revwalk_push_ref(walk, ref)) < 0) {
        if (cursor)
            error = ll_core_field_error("cursor", "cursor is not one this server gave out");
        goto done; /* an empty branch has no history */
    }
    while (git_revwalk_next(&oid, walk) == 0) {
        if ((int)json_array_size(items) == limit || scanned == HISTORY_SCAN) {
            git_oid_tostr(next, sizeof(next), &oid);
            break;
        }
        scanned++;
        history_item(items, repo, &oid, c->cfg.git_root, id);
    }
done:
    if (error == 0)
        *out = json_pack("{s:O, s:o}", "items", items, "next_cursor",
                         next[0] ? json_string(next) : json_null());
    json_decref(items);
    ll_tenant_record_clear(&t);
    git_revwalk_free(walk);
    git_repository_free(repo);
    return error;
}

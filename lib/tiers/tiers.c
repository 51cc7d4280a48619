/* tiers.c - the tier catalogue, derived from the repository's files.
 *
 * Nothing about tiers is hard-coded: a tier is a template file, its
 * deployment model is read off what its template enables per tenant, and the
 * pool environments are what pooled-envs/kustomization.yaml lists.  The
 * catalogue is built once per new head by the git writer and then shared,
 * read-only, between threads: typed records (tiers.h) held by an atomic
 * reference count, freed by whoever gives the last reference back.
 *
 * Building parses input: the rendered sample of each template and the pool
 * environments' files are read as JSON documents (ll_yaml_load_json), and
 * what they say is copied into the records; nothing outside this file
 * reads the catalogue by string key.
 *
 * Each tier is judged against the template policy (ll_template_check_policy)
 * when the catalogue is built: a tier that breaks it stays in the catalogue
 * (so GET and /readyz can say why) but is not usable (ll_tiers_usable):
 * nothing is rendered from it until its template is fixed.  The values its
 * template derives from the tenant's identity (ll_template_locked_values)
 * are kept with it, for ll_tiers_check_values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/kustomize.h"
#include "landlord/log.h"
#include "landlord/template.h"
#include "landlord/tiers.h"
#include "landlord/validate.h"

#define SUFFIX "_tenant_template.yaml"

/* --- deployment models -------------------------------------------------------------------- */

static const char *const model_names[] = {
    [LL_MODEL_SILOED] = "siloed",
    [LL_MODEL_POOLED] = "pooled",
    [LL_MODEL_HYBRID] = "hybrid",
    [LL_MODEL_CUSTOM] = "custom",
};

const char *ll_deployment_model_name(ll_deployment_model model)
{
    if ((unsigned)model >= sizeof(model_names) / sizeof(model_names[0]))
        return "custom";
    return model_names[model];
}

int ll_deployment_model_parse(ll_deployment_model *out, const char *text)
{
    for (size_t i = 0; text && i < sizeof(model_names) / sizeof(model_names[0]); i++) {
        if (strcmp(model_names[i], text) == 0) {
            *out = (ll_deployment_model)i;
            return 0;
        }
    }
    return ll_error_set(LL_EINVALID, "unknown deployment model '%.32s'", text ? text : "");
}

/* --- lists of names ------------------------------------------------------------------------- */

static int has_name(char *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], name) == 0)
            return 1;
    }
    return 0;
}

/* Appends a copy of the len bytes of name to *v (*n long); -1 out of memory. */
static int add_name(char ***v, size_t *n, const char *name, size_t len)
{
    char **grown = realloc(*v, (*n + 1) * sizeof(**v));
    if (!grown)
        return -1;
    *v = grown;
    if (!(grown[*n] = strndup(name, len)))
        return -1;
    (*n)++;
    return 0;
}

/* A NUL-terminated copy of the len bytes at text (which may hold NULs). */
static char *copy_bytes(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, text, len);
        copy[len] = '\0';
    }
    return copy;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* --- building --------------------------------------------------------------------------------- */

#define HELM_GROUP "helm.toolkit.fluxcd.io/"

/* Reads apps.<name>.enabled and envId of every HelmRelease in a rendered
 * sample: the tier's deployment model and the pools its apps use. */
static int describe(ll_tier *tier, const json_t *docs)
{
    size_t i, enabled = 0, pooled = 0;
    json_t *doc;

    json_array_foreach(docs, i, doc)
    {
        const char *kind = json_string_value(json_object_get(doc, "kind"));
        json_t *apps =
            json_object_get(json_object_get(json_object_get(doc, "spec"), "values"), "apps");
        const char *name, *api = json_string_value(json_object_get(doc, "apiVersion"));
        json_t *app;
        if (!kind || strcmp(kind, "HelmRelease") != 0)
            continue;
        if (!tier->helm_version[0] && api && strncmp(api, HELM_GROUP, sizeof(HELM_GROUP) - 1) == 0)
            snprintf(tier->helm_version, sizeof(tier->helm_version), "%s",
                     api + sizeof(HELM_GROUP) - 1);
        if (!json_is_object(apps))
            continue;
        json_object_foreach(apps, name, app)
        {
            json_t *on = json_object_get(app, "enabled");
            const char *env = json_string_value(json_object_get(app, "envId"));
            if (json_is_true(on)) {
                enabled++;
                continue;
            }
            pooled++;
            if (env && !has_name(tier->pools, tier->n_pools, env) &&
                add_name(&tier->pools, &tier->n_pools, env, strlen(env)) < 0)
                return -1;
        }
    }
    if (enabled && pooled)
        tier->model = LL_MODEL_HYBRID;
    else if (enabled)
        tier->model = LL_MODEL_SILOED;
    else if (pooled)
        tier->model = LL_MODEL_POOLED;
    else
        tier->model = LL_MODEL_CUSTOM;
    return 0;
}

/* Adds the pool environments pooled-envs/kustomization.yaml lists. */
static int read_pools(ll_tier_catalogue *cat, const char *path, const json_t *content)
{
    json_t *list = NULL, *entry;
    size_t i;
    int error = 0;

    if (ll_kustomize_resources(&list, json_string_value(content), json_string_length(content)) <
        0) {
        ll_log_warn("msg=\"cannot read pool environments\" path=%s error=\"%s\"", path,
                    ll_error_last()->message);
        return 0;
    }
    json_array_foreach(list, i, entry)
    {
        const char *e = json_string_value(entry);
        size_t el = strlen(e);
        if (el > 5 && strcmp(e + el - 5, ".yaml") == 0)
            el -= 5;
        if ((error = add_name(&cat->pools, &cat->n_pools, e, el)) < 0)
            break;
    }
    json_decref(list);
    return error;
}

/* The policy verdict and the locked values of a tier's template. */
static int judge(ll_tier *tier, const char *text, size_t len, const ll_tier_policy *policy)
{
    const char *rule = NULL;
    json_t *locked = NULL;

    if (ll_template_check_policy(&rule, text, len, policy) < 0 ||
        ll_template_locked_values(&locked, text, len, policy->pools, policy->n_pools) < 0) {
        ll_log_warn("msg=\"tier template breaks the tier policy; its tenants are not rendered\" "
                    "tier=%s rule=%s error=\"%s\"",
                    tier->name, rule ? rule : "template", ll_error_last()->message);
        tier->policy.violated = 1;
        tier->policy.rule = strdup(rule ? rule : "template");
        tier->policy.error = strdup(ll_error_last()->message);
        if (!tier->policy.rule || !tier->policy.error)
            return -1;
        locked = json_array();
    }
    tier->locked_values = locked;
    return locked ? 0 : -1;
}

static void tier_clear(ll_tier *t)
{
    free(t->name);
    free(t->template_text);
    free(t->template_path);
    free_names(t->pools, t->n_pools);
    free(t->policy.rule);
    free(t->policy.error);
    json_decref(t->locked_values);
    memset(t, 0, sizeof(*t));
}

/* The tier name of a template's path, into name[cap]; 0 when path is not
 * a tier template. */
static int tier_name_of(char *name, size_t cap, const char *path, const char *prefix)
{
    size_t plen = strlen(prefix), n = strlen(path), slen = sizeof(SUFFIX) - 1;

    if (strncmp(path, prefix, plen) != 0 || n < plen + sizeof(SUFFIX) ||
        strcmp(path + n - slen, SUFFIX) != 0 || n - plen - slen >= cap)
        return 0;
    memcpy(name, path + plen, n - plen - slen);
    name[n - plen - slen] = '\0';
    return 1;
}

/* Adds the tier whose template text (len bytes) is at path to cat, when it
 * renders for a sample tenant.  0, or -1 out of memory. */
static int add_tier(ll_tier_catalogue *cat, const char *name, const char *path, const char *text,
                    size_t len, const ll_tier_policy *policy)
{
    char *rendered = NULL;
    size_t rlen;
    json_t *docs = NULL;
    ll_tier t = {0}, *grown;
    int error = -1;

    ll_render_input in = {"sample-tenant", name, "0.0", NULL, NULL};
    if (ll_template_render(&rendered, &rlen, text, len, &in) < 0 ||
        ll_yaml_load_json(&docs, rendered, rlen) < 0) {
        ll_log_warn("msg=\"ignoring tier whose template does not render\" tier=%s error=\"%s\"",
                    name, ll_error_last()->message);
        free(rendered);
        return 0;
    }
    t.template_len = len;
    if (!(t.name = strdup(name)) || !(t.template_path = strdup(path)) ||
        !(t.template_text = copy_bytes(text, len)) || describe(&t, docs) < 0 ||
        judge(&t, text, len, policy) < 0 ||
        !(grown = realloc(cat->tiers, (cat->n_tiers + 1) * sizeof(*grown))))
        goto done;
    cat->tiers = grown;
    cat->tiers[cat->n_tiers++] = t;
    memset(&t, 0, sizeof(t));
    error = 0;
done:
    tier_clear(&t);
    json_decref(docs);
    free(rendered);
    return error;
}

/* The chart version pool's environment file (text) asks for: that of its
 * first HelmRelease that names one.  0, or -1 out of memory. */
static int add_pool_version(ll_tier_catalogue *cat, const char *pool, const json_t *text)
{
    json_t *docs = NULL, *doc;
    ll_pool_version *grown;
    size_t k;
    int error = 0;

    if (!text || ll_tiers_pool_version(cat, pool) ||
        ll_yaml_load_json(&docs, json_string_value(text), json_string_length(text)) < 0)
        return 0;
    json_array_foreach(docs, k, doc)
    {
        const char *kind = json_string_value(json_object_get(doc, "kind"));
        const char *v = json_string_value(json_object_get(
            json_object_get(json_object_get(json_object_get(doc, "spec"), "chart"), "spec"),
            "version"));
        if (!kind || strcmp(kind, "HelmRelease") != 0 || !v)
            continue;
        if (!(grown = realloc(cat->versions, (cat->n_versions + 1) * sizeof(*grown)))) {
            error = -1;
            break;
        }
        cat->versions = grown;
        grown = &cat->versions[cat->n_versions];
        grown->pool = strdup(pool);
        grown->version = strdup(v);
        cat->n_versions++;
        if (!grown->pool || !grown->version)
            error = -1;
        break;
    }
    json_decref(docs);
    return error;
}

ll_tier_catalogue *ll_tiers_build(const json_t *files, const char *root,
                                  const ll_tier_policy *policy)
{
    ll_tier_catalogue *cat = ll_tier_catalogue_new();
    char prefix[512], kust_path[512], pool_path[700];
    const char *path;
    json_t *content;
    ll_tier_policy p = {0};

    if (!cat)
        return NULL;
    snprintf(prefix, sizeof(prefix), "%s/tier-templates/", root);
    snprintf(kust_path, sizeof(kust_path), "%s/pooled-envs/kustomization.yaml", root);
    /* The pools first: templates are judged against them. */
    if ((content = json_object_get(files, kust_path)) && read_pools(cat, kust_path, content) < 0)
        goto oom;
    if (policy)
        p = *policy;
    if (cat->n_pools > 0 || !p.pools) {
        p.pools = cat->pools;
        p.n_pools = cat->n_pools;
    }
    json_object_foreach((json_t *)files, path, content)
    {
        char name[128];
        if (!tier_name_of(name, sizeof(name), path, prefix))
            continue;
        if (ll_validate_label(name, 63, "tier") < 0) {
            ll_log_warn("msg=\"ignoring tier template with a bad name\" path=%s", path);
            continue;
        }
        if (add_tier(cat, name, path, json_string_value(content), json_string_length(content), &p) <
            0)
            goto oom;
    }
    /* The chart version each pool environment's HelmRelease asks for (what
     * a rollout moves with the first wave of a tier the pool serves). */
    for (size_t i = 0; i < cat->n_pools; i++) {
        snprintf(pool_path, sizeof(pool_path), "%s/pooled-envs/%s.yaml", root, cat->pools[i]);
        if (add_pool_version(cat, cat->pools[i], json_object_get(files, pool_path)) < 0)
            goto oom;
    }
    if (ll_tier_catalogue_index(cat) < 0)
        goto oom;
    return cat;
oom:
    ll_error_set(-1, "out of memory");
    ll_tier_catalogue_unref(cat);
    return NULL;
}

/* --- the catalogue ---------------------------------------------------------------------------- */

ll_tier_catalogue *ll_tier_catalogue_new(void)
{
    ll_tier_catalogue *cat = calloc(1, sizeof(*cat));
    if (cat)
        cat->refs = 1;
    return cat;
}

static int by_name_cmp(const void *a, const void *b)
{
    return strcmp((*(const ll_tier *const *)a)->name, (*(const ll_tier *const *)b)->name);
}

int ll_tier_catalogue_index(ll_tier_catalogue *cat)
{
    const ll_tier **index = malloc((cat->n_tiers ? cat->n_tiers : 1) * sizeof(*index));

    if (!index)
        return ll_error_set(-1, "out of memory");
    for (size_t i = 0; i < cat->n_tiers; i++)
        index[i] = &cat->tiers[i];
    qsort(index, cat->n_tiers, sizeof(*index), by_name_cmp);
    free((void *)cat->by_name);
    cat->by_name = index;
    return 0;
}

ll_tier_catalogue *ll_tier_catalogue_ref(ll_tier_catalogue *cat)
{
    if (cat)
        __atomic_add_fetch(&cat->refs, 1, __ATOMIC_RELAXED);
    return cat;
}

void ll_tier_catalogue_unref(ll_tier_catalogue *cat)
{
    if (!cat || __atomic_sub_fetch(&cat->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (size_t i = 0; i < cat->n_tiers; i++)
        tier_clear(&cat->tiers[i]);
    free(cat->tiers);
    free((void *)cat->by_name);
    free_names(cat->pools, cat->n_pools);
    for (size_t i = 0; i < cat->n_versions; i++) {
        free(cat->versions[i].pool);
        free(cat->versions[i].version);
    }
    free(cat->versions);
    free(cat);
}

const ll_tier *ll_tiers_find(const ll_tier_catalogue *cat, const char *name)
{
    size_t lo = 0, hi;

    if (!cat || !name || !cat->by_name)
        return NULL;
    for (hi = cat->n_tiers; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        const ll_tier *t = cat->by_name[mid];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int ll_tiers_usable(const ll_tier *tier)
{
    const char *name = tier && tier->name ? tier->name : "?";

    if (!tier || !tier->policy.violated)
        return 0;
    ll_error_set(LL_ECONFLICT,
                 "tier '%s' breaks the tier policy (%s), so its tenants are not rendered until "
                 "its template is fixed: %s",
                 name, tier->policy.rule ? tier->policy.rule : "?",
                 tier->policy.error ? tier->policy.error : "");
    ll_error_field("tier");
    ll_error_hint("fix the template with PUT /api/v1/tiers/%s; GET /api/v1/tiers/%s and /readyz "
                  "show what is wrong",
                  name, name);
    return LL_ECONFLICT;
}

int ll_tiers_check_values(const ll_tier *tier, const json_t *values)
{
    return ll_template_check_values(tier ? tier->locked_values : NULL, values);
}

int ll_tier_uses_pool(const ll_tier *tier, const char *pool)
{
    return tier && pool && has_name(tier->pools, tier->n_pools, pool);
}

int ll_tiers_is_pool(const ll_tier_catalogue *cat, const char *name)
{
    return cat && name && has_name(cat->pools, cat->n_pools, name);
}

const char *ll_tiers_pool_version(const ll_tier_catalogue *cat, const char *pool)
{
    for (size_t i = 0; cat && pool && i < cat->n_versions; i++) {
        if (strcmp(cat->versions[i].pool, pool) == 0)
            return cat->versions[i].version;
    }
    return NULL;
}

ll_tier_policy ll_tiers_policy(const ll_tier_catalogue *cat, const char *kinds,
                               const char *flux_namespace)
{
    ll_tier_policy p = {kinds, flux_namespace, cat ? cat->pools : NULL, cat ? cat->n_pools : 0};
    return p;
}

void ll_tier_template_path(char *out, size_t cap, const char *root, const char *tier)
{
    snprintf(out, cap, "%s/tier-templates/%s_tenant_template.yaml", root, tier);
}

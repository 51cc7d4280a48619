/* template_locked.c - the chart values a tier derives from the tenant.
 *
 * ll_template_locked_values() reads off, from the template with sample
 * values substituted (template_int.h), which chart values of its
 * HelmReleases the template derives from the tenant's identity ({TENANT_ID},
 * {TIER}, {ENVIRONMENT_ID}) or placement (its namespaces, release names,
 * the pool environments), plus the paths a HelmRelease's
 * landlord.dev/locked-values annotation names: JSON pointers, sorted.  A
 * key that places one of several sibling mappings places every one of
 * them.  ll_template_check_values() then keeps a tenant's values away from
 * those pointers (setting one, or replacing a mapping above one).
 *
 * Pure: no state beyond the call; reentrant.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/template.h"
#include "base/yamltext.h"
#include "template_int.h"

/* ---- values derived from the tenant's identity --------------------------- */

/* Extra locked paths a HelmRelease of a tier names, comma-separated. */
#define LOCKED_ANNOTATION "landlord.dev/locked-values"
#define POINTER_MAX       512

typedef struct lock_ctx {
    ll_tpl_sample *s;
    yaml_document_t *doc;
    json_t *names;  /* object: the names that place the tenant (namespaces, release names) */
    json_t *locked; /* object: pointer -> true */
    size_t budget;  /* nodes still allowed to be visited (aliases) */
} lock_ctx;

static int lock(lock_ctx *c, const char *pointer)
{
    return json_object_set_new(c->locked, pointer, json_true()) < 0
               ? ll_error_set(LL_ERROR, "out of memory")
               : 0;
}

/* prefix + "/" + key, with '~' and '/' escaped (RFC 6901): a new string. */
static char *pointer_child(const char *prefix, const char *key)
{
    size_t n = strlen(prefix), k = strlen(key), i, o;
    char *out = malloc(n + 2 * k + 2);

    if (!out)
        return NULL;
    memcpy(out, prefix, n);
    o = n;
    out[o++] = '/';
    for (i = 0; i < k; i++) {
        if (key[i] == '~' || key[i] == '/') {
            out[o++] = '~';
            out[o++] = key[i] == '~' ? '0' : '1';
        } else {
            out[o++] = key[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* A scalar holding {TENANT_ID}, {TIER} or {ENVIRONMENT_ID}, or naming where
 * the tenant is placed. */
static int derived(lock_ctx *c, const yaml_node_t *n)
{
    const char *v = ll_tpl_scalar(n);
    if (ll_tpl_mask(c->s, n) & PH_IDENTITY)
        return 1;
    return v && *v && json_object_get(c->names, v) != NULL;
}

static int visit(lock_ctx *c, int depth)
{
    if (depth > LL_YAML_DEPTH_MAX)
        return ll_error_set(LL_EINVALID, "tier template: values nested more than %d levels deep",
                            LL_YAML_DEPTH_MAX);
    if (c->budget == 0)
        return ll_error_set(LL_EINVALID, "tier template: yaml aliases expand to too many nodes");
    c->budget--;
    return 0;
}

/* 1 when a scalar under n is derived, 0 when none is, or an error. */
static int any_derived(lock_ctx *c, yaml_node_t *n, int depth)
{
    yaml_node_item_t *it;
    yaml_node_pair_t *pair;
    int error, found = 0;

    if ((error = visit(c, depth)) < 0)
        return error;
    if (n->type == YAML_SCALAR_NODE)
        return derived(c, n);
    if (n->type == YAML_SEQUENCE_NODE) {
        for (it = n->data.sequence.items.start; !found && it < n->data.sequence.items.top; it++) {
            yaml_node_t *item = ll_ytext_node(c->doc, *it);
            if (item && (found = any_derived(c, item, depth + 1)) < 0)
                return found;
        }
    } else if (n->type == YAML_MAPPING_NODE) {
        for (pair = n->data.mapping.pairs.start; !found && pair < n->data.mapping.pairs.top;
             pair++) {
            yaml_node_t *value = ll_ytext_node(c->doc, pair->value);
            if (value && (found = any_derived(c, value, depth + 1)) < 0)
                return found;
        }
    }
    return found;
}

/* Locks the derived values under mapping map (at pointer path).  *direct
 * gets the keys of map whose own values were locked (a new object). */
static int walk(json_t **direct, lock_ctx *c, yaml_node_t *map, const char *path, int depth)
{
    json_t *mine = json_object(), *below = json_object(), *all = json_object(), *sub = NULL, *v;
    yaml_node_pair_t *pair;
    const char *k, *leaf;
    char *child = NULL, *grand = NULL;
    int error = 0, hit;

    *direct = NULL;
    if (!mine || !below || !all) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    if ((error = visit(c, depth)) < 0)
        goto done;
    for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = ll_ytext_node(c->doc, pair->key);
        yaml_node_t *value = ll_ytext_node(c->doc, pair->value);
        if (!(k = ll_tpl_scalar(key)) || !value)
            continue;
        if (!(child = pointer_child(path, k))) {
            error = ll_error_set(LL_ERROR, "out of memory");
            goto done;
        }
        if (value->type == YAML_MAPPING_NODE) {
            if ((error = walk(&sub, c, value, child, depth + 1)) < 0)
                goto done;
            json_object_set_new(below, k, sub);
            sub = NULL;
        } else {
            /* A scalar, or a sequence (which a tenant's values replace
             * whole) holding a derived scalar. */
            if ((hit = any_derived(c, value, depth + 1)) < 0) {
                error = hit;
                goto done;
            }
            if (hit && (error = lock(c, child)) < 0)
                goto done;
            if (hit && json_object_set_new(mine, k, json_true()) < 0) {
                error = ll_error_set(LL_ERROR, "out of memory");
                goto done;
            }
        }
        free(child);
        child = NULL;
    }
    /* A key that places one of several sibling mappings (apps.producer.envId)
     * places every one of them (apps.consumer.envId). */
    json_object_foreach(below, k, sub)
    {
        json_object_foreach(sub, leaf, v) json_object_set(all, leaf, json_true());
    }
    sub = NULL;
    json_object_foreach(below, k, v)
    {
        json_t *unused;
        json_object_foreach(all, leaf, unused)
        {
            free(child);
            free(grand);
            grand = NULL;
            if (!(child = pointer_child(path, k)) || !(grand = pointer_child(child, leaf))) {
                error = ll_error_set(LL_ERROR, "out of memory");
                goto done;
            }
            if ((error = lock(c, grand)) < 0)
                goto done;
        }
    }
    *direct = mine;
    mine = NULL;

done:
    free(child);
    free(grand);
    json_decref(sub);
    json_decref(mine);
    json_decref(below);
    json_decref(all);
    return error;
}

/* Checks a JSON pointer's syntax: "/" then segments, "~" only as ~0 or ~1. */
static int pointer_ok(const char *p, size_t n)
{
    if (n == 0 || n > POINTER_MAX || p[0] != '/')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)p[i] < 0x21 || p[i] == ',')
            return 0;
        if (p[i] == '~' && (i + 1 == n || (p[i + 1] != '0' && p[i + 1] != '1')))
            return 0;
    }
    return 1;
}

/* The paths the annotation of a HelmRelease names. */
static int lock_annotated(lock_ctx *c, yaml_node_t *root, size_t docno)
{
    yaml_node_t *meta = ll_tpl_get(c->doc, root, "metadata");
    const char *list = ll_tpl_scalar(
        ll_tpl_get(c->doc, ll_tpl_get(c->doc, meta, "annotations"), LOCKED_ANNOTATION));
    char one[POINTER_MAX + 1], bad[64];
    size_t n;
    int error;

    while (list && *list) {
        list += strspn(list, " \t\r\n,");
        n = strcspn(list, " \t\r\n,");
        if (!n)
            break;
        if (!pointer_ok(list, n)) {
            memcpy(bad, list, n < 63 ? n : 63);
            bad[n < 63 ? n : 63] = '\0';
            ll_tpl_shown(bad, bad);
            ll_error_set(LL_EINVALID,
                         "tier template: document %zu: annotation %s holds '%s', not a JSON "
                         "pointer into the values (like /apps/producer/enabled)",
                         docno, LOCKED_ANNOTATION, bad);
            return LL_EINVALID;
        }
        memcpy(one, list, n);
        one[n] = '\0';
        if ((error = lock(c, one)) < 0)
            return error;
        list += n;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Where the template places the tenant, into c->names: the pool
 * environments, its namespaces, the namespaces and names of its
 * HelmReleases. */
static void collect_names(lock_ctx *c, char *const *pools, size_t n_pools)
{
    static const char *const places[] = {"targetNamespace", "storageNamespace", "releaseName"};
    const char *v;
    yaml_node_t *root, *spec;
    size_t d, i;

    for (i = 0; pools && i < n_pools; i++) {
        if (pools[i])
            json_object_set(c->names, pools[i], json_true());
    }
    for (d = 0; d < c->s->y.ndocs; d++) {
        yaml_document_t *doc = &c->s->y.docs[d];
        if (!(root = ll_ytext_root(doc)) || root->type != YAML_MAPPING_NODE)
            continue;
        if (ll_ytext_scalar_eq(ll_tpl_get(doc, root, "kind"), "Namespace", 9) &&
            (v = ll_tpl_scalar(ll_tpl_get(doc, ll_tpl_get(doc, root, "metadata"), "name"))) && *v)
            json_object_set(c->names, v, json_true());
        if (!ll_ytext_scalar_eq(ll_tpl_get(doc, root, "kind"), "HelmRelease", 11))
            continue;
        spec = ll_tpl_get(doc, root, "spec");
        for (i = 0; i < sizeof(places) / sizeof(places[0]); i++)
            if ((v = ll_tpl_scalar(ll_tpl_get(doc, spec, places[i]))) && *v)
                json_object_set(c->names, v, json_true());
    }
}

/* Locks, in every HelmRelease, the paths its annotation names and the
 * values derived from the tenant's identity or placement. */
static int lock_releases(lock_ctx *c)
{
    yaml_node_t *root, *values;
    json_t *direct = NULL;
    int error;

    for (size_t d = 0; d < c->s->y.ndocs; d++) {
        c->doc = &c->s->y.docs[d];
        c->budget = (size_t)(c->doc->nodes.top - c->doc->nodes.start) + ALIAS_BUDGET;
        if (!(root = ll_ytext_root(c->doc)) || root->type != YAML_MAPPING_NODE ||
            !ll_ytext_scalar_eq(ll_tpl_get(c->doc, root, "kind"), "HelmRelease", 11))
            continue;
        if ((error = lock_annotated(c, root, d + 1)) < 0)
            return error;
        values = ll_tpl_get(c->doc, ll_tpl_get(c->doc, root, "spec"), "values");
        if (!values || values->type != YAML_MAPPING_NODE)
            continue;
        if ((error = walk(&direct, c, values, "", 1)) < 0)
            return error;
        json_decref(direct);
        direct = NULL;
    }
    return 0;
}

/* The keys of object obj, sorted, as a new array. */
static int sorted_keys(json_t **out, const json_t *obj)
{
    size_t i = 0, n = json_object_size(obj);
    const char **keys = calloc(n ? n : 1, sizeof(*keys)), *key;
    json_t *v;

    if (!keys || !(*out = json_array())) {
        free(keys);
        return ll_error_set(LL_ERROR, "out of memory");
    }
    json_object_foreach((json_t *)obj, key, v) keys[i++] = key;
    qsort(keys, n, sizeof(*keys), cmp_str);
    for (i = 0; i < n; i++)
        json_array_append_new(*out, json_string(keys[i]));
    free(keys);
    return 0;
}

int ll_template_locked_values(json_t **out, const char *tmpl, size_t len, char *const *pools,
                              size_t n_pools)
{
    ll_tpl_sample s = {0}; /* all zero: ll_tpl_sample_free accepts it unloaded */
    lock_ctx c = {0};
    int error;

    *out = NULL;
    c.s = &s;
    c.names = json_object();
    c.locked = json_object();
    if (!c.names || !c.locked) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    if ((error = ll_tpl_sample_load(&s, tmpl, len)) < 0)
        goto done;
    collect_names(&c, pools, n_pools);
    if ((error = lock_releases(&c)) < 0)
        goto done;
    error = sorted_keys(out, c.locked);

done:
    ll_tpl_sample_free(&s);
    json_decref(c.names);
    json_decref(c.locked);
    return error;
}

/* The next segment of a JSON pointer at *p (past its '/'), unescaped into
 * seg (cap bytes); *p moves to the next '/' or the end. */
static void next_segment(char *seg, size_t cap, const char **p)
{
    const char *s = *p + 1;
    size_t o = 0;

    for (; *s && *s != '/'; s++) {
        char ch = *s;
        if (ch == '~' && (s[1] == '0' || s[1] == '1'))
            ch = *++s == '0' ? '~' : '/';
        if (o + 1 < cap)
            seg[o++] = ch;
    }
    seg[o] = '\0';
    *p = s;
}

int ll_template_check_values(const json_t *locked, const json_t *values)
{
    const char *pointer, *p;
    const json_t *v, *child;
    char *seg = NULL;
    size_t i;
    json_t *entry;
    int error = 0;

    if (!json_is_object(values))
        return 0;
    json_array_foreach(locked, i, entry)
    {
        if (!(pointer = json_string_value(entry)) || pointer[0] != '/')
            continue;
        free(seg);
        if (!(seg = malloc(strlen(pointer) + 1)))
            return ll_error_set(LL_ERROR, "out of memory");
        v = values;
        for (p = pointer; *p == '/';) {
            next_segment(seg, strlen(pointer) + 1, &p);
            if (!(child = json_object_get(v, seg)))
                break;
            if (!*p) {
                error = ll_error_set(LL_EINVALID,
                                     "values may not set %s: the tier derives it from the "
                                     "tenant's identity or placement",
                                     pointer);
                ll_error_field("values");
                ll_error_hint("leave it out: landlord fills it from the tenant's id, tier and "
                              "pool");
                goto done;
            }
            if (!json_is_object(child)) {
                error = ll_error_set(LL_EINVALID,
                                     "values may not replace %.*s with a %s: the tier derives "
                                     "%s under it from the tenant's identity or placement",
                                     (int)(p - pointer), pointer,
                                     json_is_array(child)    ? "list"
                                     : json_is_string(child) ? "string"
                                     : json_is_null(child)   ? "null"
                                                             : "scalar",
                                     pointer);
                ll_error_field("values");
                ll_error_hint("send a mapping there, without %s", pointer);
                goto done;
            }
            v = child;
        }
    }

done:
    free(seg);
    return error;
}

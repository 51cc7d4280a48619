/* template_policy.c - the tier policy: what a tier template may declare.
 *
 * Tier templates are code that Flux runs with cluster-wide power, so
 * ll_template_check_policy() holds them to a policy, on the template with
 * sample values substituted (template_int.h: the ranges say which scalar
 * holds which placeholder).  Two passes over the documents: first the YAML
 * itself (core tags only, no merge keys, no placeholder in a key or a
 * type) and whether the tenant gets a Namespace of its own; then each
 * object: fixed rules no list of kinds can lift (cluster RBAC, Flux
 * sources and Kustomizations, Secrets in Flux's namespace), the tier-kinds
 * list, where the object may be (the tenant's namespace, or Flux's for a
 * HelmRelease or ConfigMap named after the tenant), and what a HelmRelease
 * or RoleBinding may point at.  A refusal names its rule (kind
 * tier-policy).
 *
 * Pure: no state beyond the call; reentrant.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/template.h"
#include "base/yamltext.h"
#include "template_int.h"

typedef struct policy_ctx {
    ll_tpl_sample *s;
    yaml_document_t *doc;
    size_t docno;
    const char *kinds, *flux_ns;
    char *const *pools;
    size_t n_pools;
    int has_namespace; /* the template declares the tenant's Namespace */
    const char **rule;
    char what[200]; /* "document 2 (ClusterRoleBinding evil) at line 12" */
} policy_ctx;

static int violation(policy_ctx *c, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int violation(policy_ctx *c, const char *rule, const char *fmt, ...)
{
    char msg[LL_ERROR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ll_error_set(LL_EINVALID, "template breaks the tier policy (%s): %s", rule, msg);
    ll_error_kind("tier-policy");
    if (c->rule)
        *c->rule = rule;
    return LL_EINVALID;
}

static int is_core_tag(const char *tag)
{
    static const char *const core[] = {YAML_STR_TAG,  YAML_INT_TAG, YAML_FLOAT_TAG, YAML_BOOL_TAG,
                                       YAML_NULL_TAG, YAML_SEQ_TAG, YAML_MAP_TAG};
    for (size_t i = 0; i < sizeof(core) / sizeof(core[0]); i++)
        if (strcmp(tag, core[i]) == 0)
            return 1;
    return 0;
}

/* Core YAML only: no tags beyond the core schema's, no merge keys, and no
 * placeholder in a mapping key.  Every node is looked at once, aliases or
 * not. */
static int check_yaml(policy_ctx *c)
{
    yaml_node_t *n, *key;
    yaml_node_pair_t *pair;
    size_t line;
    char tag[64];

    for (n = c->doc->nodes.start; n < c->doc->nodes.top; n++) {
        line = n->start_mark.line + 1;
        if (!n->tag || !is_core_tag((const char *)n->tag)) {
            ll_tpl_shown(tag, (const char *)n->tag);
            return violation(c, "yaml-tag",
                             "document %zu at line %zu carries the tag %s; a template uses the "
                             "YAML core schema only (str, int, float, bool, null, map, seq)",
                             c->docno, line, tag);
        }
        if (n->type != YAML_MAPPING_NODE)
            continue;
        for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
            if (!(key = ll_ytext_node(c->doc, pair->key)))
                continue;
            line = key->start_mark.line + 1;
            if (key->type == YAML_SCALAR_NODE &&
                key->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                ll_ytext_scalar_eq(key, "<<", 2))
                return violation(c, "yaml-merge-key",
                                 "document %zu at line %zu uses a merge key (<<), which is not "
                                 "core YAML and would hide what the object holds",
                                 c->docno, line);
            if (ll_tpl_mask(c->s, key))
                return violation(c, "placeholder-in-key",
                                 "document %zu at line %zu has a placeholder in a mapping key; "
                                 "placeholders may only stand in scalar values",
                                 c->docno, line);
        }
    }
    return 0;
}

/* 1 when kind of group (glen bytes) is on the list: "Kind" for the core
 * group, "Kind.group" for the others, separated by commas. */
static int kind_listed(const char *list, const char *kind, const char *group, size_t glen)
{
    const char *p = list, *e, *end, *dot;
    size_t n, klen = strlen(kind);

    while (*p) {
        n = strcspn(p, ",");
        e = p;
        end = p + n;
        while (e < end && (*e == ' ' || *e == '\t'))
            e++;
        while (end > e && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        dot = memchr(e, '.', (size_t)(end - e));
        if ((size_t)((dot ? dot : end) - e) == klen && memcmp(e, kind, klen) == 0 &&
            (dot ? (size_t)(end - dot - 1) == glen && memcmp(dot + 1, group, glen) == 0
                 : glen == 0))
            return 1;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* n is exactly {TENANT_ID}: the name of the tenant's own namespace. */
static int is_tenant_id(const policy_ctx *c, const yaml_node_t *n)
{
    const char *v = ll_tpl_scalar(n);
    return v && strcmp(v, SAMPLE_TENANT) == 0 && (ll_tpl_mask(c->s, n) & PH_TENANT);
}

/* A namespace a HelmRelease may install into or keep its release in: the
 * tenant's own (declared by the template) or a pool environment. */
static int helm_namespace_ok(const policy_ctx *c, const yaml_node_t *n)
{
    const char *v = ll_tpl_scalar(n);

    if (c->has_namespace && is_tenant_id(c, n))
        return 1;
    for (size_t i = 0; i < c->n_pools; i++) {
        if (v && c->pools[i] && strcmp(c->pools[i], v) == 0 &&
            !(ll_tpl_mask(c->s, n) & PH_IDENTITY))
            return 1;
    }
    return 0;
}

static int check_helm_release(policy_ctx *c, yaml_node_t *root, const char *ns)
{
    yaml_document_t *doc = c->doc;
    yaml_node_t *spec = ll_tpl_get(doc, root, "spec"), *target, *storage, *from, *item;
    yaml_node_item_t *it;
    char v[64];

    if (ll_tpl_get(doc, spec, "kubeConfig"))
        return violation(c, "helm-kubeconfig",
                         "%s sets spec.kubeConfig: a template may not deploy to another cluster",
                         c->what);
    if (ll_tpl_get(doc, spec, "postRenderers"))
        return violation(c, "helm-post-renderers",
                         "%s sets spec.postRenderers: a template may not rewrite what its chart "
                         "renders (it could move the chart's objects to any namespace)",
                         c->what);
    if (ll_tpl_get(doc, spec, "serviceAccountName") && strcmp(ns, c->flux_ns) == 0)
        return violation(c, "helm-service-account",
                         "%s sets spec.serviceAccountName in %s: it would install as an account "
                         "of Flux's own namespace",
                         c->what, c->flux_ns);
    target = ll_tpl_get(doc, spec, "targetNamespace");
    storage = ll_tpl_get(doc, spec, "storageNamespace");
    if (!target && strcmp(ns, c->flux_ns) == 0)
        return violation(c, "helm-target-namespace",
                         "%s sets no spec.targetNamespace: its chart would be installed in %s",
                         c->what, c->flux_ns);
    if (target && !helm_namespace_ok(c, target)) {
        ll_tpl_shown(v, ll_tpl_scalar(target));
        return violation(c, "helm-target-namespace",
                         "%s installs its chart in '%s'; a HelmRelease may only target the "
                         "tenant's namespace ({TENANT_ID}, declared by the template) or a pool "
                         "environment",
                         c->what, v);
    }
    if (storage && !helm_namespace_ok(c, storage)) {
        ll_tpl_shown(v, ll_tpl_scalar(storage));
        return violation(c, "helm-target-namespace",
                         "%s keeps its release in '%s'; a HelmRelease may only use the tenant's "
                         "namespace ({TENANT_ID}, declared by the template) or a pool environment",
                         c->what, v);
    }
    from = ll_tpl_get(doc, spec, "valuesFrom");
    if (from && from->type == YAML_SEQUENCE_NODE && strcmp(ns, c->flux_ns) == 0) {
        for (it = from->data.sequence.items.start; it < from->data.sequence.items.top; it++) {
            item = ll_ytext_node(doc, *it);
            if (ll_ytext_scalar_eq(ll_tpl_get(doc, item, "kind"), "Secret", 6))
                return violation(c, "flux-namespace-secret",
                                 "%s takes values from a Secret in %s, where Flux keeps its "
                                 "credentials",
                                 c->what, c->flux_ns);
        }
    }
    return 0;
}

#define FLUX_SOURCES "source.toolkit.fluxcd.io"

/* The rules no list of kinds can lift: no cluster-scoped RBAC, no Flux
 * source or Kustomization, no Secret in Flux's namespace.  api is the
 * object's apiVersion, whose group is its first glen bytes. */
static int fixed_rules(policy_ctx *c, const char *kind, const char *api, size_t glen,
                       const char *ns)
{
    static const char *const flux_sources[] = {"GitRepository", "OCIRepository", "HelmRepository",
                                               "Bucket", "HelmChart"};
    int flux_source = glen == strlen(FLUX_SOURCES) && memcmp(api, FLUX_SOURCES, glen) == 0;

    for (size_t i = 0; i < sizeof(flux_sources) / sizeof(flux_sources[0]); i++)
        flux_source |= strcmp(kind, flux_sources[i]) == 0;
    if (strcmp(kind, "ClusterRole") == 0 || strcmp(kind, "ClusterRoleBinding") == 0)
        return violation(c, "cluster-rbac",
                         "%s is cluster-scoped RBAC; a template may only declare Roles and "
                         "RoleBindings in the tenant's namespace",
                         c->what);
    if (flux_source)
        return violation(c, "flux-source",
                         "%s is a Flux source; a template may not make Flux fetch from "
                         "anywhere else",
                         c->what);
    if (strcmp(kind, "Kustomization") == 0)
        return violation(c, "flux-kustomization",
                         "%s is a Kustomization; a template may not make Flux apply other paths "
                         "or repositories",
                         c->what);
    if (strcmp(kind, "Secret") == 0 && ns && strcmp(ns, c->flux_ns) == 0)
        return violation(c, "flux-namespace-secret",
                         "%s is a Secret in %s, where Flux keeps its credentials", c->what,
                         c->flux_ns);
    return 0;
}

/* Where a namespaced object may be: the tenant's own namespace, or Flux's
 * for a HelmRelease or ConfigMap whose name holds {TENANT_ID}.  nsn and
 * name are its metadata.namespace and metadata.name. */
static int check_placement(policy_ctx *c, const char *kind, yaml_node_t *nsn, yaml_node_t *name)
{
    const char *ns = ll_tpl_scalar(nsn);
    char v[64];

    if (!ns)
        return violation(c, "object-namespace",
                         "%s names no metadata.namespace; a template puts objects in the "
                         "tenant's namespace or in %s",
                         c->what, c->flux_ns);
    if (c->has_namespace && is_tenant_id(c, nsn))
        return 0; /* the tenant's own */
    if (strcmp(ns, c->flux_ns) != 0 || (ll_tpl_mask(c->s, nsn) & PH_IDENTITY)) {
        ll_tpl_shown(v, ns);
        return violation(c, "object-namespace",
                         "%s is in namespace '%s'; a template puts objects only in the tenant's "
                         "namespace ({TENANT_ID}, declared by the template) or in %s",
                         c->what, v, c->flux_ns);
    }
    if (strcmp(kind, "HelmRelease") != 0 && strcmp(kind, "ConfigMap") != 0)
        return violation(c, "object-namespace",
                         "%s is in %s, where a template may only put HelmReleases and "
                         "ConfigMaps",
                         c->what, c->flux_ns);
    if (!(ll_tpl_mask(c->s, name) & PH_TENANT))
        return violation(c, "object-name",
                         "%s is in %s but its name does not hold {TENANT_ID}: it could take "
                         "over an object that is not the tenant's",
                         c->what, c->flux_ns);
    return 0;
}

/* A RoleBinding binds a Role of its own namespace, never a ClusterRole. */
static int check_role_binding(policy_ctx *c, yaml_node_t *root)
{
    yaml_node_t *ref = ll_tpl_get(c->doc, root, "roleRef");
    char v[64];

    if (ll_ytext_scalar_eq(ll_tpl_get(c->doc, ref, "kind"), "Role", 4))
        return 0;
    ll_tpl_shown(v, ll_tpl_scalar(ll_tpl_get(c->doc, ref, "kind")));
    return violation(c, "rolebinding-cluster-role",
                     "%s binds a %s; a RoleBinding may only bind a Role of its own "
                     "namespace (ClusterRoles such as cluster-admin are refused)",
                     c->what, v[0] ? v : "role of no kind");
}

/* The rules for one object (a mapping with kind and apiVersion). */
static int check_object(policy_ctx *c, yaml_node_t *root)
{
    yaml_document_t *doc = c->doc;
    const char *kind = ll_tpl_scalar(ll_tpl_get(doc, root, "kind"));
    const char *api = ll_tpl_scalar(ll_tpl_get(doc, root, "apiVersion"));
    const char *slash = strchr(api, '/');
    yaml_node_t *meta = ll_tpl_get(doc, root, "metadata"), *name = ll_tpl_get(doc, meta, "name");
    yaml_node_t *nsn = ll_tpl_get(doc, meta, "namespace");
    size_t glen = slash ? (size_t)(slash - api) : 0;
    char k[64], nm[64], v[64];
    int error;

    ll_tpl_shown(k, kind);
    ll_tpl_shown(nm, ll_tpl_scalar(name));
    snprintf(c->what, sizeof(c->what), "document %zu (%s %s) at line %zu", c->docno, k, nm,
             root->start_mark.line + 1);
    if ((error = fixed_rules(c, kind, api, glen, ll_tpl_scalar(nsn))) < 0)
        return error;
    if (!kind_listed(c->kinds, kind, api, glen)) {
        ll_tpl_shown(v, api);
        return violation(c, "kind-not-allowed", "%s: kind %s of %s is not on the tier-kinds list",
                         c->what, k, v);
    }
    if (strcmp(kind, "Namespace") == 0 && glen == 0) {
        if (!is_tenant_id(c, name))
            return violation(c, "foreign-namespace",
                             "%s: a template may only declare the tenant's own namespace, "
                             "named exactly {TENANT_ID}",
                             c->what);
        return 0;
    }
    /* Every other kind is namespaced. */
    if ((error = check_placement(c, kind, nsn, name)) < 0)
        return error;
    if (strcmp(kind, "HelmRelease") == 0)
        return check_helm_release(c, root, ll_tpl_scalar(nsn));
    if (strcmp(kind, "RoleBinding") == 0)
        return check_role_binding(c, root);
    return 0;
}

/* The first look at a document (root): core YAML, no placeholder in its
 * type, a kind and an apiVersion; notes whether it is the tenant's
 * Namespace. */
static int check_document(policy_ctx *c, yaml_node_t *root)
{
    size_t line = root->start_mark.line + 1;
    yaml_node_t *kind = ll_tpl_get(c->doc, root, "kind"),
                *api = ll_tpl_get(c->doc, root, "apiVersion");
    int error;

    if ((error = check_yaml(c)) < 0)
        return error;
    if (ll_tpl_mask(c->s, kind) || ll_tpl_mask(c->s, api))
        return violation(c, "placeholder-in-type",
                         "document %zu at line %zu has a placeholder in its kind or "
                         "apiVersion; placeholders may only stand in scalar values",
                         c->docno, line);
    if (!ll_tpl_scalar(kind) || !ll_tpl_scalar(api))
        return ll_error_set(LL_EINVALID,
                            "tier template: document %zu at line %zu has no kind or apiVersion",
                            c->docno, line);
    if (strcmp(ll_tpl_scalar(kind), "Namespace") == 0 && !strchr(ll_tpl_scalar(api), '/'))
        c->has_namespace = 1;
    return 0;
}

int ll_template_check_policy(const char **out_rule, const char *tmpl, size_t len,
                             const ll_tier_policy *policy)
{
    ll_tpl_sample s;
    policy_ctx c;
    yaml_node_t *root;
    size_t d;
    int error;

    memset(&c, 0, sizeof(c));
    if (out_rule)
        *out_rule = NULL;
    c.rule = out_rule;
    c.s = &s;
    c.kinds = policy && policy->kinds && policy->kinds[0] ? policy->kinds : LL_TIER_KINDS_DEFAULT;
    c.flux_ns = policy && policy->flux_namespace && policy->flux_namespace[0]
                    ? policy->flux_namespace
                    : "flux-system";
    c.pools = policy ? policy->pools : NULL;
    c.n_pools = policy && policy->pools ? policy->n_pools : 0;
    if ((error = ll_tpl_sample_load(&s, tmpl, len)) < 0)
        goto done;
    /* First the YAML itself, the types, and whether the tenant gets a
     * namespace of its own. */
    for (d = 0; d < s.y.ndocs; d++) {
        c.doc = &s.y.docs[d];
        c.docno = d + 1;
        if ((root = ll_ytext_root(c.doc)) && (error = check_document(&c, root)) < 0)
            goto done;
    }
    for (d = 0; d < s.y.ndocs; d++) {
        c.doc = &s.y.docs[d];
        c.docno = d + 1;
        if ((root = ll_ytext_root(c.doc)) && (error = check_object(&c, root)) < 0)
            goto done;
    }
    error = 0;

done:
    ll_tpl_sample_free(&s);
    return error;
}

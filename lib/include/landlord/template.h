/* template.h - tier templates rendered into a tenant's Kubernetes objects.
 *
 * A tier template is YAML text with placeholders.  Rendering substitutes
 * validated values only, keeps every comment of the template (Flux image
 * automation markers live in comments), merges the tenant's chart value
 * overrides into spec.values of each HelmRelease, and checks the result.
 *
 * Ownership, unless a prototype says otherwise: text, JSON and input
 * records are borrowed for the call; `char **out` receives a new buffer the
 * caller frees (free), `json_t **out` a new reference (json_decref).
 */
#ifndef LANDLORD_TEMPLATE_H
#define LANDLORD_TEMPLATE_H

#include <stddef.h>
#include <jansson.h>

typedef struct ll_render_input {
    const char *tenant_id;      /* {TENANT_ID}; a validated DNS-1123 label, or NULL */
    const char *tier;           /* {TIER}; a validated label, or NULL */
    const char *release;        /* {RELEASE_VERSION}; a valid release, or NULL */
    const char *environment_id; /* {ENVIRONMENT_ID}; a validated label, or NULL */
    const json_t *values;       /* chart value overrides (object) or NULL; borrowed */
} ll_render_input;

/* Renders tmpl for one tenant (or pool environment).
 *
 * - {TENANT_ID}, {TIER}, {ENVIRONMENT_ID} are replaced by their values.
 *   {RELEASE_VERSION} is replaced by the chart version expression of the
 *   release (ll_release_expr); when the template writes "{RELEASE_VERSION}.x"
 *   (the reference's style) the ".x" belongs to the placeholder.  A placeholder
 *   whose input is NULL fails with LL_EINVALID.  Other text in braces is left
 *   alone.
 * - A plain scalar made from a substituted value that YAML would read as
 *   anything but a string (true, null, yes, 1e3, 0x1f, 2001-12-14, ...) is
 *   written double-quoted, so the id stays a string.
 * - values is merged into spec.values of every HelmRelease document: objects
 *   merge key by key, anything else replaces the template's value; keys the
 *   template lacks are added.  Comments on lines that are not replaced stay.
 *   Values are written as one-line JSON flow text with JSON-quoted keys
 *   ("key": value); json null is written null.  A scalar replaced in place
 *   keeps the comment after it on its line; a block collection replaced by
 *   a value loses the lines (and their comments) it spanned.  An empty or
 *   null template mapping is replaced whole.  Placeholder values must be
 *   letters, digits, '-', '.' and '_' starting with a letter or digit (so no
 *   value can change the YAML around it), else LL_EINVALID.  LL_EINVALID too
 *   when a values key would be over 1000 characters
 *   quoted, or when a HelmRelease to merge into uses YAML aliases.
 * - The result must be one or more YAML documents, each a mapping with
 *   apiVersion, kind and metadata.name; else LL_EINVALID with the reason and
 *   line.
 *
 * On success *out is a new NUL-terminated buffer (caller frees) of *out_len
 * bytes.  Returns 0, LL_EINVALID or -1. */
int ll_template_render(char **out, size_t *out_len, const char *tmpl, size_t tmpl_len,
                       const ll_render_input *in);

/* Sets spec.chart.spec.version of every HelmRelease document of text to
 * version (written double-quoted), as a text edit at the position libyaml
 * reports: every other byte stays (comments, image automation markers,
 * hand edits).  HelmReleases without that field, and those already at
 * version, are left alone; *changed counts the edits.  version must look
 * like a chart version ([A-Za-z0-9._-], starting with a letter or digit).
 * *out is a new NUL-terminated buffer (caller frees).  Returns 0,
 * LL_EINVALID (bad YAML, aliases, a bad version) or -1. */
int ll_template_set_chart_version(char **out, size_t *out_len, int *changed, const char *text,
                                  size_t len, const char *version);

/* Checks that text is one or more YAML documents, each a mapping with
 * apiVersion, kind and metadata.name (scalars that are neither empty nor
 * null) and no mapping holding the same key twice.  Empty documents (a
 * trailing "---", only comments) are skipped.  Messages read "rendered
 * template: document N at line L has no metadata.name" or "rendered
 * template: yaml error at line L column C: <problem>".  Returns 0 or
 * LL_EINVALID. */
int ll_template_check_objects(const char *text, size_t len);

/* The kinds a tier template may declare when the tier-kinds setting is
 * not given: "Kind" for the core group, "Kind.group" for the others. */
#define LL_TIER_KINDS_DEFAULT                                                                      \
    "Namespace,ConfigMap,ServiceAccount,ResourceQuota,LimitRange,"                                 \
    "NetworkPolicy.networking.k8s.io,Role.rbac.authorization.k8s.io,"                              \
    "RoleBinding.rbac.authorization.k8s.io,HelmRelease.helm.toolkit.fluxcd.io,"                    \
    "Terraform.infra.contrib.fluxcd.io"

/* What a tier template is checked against (ll_template_check_policy). */
typedef struct ll_tier_policy {
    const char *kinds;          /* allowed kinds, as LL_TIER_KINDS_DEFAULT; NULL or "": that */
    const char *flux_namespace; /* where the HelmReleases live; NULL or "": flux-system */
    char *const *pools;         /* pool environments a HelmRelease may target, n_pools
                                   names; borrowed, may be NULL */
    size_t n_pools;
} ll_tier_policy;

/* Checks a tier template against the policy, on the template with sample
 * values in its placeholders:
 *
 * - yaml-tag: no tag beyond the YAML core schema (str, int, float, bool,
 *   null, map, seq): no !!python/object, no custom !tags;
 *   yaml-merge-key: no "<<" merge keys;
 *   placeholder-in-key, placeholder-in-type: placeholders only in scalar
 *   values, never in a mapping key, a kind or an apiVersion.
 * - Fixed, whatever the list of kinds says: cluster-rbac (no ClusterRole,
 *   ClusterRoleBinding), flux-source (nothing of source.toolkit.fluxcd.io,
 *   no GitRepository, OCIRepository, HelmRepository, Bucket, HelmChart),
 *   flux-kustomization (no Kustomization), flux-namespace-secret (no Secret
 *   in the Flux namespace, no HelmRelease valuesFrom a Secret there).
 * - kind-not-allowed: every kind (with its API group) on policy->kinds.
 * - foreign-namespace: a Namespace must be named exactly {TENANT_ID}.
 * - object-namespace, object-name: every other object names its namespace:
 *   the tenant's (exactly {TENANT_ID}, with the template declaring that
 *   Namespace), or the Flux namespace, where only HelmReleases and
 *   ConfigMaps whose names hold {TENANT_ID} may go.
 * - helm-target-namespace: a HelmRelease's targetNamespace and
 *   storageNamespace are the tenant's namespace or a pool environment, and
 *   one in the Flux namespace sets targetNamespace; helm-kubeconfig: no
 *   spec.kubeConfig; helm-post-renderers: no spec.postRenderers;
 *   helm-service-account: no spec.serviceAccountName in the Flux namespace.
 * - rolebinding-cluster-role: a RoleBinding binds a Role (of its namespace),
 *   never a ClusterRole.
 *
 * Returns 0, or LL_EINVALID: a broken rule sets kind "tier-policy", the
 * message "template breaks the tier policy (<rule>): document N (<Kind>
 * <name>) at line L ..." and *out_rule (static text; may be NULL); text
 * that is not YAML objects fails without a rule. */
int ll_template_check_policy(const char **out_rule, const char *tmpl, size_t len,
                             const ll_tier_policy *policy);

/* The paths of the chart values a tier's template derives from the
 * tenant's identity and placement, as sorted JSON pointers ("/tenantId",
 * "/apps/producer/envId"): in spec.values of every HelmRelease, each scalar
 * holding {TENANT_ID}, {TIER} or {ENVIRONMENT_ID}, or equal to a name that
 * places the tenant (a Namespace the template declares, a HelmRelease's
 * targetNamespace, storageNamespace or releaseName, a pool of pools); a
 * sequence holding such a scalar; and, when a key locks the value of one of
 * several sibling mappings (apps.producer.envId), the same key in each
 * sibling (apps.consumer.envId).  A HelmRelease may name more in its
 * annotation landlord.dev/locked-values: JSON pointers separated by commas.
 * pools: n_pools names (borrowed, NULL when none).  *out is a new array.  Returns 0, LL_EINVALID
 * (bad YAML, a bad pointer in the annotation) or -1. */
int ll_template_locked_values(json_t **out, const char *tmpl, size_t len, char *const *pools,
                              size_t n_pools);

/* Refuses values (a tenant's chart value overrides) that set a locked path
 * (an array of JSON pointers, as ll_template_locked_values gives), or that
 * put anything but an object on the way to one (which would replace it).
 * Returns 0 or LL_EINVALID (field "values", the message names the path). */
int ll_template_check_values(const json_t *locked, const json_t *values);

/* Loads every YAML document of text as JSON (a new array, one element per
 * document).  Plain scalars resolve as YAML 1.1 would for true/false, null
 * and integers; everything else is a string.  Returns 0 or LL_EINVALID.
 *
 * Precisely: plain true/True/TRUE and false/False/FALSE are booleans; plain
 * "", ~, null, Null, NULL are null (so an empty document is a null
 * element); plain decimal integers without leading zeros that fit in 64
 * bits are integers; every quoted scalar and everything else (yes, 1.5,
 * 0x1f, 0777) is a string.  Mapping keys must be scalars and unique.
 * Aliases are expanded, at most 100000 nodes beyond the document's own;
 * nesting deeper than 64 levels is refused. */
int ll_yaml_load_json(json_t **out, const char *text, size_t len);

/* 1 when a plain YAML scalar with this text could be read as something other
 * than a string by a YAML 1.1 or 1.2 reader (booleans, null, numbers,
 * timestamps), else 0. */
int ll_yaml_plain_is_ambiguous(const char *s);

#endif

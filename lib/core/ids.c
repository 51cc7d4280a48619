/* ids.c - whether a tenant id may be taken (see ids.h).
 *
 * A tenant owns what its tier's template declares for it, and the
 * reference's premium and advanced tiers name a Namespace after the id:
 * onboarding `cert-manager` there declares, and with pruning deletes when
 * the tenant leaves, the namespace cert-manager runs in.  Flux's
 * kustomize-controller applies server-side, so a namespace that exists
 * already is taken over, labelled as its own, and pruned with the tenant.
 *
 * So an id is refused when
 * 1. it, or a namespace it would own, is reserved: the reserved-namespaces
 *    list (names, prefix*, *suffix), the names always reserved (default,
 *    flux-system, kube-*), the configured flux-namespace, the pool
 *    environments.  The id itself is checked for every tier: a later move
 *    to a tier with a namespace of its own would otherwise hand one over;
 * 2. a namespace it would own is declared by another tenant's file;
 * 3. such a namespace exists in the followed cluster and was not made for
 *    this tenant.  Made for it: applied by landlord's own Kustomization
 *    (kustomize-controller's kustomize.toolkit.fluxcd.io/name and
 *    /namespace labels, so another landlord's or a hand-made namespace
 *    never counts), and either declared by the tenant's own file (status.c
 *    reads every tenant's file; reference templates carry no label) or
 *    labelled landlord.dev/tenant=<id> (as the seeded templates label
 *    theirs).  A tenant offboarded and onboarded again finds its own
 *    namespace, which may still be terminating.
 *
 * The namespaces an id would own come from rendering its tier's template
 * for it and, when a namespace its objects use holds the id, for a probe
 * id: the Namespaces it declares, and the namespaces its objects use
 * (metadata.namespace, a HelmRelease's targetNamespace and
 * storageNamespace) that change with the id.
 *
 * Thread-safe: reads the configuration, a catalogue snapshot, and the
 * cluster through ll_status_namespace_owner().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/status.h"
#include "landlord/template.h"
#include "landlord/tiers.h"
#include "landlord/validate.h"

#include "ids.h"

#define HINT_OTHER_ID "choose another id"

static void add_name(json_t *set, const char *name)
{
    if (name && name[0])
        json_object_set_new(set, name, json_true());
}

/* Renders tmpl for id; adds the names of the Namespaces it declares to
 * declared, and the namespaces its objects use to used. */
static int scan(json_t *declared, json_t *used, const char *tmpl, size_t len, const char *id,
                const char *tier, const char *release)
{
    ll_render_input in = {id, tier, release, NULL, NULL};
    json_t *docs = NULL, *doc;
    char *text = NULL;
    size_t text_len, i;
    int error;

    if ((error = ll_template_render(&text, &text_len, tmpl, len, &in)) < 0 ||
        (error = ll_yaml_load_json(&docs, text, text_len)) < 0)
        goto done;
    json_array_foreach(docs, i, doc)
    {
        const json_t *meta = json_object_get(doc, "metadata");
        const json_t *spec = json_object_get(doc, "spec");
        const char *kind = json_string_value(json_object_get(doc, "kind"));
        if (kind && strcmp(kind, "Namespace") == 0)
            add_name(declared, json_string_value(json_object_get(meta, "name")));
        add_name(used, json_string_value(json_object_get(meta, "namespace")));
        if (kind && strcmp(kind, "HelmRelease") == 0) {
            add_name(used, json_string_value(json_object_get(spec, "targetNamespace")));
            add_name(used, json_string_value(json_object_get(spec, "storageNamespace")));
        }
    }
done:
    json_decref(docs);
    free(text);
    return error;
}

int ll_ids_namespaces(json_t **out, const char *tmpl, size_t len, const char *id, const char *tier,
                      const char *release)
{
    json_t *declared = json_object(), *used = json_object();
    json_t *probe_declared = json_object(), *probe_used = json_object();
    const char *probe = strcmp(id, "ll-probe-0") != 0 ? "ll-probe-0" : "ll-probe-1";
    const char *name;
    json_t *v;
    int error, maybe_made = 0;

    *out = NULL;
    if ((error = scan(declared, used, tmpl, len, id, tier, release)) < 0)
        goto done;
    /* A namespace made from the id holds it: only then can the probe's
     * render tell (a short id may sit inside a fixed name too). */
    json_object_foreach(used, name, v)
    {
        if (!json_object_get(declared, name) && strstr(name, id))
            maybe_made = 1;
    }
    if (maybe_made &&
        (error = scan(probe_declared, probe_used, tmpl, len, probe, tier, release)) < 0)
        goto done;
    *out = json_array();
    json_object_foreach(declared, name, v) json_array_append_new(*out, json_string(name));
    json_object_foreach(used, name, v)
    {
        if (!json_object_get(declared, name) && strstr(name, id) &&
            !json_object_get(probe_used, name))
            json_array_append_new(*out, json_string(name));
    }
done:
    json_decref(declared);
    json_decref(used);
    json_decref(probe_declared);
    json_decref(probe_used);
    return error;
}

/* 1 when no tenant may own namespace name; why says which rule. */
static int reserved(const ll_core *c, const ll_tier_catalogue *tiers, const char *name, char *why,
                    size_t cap)
{
    char match[80];
    if (strcmp(name, "default") == 0 || strcmp(name, "flux-system") == 0 ||
        strncmp(name, "kube-", 5) == 0)
        snprintf(why, cap, "default, flux-system and kube-* are always reserved");
    else if (strcmp(name, c->cfg.flux_namespace) == 0)
        snprintf(why, cap, "landlord's Flux objects live there (flux-namespace)");
    else if (ll_tiers_is_pool(tiers, name))
        snprintf(why, cap, "a pool environment has that name");
    else if (ll_reserved_match(match, sizeof(match), c->cfg.reserved_namespaces, name))
        snprintf(why, cap, "it matches '%s' in reserved-namespaces (platform namespaces)", match);
    else
        return 0;
    return 1;
}

int ll_ids_check_name(ll_core *c, const ll_tier_catalogue *tiers, const char *id)
{
    char why[200];
    if (!reserved(c, tiers, id, why, sizeof(why)))
        return 0;
    ll_core_field_error("id", "id '%s' is reserved: %s", id, why);
    ll_error_hint("%s: a tenant never takes a platform namespace's name", HINT_OTHER_ID);
    return LL_EINVALID;
}

/* Checks one namespace tenant id would own (see ids.h). */
static int check_namespace(ll_core *c, const ll_tier_catalogue *tiers, const char *id,
                           const char *name, const char *field)
{
    ll_namespace_owner o;
    char why[700];

    if (reserved(c, tiers, name, why, sizeof(why))) {
        if (strcmp(name, id) == 0)
            ll_core_field_error(field, "id '%s' is reserved: %s", id, why);
        else
            ll_core_field_error(field,
                                "tenant '%s' would own namespace '%s', which is reserved: %s", id,
                                name, why);
        ll_error_hint("%s: a tenant never owns a platform namespace", HINT_OTHER_ID);
        return LL_EINVALID;
    }
    if (ll_status_namespace_owner(&o, c->status, name) < 0)
        return 0; /* no cluster followed: the reserved names are all there is */
    if (o.declared_by[0] && strcmp(o.declared_by, id) != 0) {
        ll_core_field_error(field,
                            "tenant '%s' would own namespace '%s', which tenant '%s' owns (its "
                            "file declares it)",
                            id, name, o.declared_by);
        ll_error_hint("%s", HINT_OTHER_ID);
        return LL_EINVALID;
    }
    if (!o.known) {
        ll_log_warn("msg=\"the cluster's namespaces were never listed: only reserved names "
                    "checked\" tenant=%s namespace=%s",
                    id, name);
        return 0;
    }
    if (!o.exists ||
        (o.applied && (strcmp(o.declared_by, id) == 0 || strcmp(o.tenant_label, id) == 0)))
        return 0;
    if (!o.applied)
        snprintf(why, sizeof(why), "landlord's Kustomization %s/%s did not apply it",
                 c->cfg.flux_namespace, c->cfg.flux_kustomization);
    else if (o.tenant_label[0])
        snprintf(why, sizeof(why), "it is labelled for tenant '%s'", o.tenant_label);
    else
        snprintf(why, sizeof(why), "landlord applied it, but for no tenant");
    ll_core_field_error(field,
                        "tenant '%s' would own namespace '%s', which exists in the cluster and "
                        "was not made for it (%s): Flux would take it over, and prune it when "
                        "the tenant leaves",
                        id, name, why);
    ll_error_hint("%s", HINT_OTHER_ID);
    return LL_EINVALID;
}

int ll_ids_check_namespaces(ll_core *c, const ll_tier_catalogue *tiers, const char *id,
                            const char *tier, const char *release, const char *from_tier,
                            const char *field)
{
    const ll_tier *t = ll_tiers_find(tiers, tier), *was = NULL;
    json_t *now = NULL, *before = NULL, *ns;
    size_t i;
    int error = 0;

    if (!t || (from_tier && strcmp(from_tier, tier) == 0))
        return 0; /* an unknown tier is refused by the caller's checks */
    if ((error = ll_ids_namespaces(&now, t->template_text, t->template_len, id, tier, release)) < 0)
        goto done;
    /* What the tenant owns already (its tier may have left the repository,
     * or no longer render: then nothing). */
    if (from_tier && (was = ll_tiers_find(tiers, from_tier))) {
        if (ll_ids_namespaces(&before, was->template_text, was->template_len, id, from_tier,
                              release) < 0)
            before = NULL;
    }
    json_array_foreach(now, i, ns)
    {
        const char *name = json_string_value(ns);
        size_t k;
        json_t *old;
        int owned = 0;
        json_array_foreach(before, k, old) owned |= strcmp(json_string_value(old), name) == 0;
        if (!owned && (error = check_namespace(c, tiers, id, name, field)) < 0)
            goto done;
    }
done:
    json_decref(now);
    json_decref(before);
    return error;
}

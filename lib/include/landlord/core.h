/* core.h - the running service: configuration, registry, git writer, and the
 * tenant, tier and operation use cases the HTTP layer calls.
 *
 * Every function may be called from any thread.  Results are JSON objects
 * (new references) shaped as docs/api.md describes.  Errors are the LL_E*
 * codes with ll_error_last() saying why; ll_error_last()->kind refines the
 * class where the code alone is too coarse ("render-failed").
 */
#ifndef LANDLORD_CORE_H
#define LANDLORD_CORE_H

#include <jansson.h>

#include "landlord/config.h"
#include "landlord/registry.h"

typedef struct ll_core ll_core;

typedef enum {
    LL_CORE_SERVE = 0, /* seed an empty remote, start the git writer */
    LL_CORE_IMPORT = 1 /* only read the repository into the registry */
} ll_core_mode;

/* Creates the data directory, opens and migrates the registry, opens the
 * GitOps remote (seeding it when needed), makes the registry follow the
 * repository, and (serving) starts the git writer. */
int ll_core_open(ll_core **out, const ll_config *cfg, ll_core_mode mode);

/* Stops the writer and frees everything. */
void ll_core_free(ll_core *c);

/* The configuration (borrowed, read-only). */
const ll_config *ll_core_config(const ll_core *c);

/* The GitOps remote URL in use (borrowed). */
const char *ll_core_git_url(const ll_core *c);

/* This thread's registry connection, opened on first use (borrowed; closed
 * when the thread ends).  NULL on failure. */
ll_registry *ll_core_registry(ll_core *c);

/* Readiness: {"status": "ready"|"unavailable", "checks": {...}}; *ok 1/0. */
json_t *ll_core_ready(ll_core *c, int *ok);

/* Onboards the tenant described by body ({id, tier, release?, values?}).
 * wait_s < 0 takes write-wait.  On 0, *out is the tenant and *pending says
 * whether its push is still outstanding.  LL_EEXISTS: *out is the existing
 * tenant.  LL_EINVALID: bad field (ll_error_last()->field) or a template
 * that does not render (kind "render-failed").  LL_EUPSTREAM: the push
 * failed and nothing was kept. */
int ll_tenant_onboard(json_t **out, int *pending, ll_core *c, const json_t *body, int wait_s);

/* Changes tier, release and/or values of tenant id (body {tier?, release?,
 * values?}, at least one).  LL_ENOTFOUND, LL_ECONFLICT (offboarded),
 * LL_EINVALID; see ll_tenant_onboard for out, pending and wait_s. */
int ll_tenant_update(json_t **out, int *pending, ll_core *c, const char *id, const json_t *body,
                     int wait_s);

/* Offboards tenant id; see ll_tenant_onboard for out, pending and wait_s. */
int ll_tenant_offboard(json_t **out, int *pending, ll_core *c, const char *id, int wait_s);

int ll_tenant_get(json_t **out, ll_core *c, const char *id);

/* {"items": [...], "next_cursor": ...}; tier, state, cursor may be NULL;
 * limit 1..500. */
int ll_tenant_list(json_t **out, ll_core *c, const char *tier, const char *state,
                   const char *cursor, int limit);

/* {"items": [tier...]} (without templates) and one tier (with template). */
int ll_tier_list(json_t **out, ll_core *c);
int ll_tier_get(json_t **out, ll_core *c, const char *name);

int ll_operation_get(json_t **out, ll_core *c, long long id);

#endif

/* operations.c - operations as the use cases show them: an operation's
 * public record (GET /api/v1/operations/{id}) and whether one is still
 * queued (what a waiting request asks before it answers).
 *
 * Reads only: the outbox is written by the tenant, tier and rollout use
 * cases through the registry, and settled by the git writer.
 */
#include <string.h>

#include "landlord/core.h"
#include "landlord/registry.h"

#include "core_int.h"

int ll_core_op_queued(ll_core *c, long long op)
{
    ll_registry *r = ll_core_registry(c);
    json_t *opj = NULL;
    int queued;
    if (!r || ll_registry_op_get(&opj, r, op) < 0)
        return -1;
    queued = strcmp(json_string_value(json_object_get(opj, "state")), "queued") == 0;
    json_decref(opj);
    return queued;
}

int ll_operation_get(json_t **out, ll_core *c, long long id)
{
    ll_registry *r = ll_core_registry(c);
    json_t *op = NULL;
    int error;
    if (!r)
        return -1;
    if ((error = ll_registry_op_get(&op, r, id)) < 0)
        return error;
    json_object_del(op, "payload");
    json_object_del(op, "error_type");
    /* Tier changes name no tenant. */
    if (strncmp(json_string_value(json_object_get(op, "kind")), "tier_", 5) == 0)
        json_object_set_new(op, "tenant", json_null());
    *out = op;
    return 0;
}

/* operations.c - operations as the use cases show them: an operation's
 * public record (GET /api/v1/operations/{id}) and whether one is still
 * queued (what a waiting request asks before it answers).
 *
 * Reads only: the outbox is written by the tenant, tier and rollout use
 * cases through the registry, and settled by the git writer.
 */
#include <string.h>

#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/registry.h"

#include "core_int.h"

int ll_core_op_queued(ll_core *c, long long op)
{
    ll_registry *r = ll_core_registry(c);
    ll_operation opr;
    int queued;
    if (!r || ll_registry_op_get(&opr, r, op) < 0)
        return -1;
    queued = opr.state == LL_OP_QUEUED;
    ll_operation_clear(&opr);
    return queued;
}

json_t *ll_core_operation_json(const ll_operation *o)
{
    json_t *v;
    /* The API's view: the record without its payload and failure class;
     * tier changes and rollouts name no tenant. */
#define TEXT(s) ((s) ? json_string(s) : json_null())
    v = json_pack("{s:I, s:s, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:{s:o, s:o}, s:I, s:o}", "id",
                  (json_int_t)o->id, "kind", ll_op_kind_name(o->kind), "tenant", TEXT(o->tenant),
                  "tier", TEXT(o->tier), "state", ll_op_state_name(o->state), "commit",
                  TEXT(o->commit), "error", TEXT(o->error), "created_at", TEXT(o->created_at),
                  "updated_at", TEXT(o->updated_at), "author", "name", TEXT(o->author_name),
                  "email", TEXT(o->author_email), "attempts", (json_int_t)o->attempts, "last_error",
                  TEXT(o->last_error));
#undef TEXT
    if (v && o->rollout_id)
        json_object_set_new(v, "rollout", json_integer(o->rollout_id));
    return v;
}

int ll_operation_get(json_t **out, ll_core *c, long long id)
{
    ll_registry *r = ll_core_registry(c);
    ll_operation op;
    json_t *v;
    int error;
    if (!r)
        return -1;
    if ((error = ll_registry_op_get(&op, r, id)) < 0)
        return error;
    v = ll_core_operation_json(&op);
    ll_operation_clear(&op);
    if (!v)
        return ll_error_set(-1, "out of memory");
    *out = v;
    return 0;
}

/* Unit tests of lib/gitops/apply.c: operations applied to an overlay of a
 * repository seeded with landlord's default layout (in a temporary bare
 * repository), asserting the files and kustomization intents each leaves;
 * a failing operation undone; the commit message and its trailer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <git2.h>

#include "gitops/apply.h"
#include "gitops/overlay.h"
#include "landlord/embedded.h"
#include "landlord/error.h"
#include "landlord/gitops.h"
#include "landlord/kustomize.h"
#include "landlord/template.h"
#include "landlord/tiers.h"
#include "support.h"

#define ROOT "gitops"

/* The repository of one test: a bare repository whose tree holds the seed,
 * the tier catalogue read from it, and an overlay on that tree. */
typedef struct fixture {
    char dir[64];
    git_repository *repo;
    git_tree *seeded;
    ll_tier_catalogue *tiers;
    ll_overlay ov;
    ll_apply_ctx ctx;
} fixture;

static char *dup_text(const char *s)
{
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

/* Reads path of ov as a string (caller frees), or NULL when absent. */
static char *read_file(ll_overlay *ov, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(ll_overlay_read(&text, &len, ov, path), 0);
    return text;
}

/* Writes the seed (lib/seed, and pool-1 rendered from the environment
 * template) as the base tree, and reads the tier catalogue off it. */
static void seed_base(fixture *f, int sharded)
{
    static const char prefix[] = "lib/seed/";
    ll_overlay seed = {0};
    json_t *files = json_object();
    git_oid tree_id;
    char path[512], *env = NULL, *pool = NULL;
    size_t env_len = 0, pool_len = 0;
    int changed = 0;

    seed.repo = f->repo;
    for (const ll_embedded_file *e = ll_embedded_files; e->path; e++) {
        if (strncmp(e->path, prefix, sizeof(prefix) - 1) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", ROOT, e->path + sizeof(prefix) - 1);
        char *copy = malloc(e->size + 1);
        assert_non_null(copy);
        memcpy(copy, e->data, e->size + 1);
        assert_int_equal(ll_overlay_put(&seed, path, copy, e->size), 0);
        if (strstr(path, "/tier-templates/") || strstr(path, "/pooled-envs/"))
            json_object_set_new(files, path, json_stringn((const char *)e->data, e->size));
    }
    assert_int_equal(
        ll_overlay_read(&env, &env_len, &seed, ROOT "/tier-templates/basic_env_template.yaml"), 0);
    ll_render_input in = {NULL, NULL, "0.0", "pool-1", NULL};
    assert_int_equal(ll_template_render(&pool, &pool_len, env, env_len, &in), 0);
    json_object_set_new(files, ROOT "/pooled-envs/pool-1.yaml", json_stringn(pool, pool_len));
    assert_int_equal(ll_overlay_put(&seed, ROOT "/pooled-envs/pool-1.yaml", pool, pool_len), 0);
    free(env);
    assert_int_equal(ll_overlay_write(&tree_id, &changed, &seed), 0);
    assert_true(changed);
    ll_overlay_free(&seed);
    assert_int_equal(git_tree_lookup(&f->seeded, f->repo, &tree_id), 0);
    f->tiers = ll_tiers_build(files, ROOT, NULL);
    json_decref(files);
    assert_non_null(ll_tiers_find(f->tiers, "basic"));
    f->ov.repo = f->repo;
    f->ov.base = f->seeded;
    f->ctx.root = ROOT;
    f->ctx.sharded = sharded;
    f->ctx.tiers = f->tiers;
    f->ctx.tier_kinds = "";
    f->ctx.flux_namespace = "";
}

static fixture *open_fixture(int sharded)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(ut_temp_dir(f->dir, sizeof(f->dir), "apply"), 0);
    assert_int_equal(git_repository_init(&f->repo, f->dir, 1), 0);
    seed_base(f, sharded);
    return f;
}

static void close_fixture(fixture *f)
{
    ll_overlay_free(&f->ov);
    git_tree_free(f->seeded);
    ll_tier_catalogue_unref(f->tiers);
    git_repository_free(f->repo);
    assert_int_equal(ut_remove_tree(f->dir), 0);
    free(f);
}

/* A tenant operation as the registry's conversion makes it. */
static void tenant_op(ll_operation *op, long long id, ll_op_kind kind, const char *tenant,
                      const char *tier, const char *version, const char *values)
{
    memset(op, 0, sizeof(*op));
    op->id = id;
    op->kind = kind;
    op->tenant = dup_text(tenant);
    op->tier = dup_text(tier);
    op->author_name = dup_text("Ada");
    op->author_email = dup_text("ada@example.com");
    if (kind != LL_OP_OFFBOARD) {
        op->t.release = dup_text("0.0");
        op->t.chart_version = dup_text(version);
        op->t.values = json_loads(values, 0, NULL);
        assert_non_null(op->t.values);
    }
}

/* Applies op in an operation of its own, as the batch does: undone when
 * it fails.  Returns its code; *why its failure class. */
static int apply(fixture *f, ll_kust_intents *intents, const ll_operation *op, ll_op_failure *why)
{
    ll_op_failure w = LL_OP_FAILURE_NONE;
    int error;
    ll_overlay_begin(&f->ov);
    error = ll_apply_op(&w, &f->ctx, &f->ov, intents, op);
    if (error < 0)
        ll_overlay_undo(&f->ov);
    else
        ll_overlay_keep(&f->ov);
    if (why)
        *why = w;
    return error;
}

static ll_kust_intents *new_intents(void)
{
    ll_kust_intents *in = calloc(1, sizeof(*in));
    assert_non_null(in);
    return in;
}

static void drop_intents(ll_kust_intents *in)
{
    ll_kust_intents_free(in);
    free(in);
}

/* The intent for entry of the kustomization at path: 1 in, 0 out, -1 none. */
static int intent(const ll_kust_intents *intents, const char *path, const char *entry)
{
    for (size_t i = 0; i < intents->n; i++)
        if (strcmp(intents->v[i].path, path) == 0 && strcmp(intents->v[i].entry, entry) == 0)
            return intents->v[i].add;
    return -1;
}

static void test_onboard_flat(void **state)
{
    (void)state;
    fixture *f = open_fixture(0);
    ll_kust_intents *intents = new_intents();
    ll_operation op;
    char *text;

    tenant_op(&op, 7, LL_OP_ONBOARD, "acme", "basic", "0.0.3", "{\"replicas\": 3}");
    assert_int_equal(apply(f, intents, &op, NULL), 0);
    text = read_file(&f->ov, ROOT "/tenants/basic/acme.yaml");
    assert_non_null(text);
    assert_non_null(strstr(text, "name: acme-basic"));
    assert_non_null(strstr(text, "version: \"0.0.3\""));
    assert_non_null(strstr(text, "\n    \"replicas\": 3\n")); /* merged into spec.values */
    free(text);
    /* The entry is an intent: the kustomization itself is edited by the batch. */
    assert_int_equal(intent(intents, ROOT "/tenants/basic/kustomization.yaml", "acme.yaml"), 1);
    assert_int_equal(intents->n, 1);

    /* Applying it again (a replay after a crash) writes nothing. */
    size_t puts = f->ov.puts;
    assert_int_equal(apply(f, intents, &op, NULL), 0);
    assert_int_equal(f->ov.puts, puts);

    /* Another tenant's file already there with other content is a conflict. */
    ll_operation other;
    tenant_op(&other, 8, LL_OP_ONBOARD, "acme", "basic", "0.0.4", "{}");
    ll_op_failure why = LL_OP_FAILURE_NONE;
    assert_int_equal(apply(f, intents, &other, &why), LL_ECONFLICT);
    assert_int_equal(why, LL_OP_FAILURE_CONFLICT);
    ll_operation_clear(&other);

    ll_operation_clear(&op);
    drop_intents(intents);
    close_fixture(f);
}

static void test_onboard_sharded(void **state)
{
    (void)state;
    fixture *f = open_fixture(1);
    ll_kust_intents *intents = new_intents();
    ll_operation op;
    char path[512], shard[8];
    char *text;

    tenant_op(&op, 1, LL_OP_ONBOARD, "acme", "premium", "0.0.1", "{}");
    assert_int_equal(apply(f, intents, &op, NULL), 0);
    ll_tenant_file_path(path, sizeof(path), ROOT, 1, "premium", "acme");
    assert_true(ll_overlay_exists(&f->ov, path));
    /* The shard folder gets its kustomization, listed by the tier's. */
    assert_int_equal(strlen(ROOT "/tenants/premium/xx/acme.yaml"), strlen(path));
    memcpy(shard, path + strlen(ROOT "/tenants/premium/"), 2);
    shard[2] = '\0';
    snprintf(path, sizeof(path), ROOT "/tenants/premium/%s/kustomization.yaml", shard);
    text = read_file(&f->ov, path);
    assert_non_null(text);
    assert_non_null(strstr(text, "resources: []"));
    free(text);
    assert_int_equal(intent(intents, path, "acme.yaml"), 1);
    assert_int_equal(intent(intents, ROOT "/tenants/premium/kustomization.yaml", shard), 1);
    ll_operation_clear(&op);
    drop_intents(intents);
    close_fixture(f);
}

static void test_offboard_and_move(void **state)
{
    (void)state;
    fixture *f = open_fixture(0);
    ll_kust_intents *intents = new_intents();
    ll_operation op;

    tenant_op(&op, 1, LL_OP_ONBOARD, "acme", "basic", "0.0.1", "{}");
    assert_int_equal(apply(f, intents, &op, NULL), 0);
    ll_operation_clear(&op);

    /* An update that changes the tier leaves the old folder. */
    drop_intents(intents);
    intents = new_intents();
    tenant_op(&op, 2, LL_OP_UPDATE, "acme", "premium", "0.0.1", "{}");
    op.t.from_tier = dup_text("basic");
    assert_int_equal(apply(f, intents, &op, NULL), 0);
    assert_false(ll_overlay_exists(&f->ov, ROOT "/tenants/basic/acme.yaml"));
    assert_true(ll_overlay_exists(&f->ov, ROOT "/tenants/premium/acme.yaml"));
    assert_int_equal(intent(intents, ROOT "/tenants/basic/kustomization.yaml", "acme.yaml"), 0);
    assert_int_equal(intent(intents, ROOT "/tenants/premium/kustomization.yaml", "acme.yaml"), 1);
    ll_operation_clear(&op);

    /* Offboarding removes the file and the entry; again, nothing to do. */
    drop_intents(intents);
    intents = new_intents();
    tenant_op(&op, 3, LL_OP_OFFBOARD, "acme", "premium", NULL, NULL);
    assert_int_equal(apply(f, intents, &op, NULL), 0);
    assert_false(ll_overlay_exists(&f->ov, ROOT "/tenants/premium/acme.yaml"));
    assert_int_equal(intent(intents, ROOT "/tenants/premium/kustomization.yaml", "acme.yaml"), 0);
    size_t puts = f->ov.puts;
    assert_int_equal(apply(f, intents, &op, NULL), 0);
    assert_int_equal(f->ov.puts, puts);
    assert_int_equal(intents->n, 1); /* one intent per entry: the later wins */
    ll_operation_clear(&op);
    drop_intents(intents);
    close_fixture(f);
}

/* An update whose new tier has no template fails after it removed the
 * tenant's file from the old tier: undone, the file is back as it was. */
static void test_failing_op_undone(void **state)
{
    (void)state;
    fixture *f = open_fixture(0);
    ll_kust_intents *intents = new_intents();
    ll_operation op;
    ll_op_failure why = LL_OP_FAILURE_NONE;
    char *before, *after;

    tenant_op(&op, 1, LL_OP_ONBOARD, "acme", "basic", "0.0.1", "{}");
    assert_int_equal(apply(f, intents, &op, NULL), 0);
    ll_operation_clear(&op);
    before = read_file(&f->ov, ROOT "/tenants/basic/acme.yaml");
    assert_non_null(before);
    size_t changes = f->ov.n;

    tenant_op(&op, 2, LL_OP_UPDATE, "acme", "gold", "0.0.1", "{}");
    op.t.from_tier = dup_text("basic");
    assert_int_equal(apply(f, intents, &op, &why), LL_ECONFLICT);
    assert_int_equal(why, LL_OP_FAILURE_CONFLICT);
    assert_non_null(strstr(ll_error_last()->message, "tier 'gold' has no template"));
    after = read_file(&f->ov, ROOT "/tenants/basic/acme.yaml");
    assert_non_null(after);
    assert_string_equal(after, before);
    assert_false(ll_overlay_exists(&f->ov, ROOT "/tenants/gold/acme.yaml"));
    assert_int_equal(f->ov.n, changes);
    free(before);
    free(after);
    ll_operation_clear(&op);

    /* Values that set what the template derives from the tenant's identity
     * do not render: the other class of failure. */
    tenant_op(&op, 3, LL_OP_ONBOARD, "beta", "basic", "0.0.1", "{\"tenantId\": \"acme\"}");
    assert_true(apply(f, intents, &op, &why) < 0);
    assert_int_equal(why, LL_OP_FAILURE_RENDER);
    assert_false(ll_overlay_exists(&f->ov, ROOT "/tenants/basic/beta.yaml"));
    ll_operation_clear(&op);
    drop_intents(intents);
    close_fixture(f);
}

static void tier_op(ll_operation *op, long long id, ll_op_kind kind, const char *tier,
                    const char *tmpl, int replace)
{
    memset(op, 0, sizeof(*op));
    op->id = id;
    op->kind = kind;
    op->tier = dup_text(tier);
    op->author_name = dup_text("Ada");
    op->author_email = dup_text("ada@example.com");
    if (tmpl)
        op->tier_op.template_text = dup_text(tmpl);
    op->tier_op.replace = replace;
}

static void test_tier_put_and_delete(void **state)
{
    (void)state;
    fixture *f = open_fixture(0);
    ll_kust_intents *intents = new_intents();
    ll_operation op;
    char *tmpl, *text;

    tmpl = read_file(&f->ov, ROOT "/tier-templates/basic_tenant_template.yaml");
    assert_non_null(tmpl);
    tier_op(&op, 1, LL_OP_TIER_PUT, "gold", tmpl, 0);
    assert_int_equal(apply(f, intents, &op, NULL), 0);
    text = read_file(&f->ov, ROOT "/tier-templates/gold_tenant_template.yaml");
    assert_non_null(text);
    assert_string_equal(text, tmpl);
    free(text);
    text = read_file(&f->ov, ROOT "/tenants/gold/kustomization.yaml");
    assert_non_null(text);
    assert_non_null(strstr(text, "resources: []"));
    free(text);
    assert_int_equal(intent(intents, ROOT "/tenants/kustomization.yaml", "gold"), 1);
    ll_operation_clear(&op);

    /* Without a template: refused. */
    tier_op(&op, 2, LL_OP_TIER_PUT, "silver", NULL, 0);
    assert_int_equal(apply(f, intents, &op, NULL), LL_EINVALID);
    ll_operation_clear(&op);

    /* A tier whose folder holds a tenant cannot be deleted. */
    drop_intents(intents);
    intents = new_intents();
    ll_operation t;
    tenant_op(&t, 3, LL_OP_ONBOARD, "acme", "basic", "0.0.1", "{}");
    assert_int_equal(apply(f, intents, &t, NULL), 0);
    ll_operation_clear(&t);
    /* The overlay's changes become the base, as after a commit. */
    git_oid tree_id;
    int changed = 0;
    git_tree *tree = NULL;
    assert_int_equal(ll_overlay_write(&tree_id, &changed, &f->ov), 0);
    assert_int_equal(git_tree_lookup(&tree, f->repo, &tree_id), 0);
    ll_overlay_free(&f->ov);
    memset(&f->ov, 0, sizeof(f->ov));
    git_tree_free(f->seeded);
    f->seeded = tree;
    f->ov.repo = f->repo;
    f->ov.base = tree;
    tier_op(&op, 4, LL_OP_TIER_DELETE, "basic", NULL, 0);
    assert_int_equal(apply(f, intents, &op, NULL), LL_ECONFLICT);
    assert_true(ll_overlay_exists(&f->ov, ROOT "/tier-templates/basic_tenant_template.yaml"));
    ll_operation_clear(&op);

    /* An empty tier goes: template, folder, entry. */
    drop_intents(intents);
    intents = new_intents();
    tier_op(&op, 5, LL_OP_TIER_DELETE, "advanced", NULL, 0);
    assert_int_equal(apply(f, intents, &op, NULL), 0);
    assert_false(ll_overlay_exists(&f->ov, ROOT "/tier-templates/advanced_tenant_template.yaml"));
    assert_false(ll_overlay_exists(&f->ov, ROOT "/tenants/advanced/kustomization.yaml"));
    assert_int_equal(intent(intents, ROOT "/tenants/kustomization.yaml", "advanced"), 0);
    ll_operation_clear(&op);
    free(tmpl);
    drop_intents(intents);
    close_fixture(f);
}

static void test_rollout(void **state)
{
    (void)state;
    fixture *f = open_fixture(0);
    ll_kust_intents *intents = new_intents();
    ll_operation op, t;
    char *text;

    tenant_op(&t, 1, LL_OP_ONBOARD, "acme", "basic", "0.0.1", "{}");
    assert_int_equal(apply(f, intents, &t, NULL), 0);
    ll_operation_clear(&t);
    tenant_op(&t, 2, LL_OP_ONBOARD, "beta", "premium", "0.0.1", "{}");
    assert_int_equal(apply(f, intents, &t, NULL), 0);
    ll_operation_clear(&t);

    memset(&op, 0, sizeof(op));
    op.id = 3;
    op.kind = LL_OP_ROLLOUT;
    op.tier = dup_text("");
    op.rollout.rollout = 1;
    op.rollout.action = LL_OP_ROLLOUT_WAVE;
    op.rollout.wave = 1;
    op.rollout.version = dup_text("0.0.2");
    op.rollout.n_tenants = 2;
    op.rollout.tenants = calloc(2, sizeof(*op.rollout.tenants));
    op.rollout.tenants[0].id = dup_text("acme");
    op.rollout.tenants[0].tier = dup_text("basic");
    op.rollout.tenants[0].from = dup_text("0.0.1");
    op.rollout.tenants[0].to = dup_text("0.0.2");
    op.rollout.tenants[1].id = dup_text("gone"); /* its file vanished: left out */
    op.rollout.tenants[1].tier = dup_text("basic");
    op.rollout.tenants[1].to = dup_text("0.0.2");
    op.rollout.n_pools = 1;
    op.rollout.pools = calloc(1, sizeof(*op.rollout.pools));
    op.rollout.pools[0].name = dup_text("pool-1");
    op.rollout.pools[0].to = dup_text("0.0.2");
    drop_intents(intents);
    intents = new_intents();
    assert_int_equal(apply(f, intents, &op, NULL), 0);
    text = read_file(&f->ov, ROOT "/tenants/basic/acme.yaml");
    assert_non_null(strstr(text, "version: \"0.0.2\""));
    free(text);
    text = read_file(&f->ov, ROOT "/tenants/premium/beta.yaml"); /* not in the wave */
    assert_non_null(strstr(text, "version: \"0.0.1\""));
    free(text);
    text = read_file(&f->ov, ROOT "/pooled-envs/pool-1.yaml");
    assert_non_null(strstr(text, "version: \"0.0.2\""));
    free(text);
    assert_false(ll_overlay_exists(&f->ov, ROOT "/tenants/basic/gone.yaml"));
    assert_int_equal(intents->n, 0); /* in-place edits only */

    /* A tenant without a target version is refused, and undone. */
    size_t changes = f->ov.n;
    free(op.rollout.tenants[1].to);
    op.rollout.tenants[1].to = NULL;
    op.rollout.tenants[0].to[4] = '9';
    assert_int_equal(apply(f, intents, &op, NULL), LL_EINVALID);
    text = read_file(&f->ov, ROOT "/tenants/basic/acme.yaml");
    assert_non_null(strstr(text, "version: \"0.0.2\""));
    free(text);
    assert_int_equal(f->ov.n, changes);
    ll_operation_clear(&op);
    drop_intents(intents);
    close_fixture(f);
}

static void test_commit_message(void **state)
{
    (void)state;
    ll_operation ops[3];
    const ll_operation *applied[3] = {&ops[0], &ops[1], &ops[2]};
    ll_buf msg;

    tenant_op(&ops[0], 11, LL_OP_ONBOARD, "acme", "basic", "0.0.1", "{}");
    tenant_op(&ops[1], 12, LL_OP_UPDATE, "beta", "premium", "0.0.1", "{}");
    ops[1].t.from_tier = dup_text("basic");
    tier_op(&ops[2], 13, LL_OP_TIER_PUT, "gold", "x", 1);

    ll_buf_init(&msg, 1 << 16);
    ll_apply_commit_message(&msg, applied, 1);
    assert_string_equal(msg.data, "Onboard tenant acme (basic)\n\nLandlord-Operations: 11\n");
    ll_buf_free(&msg);

    ll_buf_init(&msg, 1 << 16);
    ll_apply_commit_message(&msg, applied, 3);
    assert_string_equal(msg.data, "Apply 3 tenant operations\n\n"
                                  "- Onboard tenant acme (basic)\n"
                                  "- Move tenant beta (basic -> premium)\n"
                                  "- Replace tier gold\n"
                                  "\nLandlord-Operations: 11 12 13\n");
    ll_buf_free(&msg);
    for (int i = 0; i < 3; i++)
        ll_operation_clear(&ops[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_onboard_flat),        cmocka_unit_test(test_onboard_sharded),
        cmocka_unit_test(test_offboard_and_move),   cmocka_unit_test(test_failing_op_undone),
        cmocka_unit_test(test_tier_put_and_delete), cmocka_unit_test(test_rollout),
        cmocka_unit_test(test_commit_message),
    };
    int rc;
    git_libgit2_init();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    git_libgit2_shutdown();
    return rc;
}

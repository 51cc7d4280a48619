/* batch.c - one batch: the operations applied on the remote head, one commit, one push.
 *
 * How it works.  build() applies each operation of the batch to an overlay
 * of the remote head's tree (apply.c); an operation that fails is undone
 * and fails alone.  The kustomization intents of the whole batch are then
 * applied at once, one edit per file; a file that cannot be edited fails
 * the operations that touched it and the batch is built again without
 * them.  gitops_run_batch writes the tree and one commit (with the
 * Landlord-Operations trailer), pushes it without force and, when the
 * branch moved, fetches, lets the registry follow the new head, and either
 * moves the batch onto it unchanged (move_batch: the new commits touched
 * nothing it changed or rendered from) or builds it again, with jittered
 * backoff, up to git-push-attempts times.  Push latencies are counted
 * here (ll_gitops_push_stats).
 *
 * Threads.  The writer thread only; the latency counters are read by
 * others under g->lock.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <git2.h>

#include "apply.h"
#include "gitops_int.h"
#include "landlord/error.h"
#include "landlord/kustomize.h"
#include "landlord/log.h"
#include "landlord/util.h"
#include "overlay.h"

const int ll_push_bounds_ms[LL_PUSH_BUCKETS] = {25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};

int gitops_make_commit(git_oid *out, ll_gitops *g, const git_oid *tree_id, git_commit *parent,
                       const char *author_name, const char *author_email, const char *message)
{
    git_signature *author = NULL, *committer = NULL;
    git_tree *tree = NULL;
    const git_commit *parents[] = {parent};
    int error = -1;

    if (git_signature_now(&committer, g->author_name, g->author_email) < 0 ||
        git_signature_now(&author, author_name, author_email) < 0) {
        error = gitops_git_fail(-1, "git: bad commit identity");
        goto done;
    }
    if (git_tree_lookup(&tree, g->repo, tree_id) < 0) {
        error = gitops_git_fail(-1, "git: cannot read the new tree");
        goto done;
    }
    if (git_commit_create(out, g->repo, NULL, author, committer, NULL, message, tree,
                          parent ? 1 : 0, parents) < 0) {
        error = gitops_git_fail(-1, "git: cannot write the commit");
        goto done;
    }
    error = 0;
done:
    git_tree_free(tree);
    git_signature_free(author);
    git_signature_free(committer);
    return error;
}

void gitops_jitter_sleep(ll_gitops *g, int attempt)
{
    int cap = 20 << (attempt < 6 ? attempt : 6); /* 20 ms .. 1.3 s */
    int ms = (int)(rand_r(&g->seed_rand) % (unsigned)cap);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Makes the batch's kustomization edits, one parse per file.  When a file
 * cannot be edited, *out_broken = {"error", "ops": [ids that touched it]}
 * and nothing is written for it. */
static int apply_kustomizations(json_t **out_broken, ll_overlay *ov, const json_t *plan,
                                const json_t *touched)
{
    const char *path;
    json_t *entries;

    *out_broken = NULL;
    json_object_foreach((json_t *)plan, path, entries)
    {
        json_t *add = json_array(), *remove = json_array(), *want;
        const char *entry;
        char *text = NULL, *out = NULL;
        size_t len = 0, out_len = 0;
        int changed = 0, error;

        json_object_foreach(entries, entry, want)
            json_array_append_new(json_is_true(want) ? add : remove, json_string(entry));
        error = ll_overlay_read(&text, &len, ov, path);
        if (error == 0 && !text)
            error = ll_error_set(LL_ECONFLICT, "%s is missing", path);
        if (error == 0)
            error = ll_kustomize_edit(&out, &out_len, &changed, text, len, add, remove);
        free(text);
        json_decref(add);
        json_decref(remove);
        if (error < 0) {
            char why[LL_ERROR_MSG_MAX + 1024];
            snprintf(why, sizeof(why), "%s: %s", path, ll_error_last()->message);
            ll_log_warn("msg=\"kustomization cannot be edited\" error=\"%s\"", why);
            *out_broken =
                json_pack("{s:s, s:O}", "error", why, "ops", json_object_get(touched, path));
            return 0;
        }
        if (!changed) {
            free(out);
            continue;
        }
        if ((error = ll_overlay_put(ov, path, out, out_len)) < 0)
            return error;
    }
    return 0;
}

/* One batch being built: the operations applied to an overlay of a base
 * commit's tree.  The operations are borrowed from the caller's list. */
typedef struct batch {
    ll_overlay ov;
    git_commit *head; /* the base commit, or NULL for an empty branch */
    git_tree *base;
    const ll_operation **applied; /* operations that applied */
    size_t n_applied;
    const ll_operation **effective; /* those that changed something (named in the trailer) */
    size_t n_effective;
    ll_op_results failed; /* outcomes of operations that failed alone */
} batch;

static void batch_free(batch *b)
{
    ll_overlay_free(&b->ov);
    git_tree_free(b->base);
    git_commit_free(b->head);
    free(b->applied);
    free(b->effective);
    ll_op_results_free(&b->failed);
    memset(b, 0, sizeof(*b));
}

/* An empty batch for up to n operations on the remote head. */
static int batch_begin(batch *b, ll_gitops *g, size_t n)
{
    int error;

    memset(b, 0, sizeof(*b));
    if (!(b->applied = calloc(n ? n : 1, sizeof(*b->applied))) ||
        !(b->effective = calloc(n ? n : 1, sizeof(*b->effective))))
        return ll_error_set(-1, "out of memory");
    if ((error = gitops_remote_head(&b->head, g)) < 0)
        return error;
    if (b->head && git_commit_tree(&b->base, b->head) < 0)
        return gitops_git_fail(-1, "git: cannot read the head tree");
    b->ov.repo = g->repo;
    b->ov.base = b->base;
    return 0;
}

/* Whether an operation's kustomization intents change the files as the
 * batch found them (members caches each file's entries). */
static int intents_change(ll_overlay *ov, json_t *members, const ll_kust_intents *intents)
{
    for (size_t k = 0; k < intents->n; k++) {
        const ll_kust_intent *in = &intents->v[k];
        json_t *set = json_object_get(members, in->path);
        if (!set) {
            char *text = NULL;
            size_t len = 0;
            json_t *list = NULL, *v;
            size_t i;
            set = json_object();
            if (ll_overlay_read(&text, &len, ov, in->path) == 0 && text &&
                ll_kustomize_resources(&list, text, len) == 0)
                json_array_foreach(list, i, v)
                    json_object_set(set, json_string_value(v), json_true());
            json_decref(list);
            free(text);
            json_object_set_new(members, in->path, set);
        }
        if (in->add != (json_object_get(set, in->entry) != NULL))
            return 1;
    }
    return 0;
}

/* Adds an operation's intents to the batch's plan ({path: {entry: add}},
 * the later operation winning) and its id to touched ({path: [ids]}). */
static void plan_intents(json_t *plan, json_t *touched, const ll_kust_intents *intents,
                         long long id)
{
    for (size_t k = 0; k < intents->n; k++) {
        const ll_kust_intent *in = &intents->v[k];
        json_t *p = json_object_get(plan, in->path), *t = json_object_get(touched, in->path);
        if (!p) {
            json_object_set_new(plan, in->path, p = json_object());
            json_object_set_new(touched, in->path, t = json_array());
        }
        json_object_set_new(p, in->entry, json_boolean(in->add));
        if (json_array_size(t) == 0 ||
            json_integer_value(json_array_get(t, json_array_size(t) - 1)) != id)
            json_array_append_new(t, json_integer(id));
    }
}

/* The tenant as the log names it: "-" for a rollout, empty for a tier
 * change (whose row names the tenant ''). */
static const char *logged_tenant(const ll_operation *op)
{
    if (op->tenant)
        return op->tenant;
    return op->kind == LL_OP_TIER_PUT || op->kind == LL_OP_TIER_DELETE ? "" : "-";
}

/* Applies op to the batch's overlay.  When it fails its partial changes
 * are taken back and it fails alone (b->failed); when it applies, its
 * kustomization intents join the batch's plan.  Only running out of
 * memory is an error. */
static int apply_one(batch *b, const ll_apply_ctx *ctx, const ll_operation *op, json_t *plan,
                     json_t *touched, json_t *members)
{
    ll_op_failure why = LL_OP_FAILURE_CONFLICT;
    ll_kust_intents intents = {0};
    size_t puts = b->ov.puts;
    int error = 0;

    ll_overlay_begin(&b->ov);
    if (ll_apply_op(&why, ctx, &b->ov, &intents, op) < 0) {
        ll_overlay_undo(&b->ov);
        ll_log_warn("msg=\"operation failed\" op=%lld tenant=%s error=\"%s\"", op->id,
                    logged_tenant(op), ll_error_last()->message);
        error = ll_op_results_failed(&b->failed, op->id, why, ll_error_last()->message);
        goto done;
    }
    ll_overlay_keep(&b->ov);
    b->applied[b->n_applied++] = op;
    /* A replayed operation whose change is already there (pushed just
     * before a crash) is not named again. */
    if (b->ov.puts != puts || intents_change(&b->ov, members, &intents))
        b->effective[b->n_effective++] = op;
    plan_intents(plan, touched, &intents, op->id);
done:
    ll_kust_intents_free(&intents);
    return error;
}

/* Applies the n operations of work to the batch, then edits the
 * kustomizations they touch, once each (*out_broken: see
 * apply_kustomizations). */
static int apply_all(json_t **out_broken, batch *b, const ll_apply_ctx *ctx,
                     const ll_operation *const *work, size_t n)
{
    json_t *plan = json_object(), *touched = json_object(), *members = json_object();
    int error = 0;

    *out_broken = NULL;
    for (size_t i = 0; i < n && error == 0; i++)
        error = apply_one(b, ctx, work[i], plan, touched, members);
    if (error == 0)
        error = apply_kustomizations(out_broken, &b->ov, plan, touched);
    json_decref(plan);
    json_decref(touched);
    json_decref(members);
    return error;
}

/* A kustomization that cannot be edited fails the operations that touch
 * it (broken: {"error", "ops": [ids]}): they leave work and go to kfailed. */
static int drop_broken(const ll_operation **work, size_t *n_work, ll_op_results *kfailed,
                       const json_t *broken)
{
    const char *why = json_string_value(json_object_get(broken, "error"));
    const json_t *bad;
    size_t i;
    int error;

    json_array_foreach(json_object_get(broken, "ops"), i, bad)
    {
        long long id = (long long)json_integer_value(bad);
        for (size_t w = 0; w < *n_work; w++) {
            if (work[w]->id == id) {
                memmove(&work[w], &work[w + 1], (*n_work - w - 1) * sizeof(*work));
                (*n_work)--;
                break;
            }
        }
        if ((error = ll_op_results_failed(kfailed, id, LL_OP_FAILURE_CONFLICT, why)) < 0)
            return error;
    }
    return 0;
}

/* Applies the operations of work on the remote head.  Operations that fail
 * alone go to b->failed; operations whose kustomization cannot be edited go
 * to kfailed and leave work, and the batch is built again without them. */
static int build(batch *b, ll_gitops *g, const ll_operation **work, size_t *n_work,
                 ll_op_results *kfailed)
{
    ll_tier_catalogue *tiers = ll_gitops_tiers(g);
    json_t *broken = NULL;
    ll_apply_ctx ctx = {g->root, g->sharded, tiers, g->tier_kinds, g->flux_namespace};
    int error;

    for (;;) {
        if ((error = batch_begin(b, g, *n_work)) < 0 ||
            (error = apply_all(&broken, b, &ctx, work, *n_work)) < 0)
            break;
        if (!broken)
            goto done;
        error = drop_broken(work, n_work, kfailed, broken);
        json_decref(broken);
        broken = NULL;
        batch_free(b);
        if (error < 0)
            break;
    }
    batch_free(b);
done:
    ll_tier_catalogue_unref(tiers);
    return error;
}

static int same_entry(git_tree *a, git_tree *b, const char *path)
{
    git_tree_entry *ea = NULL, *eb = NULL;
    int ha = a && git_tree_entry_bypath(&ea, a, path) == 0;
    int hb = b && git_tree_entry_bypath(&eb, b, path) == 0;
    int same = ha == hb && (!ha || git_oid_equal(git_tree_entry_id(ea), git_tree_entry_id(eb)));
    git_tree_entry_free(ea);
    git_tree_entry_free(eb);
    return same;
}

/* Moves the batch onto new_head when the commits in between touched
 * nothing it changed or rendered from (its files, its kustomizations, the
 * tier templates): then its changes stand as they are, with no rebuild.
 * Returns 1 when moved. */
static int move_batch(batch *b, ll_gitops *g, git_commit *new_head)
{
    git_tree *tree = NULL;
    char templates[600];

    if (!new_head || git_commit_tree(&tree, new_head) < 0)
        return 0;
    snprintf(templates, sizeof(templates), "%s/tier-templates", g->root);
    int ok = same_entry(b->base, tree, templates);
    for (size_t i = 0; ok && i < b->ov.n; i++)
        ok = same_entry(b->base, tree, b->ov.changes[i].path);
    /* Where a tenant's file goes depends on whether it exists in the other
     * layout, so those paths count too. */
    for (size_t i = 0; ok && i < b->n_applied; i++) {
        const ll_operation *op = b->applied[i];
        if (!op->tenant)
            continue; /* a rollout: it edits files in place, found where they are */
        const char *tiers[] = {op->tier, op->t.from_tier};
        for (int t = 0; ok && t < 2; t++) {
            char path[1024];
            if (!tiers[t])
                continue;
            ll_tenant_file_path(path, sizeof(path), g->root, !g->sharded, tiers[t], op->tenant);
            ok = same_entry(b->base, tree, path);
        }
    }
    if (!ok) {
        git_tree_free(tree);
        return 0;
    }
    git_tree_free(b->base);
    git_commit_free(b->head);
    b->base = tree;
    b->ov.base = tree;
    git_commit_dup(&b->head, new_head);
    return 1;
}

/* Writes the batch's tree and, when it changed the head's, a commit of it
 * by the batch's author naming the operations that changed something. */
static int commit_batch(git_oid *out, int *changed, ll_gitops *g, batch *b,
                        const ll_operation *first, size_t n_work, int64_t t0)
{
    git_oid tree_id;
    int64_t t_write = ll_monotonic_ms();
    ll_buf msg;
    int error;

    if ((error = ll_overlay_write(&tree_id, changed, &b->ov)) < 0)
        return error;
    ll_log_debug("msg=\"applied\" ops=%zu apply_ms=%lld write_ms=%lld", n_work,
                 (long long)(t_write - t0), (long long)(ll_monotonic_ms() - t_write));
    if (!*changed)
        return 0;
    ll_buf_init(&msg, 1 << 20);
    if (b->n_effective)
        ll_apply_commit_message(&msg, b->effective, b->n_effective);
    else
        ll_apply_commit_message(&msg, b->applied, b->n_applied);
    error = gitops_make_commit(out, g, &tree_id, b->head, first->author_name, first->author_email,
                               msg.data);
    ll_buf_free(&msg);
    return error;
}

/* Pushes commit, counting a successful push's latency. */
static int push_timed(ll_gitops *g, const git_oid *commit)
{
    int64_t t_push = ll_monotonic_ms();
    int error = gitops_push(g, commit);
    int64_t push_ms = ll_monotonic_ms() - t_push;

    ll_log_debug("msg=\"pushed\" ms=%lld", (long long)push_ms);
    if (error == 0) {
        int k = 0;
        while (k < LL_PUSH_BUCKETS && push_ms > ll_push_bounds_ms[k])
            k++;
        pthread_mutex_lock(&g->lock);
        g->push_buckets[k]++;
        g->push_count++;
        g->push_sum_ms += push_ms;
        pthread_mutex_unlock(&g->lock);
    }
    return error;
}

/* The push was refused because the branch moved: back off, fetch, let the
 * registry follow, then move the batch onto the new head or have it built
 * again (*built 0).  0 to push again; LL_EUPSTREAM when the branch did not
 * move after all (the remote refused for another reason: an outage). */
static int after_rejected(int *built, ll_gitops *g, batch *b, int attempt)
{
    char refused[LL_ERROR_MSG_MAX];
    git_commit *now = NULL;
    int error;

    snprintf(refused, sizeof(refused), "%s", ll_error_last()->message);
    ll_log_info("msg=\"push rejected: the branch moved; fetching and rebuilding\" "
                "attempt=%d",
                attempt + 1);
    /* Back off first, then fetch and move or rebuild at once: work on a
     * head fetched before the pause would lose again. */
    if (attempt > 0)
        gitops_jitter_sleep(g, attempt);
    if ((error = gitops_fetch(g)) < 0 || (error = gitops_follow_head(g)) < 0 ||
        (error = gitops_remote_head(&now, g)) < 0)
        return error;
    if (now && b->head && git_oid_equal(git_commit_id(now), git_commit_id(b->head))) {
        /* The branch did not move: the remote refused for another reason
         * (a stale lock, a hook).  That is an outage. */
        git_commit_free(now);
        return ll_error_set(LL_EUPSTREAM, "git: the remote refused the push: %s", refused);
    }
    if (!move_batch(b, g, now)) {
        batch_free(b);
        *built = 0;
    }
    git_commit_free(now);
    return 0;
}

/* The batch's commit was pushed: it is the new head the registry knows
 * (its own commit) and the tier catalogue is read from it. */
static void pushed(ll_gitops *g, batch *b, const git_oid *commit)
{
    if (g->have_scanned && b->head && git_oid_equal(&g->scanned, git_commit_id(b->head)))
        git_oid_cpy(&g->scanned, commit);
    git_commit_free(b->head);
    b->head = NULL;
    if (git_commit_lookup(&b->head, g->repo, commit) == 0)
        gitops_publish_tiers(g, b->head);
}

/* Outcomes: every applied operation is in commit sha; then those that
 * failed alone, then those whose kustomization could not be edited. */
static int record_results(ll_op_results *results, batch *b, ll_op_results *kfailed, const char *sha)
{
    int error = 0;
    for (size_t i = 0; i < b->n_applied && error == 0; i++)
        error = ll_op_results_ok(results, b->applied[i]->id, sha);
    if (error == 0)
        error = ll_op_results_take(results, &b->failed);
    if (error == 0)
        error = ll_op_results_take(results, kfailed);
    return error;
}

/* Applies ops on the remote head, commits and pushes; fills results.  On a
 * moved branch fetches and follows, then moves the batch onto the new head
 * (or rebuilds it when the new commits touched what it changed) and pushes
 * again.  Returns 0 when results hold every op; LL_EUPSTREAM (remote
 * unreachable) or LL_ECONFLICT (the branch kept moving) leave them queued. */
int gitops_run_batch(ll_op_results *results, ll_gitops *g, const ll_operation *ops, size_t n)
{
    const ll_operation **work = calloc(n ? n : 1, sizeof(*work));
    ll_op_results kfailed = {0};
    batch b = {0};
    size_t n_work = n;
    int error = -1, built = 0;

    if (!work)
        return ll_error_set(-1, "out of memory");
    for (size_t i = 0; i < n; i++)
        work[i] = &ops[i];
    for (int attempt = 0; attempt < g->push_attempts; attempt++) {
        git_oid commit_id;
        char sha[GIT_OID_HEXSZ + 1] = "";
        int changed = 0;
        int64_t t0 = ll_monotonic_ms();

        if (!built && (error = build(&b, g, work, &n_work, &kfailed)) < 0)
            break;
        built = 1;
        if ((error = commit_batch(&commit_id, &changed, g, &b, &ops[0], n_work, t0)) < 0)
            break;
        if (changed && (error = push_timed(g, &commit_id)) == LL_ECONFLICT) {
            if ((error = after_rejected(&built, g, &b, attempt)) < 0)
                break;
            error = LL_ECONFLICT;
            continue;
        }
        if (error < 0)
            break;
        if (changed) {
            git_oid_tostr(sha, sizeof(sha), &commit_id);
            pushed(g, &b, &commit_id);
        } else if (b.head) {
            git_oid_tostr(sha, sizeof(sha), git_commit_id(b.head));
        }
        if ((error = record_results(results, &b, &kfailed, sha)) < 0)
            break;
        gitops_set_status(g, b.head ? git_commit_id(b.head) : NULL, NULL);
        break;
    }
    if (error == LL_ECONFLICT)
        ll_error_set(LL_ECONFLICT, "git: the branch kept moving: %d push attempts refused",
                     g->push_attempts);
    batch_free(&b);
    ll_op_results_free(&kfailed);
    free(work);
    return error;
}

void ll_gitops_push_stats(long long buckets[LL_PUSH_BUCKETS + 1], long long *count,
                          long long *sum_ms, ll_gitops *g)
{
    pthread_mutex_lock(&g->lock);
    memcpy(buckets, g->push_buckets, sizeof(g->push_buckets));
    *count = g->push_count;
    *sum_ms = g->push_sum_ms;
    pthread_mutex_unlock(&g->lock);
}

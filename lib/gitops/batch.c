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

/* An operation's outcome on the failing side: why, and the error class. */
static json_t *failure(long long id, const char *type)
{
    return json_pack("{s:I, s:b, s:s, s:s}", "id", (json_int_t)id, "ok", 0, "error",
                     ll_error_last()->message, "error_type", type);
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
 * commit's tree. */
typedef struct batch {
    ll_overlay ov;
    git_commit *head; /* the base commit, or NULL for an empty branch */
    git_tree *base;
    json_t *applied;   /* operations that applied */
    json_t *effective; /* those that changed something (named in the trailer) */
    json_t *failed;    /* outcomes of operations that failed alone */
} batch;

static void batch_free(batch *b)
{
    ll_overlay_free(&b->ov);
    git_tree_free(b->base);
    git_commit_free(b->head);
    json_decref(b->applied);
    json_decref(b->effective);
    json_decref(b->failed);
    memset(b, 0, sizeof(*b));
}

/* Whether an operation's kustomization intents change the file as the batch
 * found it (members caches each file's entries). */
static int intents_change(ll_overlay *ov, json_t *members, const json_t *intents)
{
    const char *path, *entry;
    json_t *entries, *want;

    json_object_foreach((json_t *)intents, path, entries)
    {
        json_t *set = json_object_get(members, path);
        if (!set) {
            char *text = NULL;
            size_t len = 0;
            json_t *list = NULL, *v;
            size_t i;
            set = json_object();
            if (ll_overlay_read(&text, &len, ov, path) == 0 && text &&
                ll_kustomize_resources(&list, text, len) == 0)
                json_array_foreach(list, i, v)
                    json_object_set(set, json_string_value(v), json_true());
            json_decref(list);
            free(text);
            json_object_set_new(members, path, set);
        }
        json_object_foreach(entries, entry, want)
        {
            if (json_is_true(want) != (json_object_get(set, entry) != NULL))
                return 1;
        }
    }
    return 0;
}

/* Applies the operations of work on the remote head.  Operations that fail
 * alone go to b->failed; operations whose kustomization cannot be edited go
 * to kfailed and leave work, and the batch is built again without them. */
static int build(batch *b, ll_gitops *g, json_t *work, json_t *kfailed)
{
    int error;

    for (;;) {
        json_t *plan = json_object(), *touched = json_object(), *members = json_object(), *op,
               *broken = NULL;
        size_t i;

        memset(b, 0, sizeof(*b));
        b->applied = json_array();
        b->effective = json_array();
        b->failed = json_array();
        if ((error = gitops_remote_head(&b->head, g)) < 0)
            goto fail;
        if (b->head && git_commit_tree(&b->base, b->head) < 0) {
            error = gitops_git_fail(-1, "git: cannot read the head tree");
            goto fail;
        }
        b->ov.repo = g->repo;
        b->ov.base = b->base;
        json_array_foreach(work, i, op)
        {
            const char *why = "conflict", *path;
            long long id = json_integer_value(json_object_get(op, "id"));
            json_t *intents = json_object(), *entries;
            size_t puts = b->ov.puts;
            ll_overlay_begin(&b->ov);
            if (gitops_apply_op(g, &b->ov, intents, op, &why) < 0) {
                /* Fails alone: its partial changes are taken back. */
                ll_overlay_undo(&b->ov);
                json_array_append_new(b->failed, failure(id, why));
                ll_log_warn("msg=\"operation failed\" op=%lld tenant=%s error=\"%s\"", id,
                            op_str(op, "tenant") ? op_str(op, "tenant") : "-",
                            ll_error_last()->message);
                json_decref(intents);
                continue;
            }
            ll_overlay_keep(&b->ov);
            json_array_append(b->applied, op);
            /* A replayed operation whose change is already there (pushed just
             * before a crash) is not named again. */
            if (b->ov.puts != puts || intents_change(&b->ov, members, intents))
                json_array_append(b->effective, op);
            json_object_foreach(intents, path, entries)
            {
                json_t *p = json_object_get(plan, path), *t = json_object_get(touched, path);
                if (!p) {
                    json_object_set_new(plan, path, p = json_object());
                    json_object_set_new(touched, path, t = json_array());
                }
                json_object_update(p, entries); /* the later operation wins */
                json_array_append_new(t, json_integer(id));
            }
            json_decref(intents);
        }
        error = apply_kustomizations(&broken, &b->ov, plan, touched);
        json_decref(plan);
        json_decref(touched);
        json_decref(members);
        if (error < 0)
            goto fail;
        if (!broken)
            return 0;
        /* A kustomization that cannot be edited fails the operations that
         * touch it; the rest is built again without them. */
        json_t *why = json_object_get(broken, "error"), *bad;
        json_array_foreach(json_object_get(broken, "ops"), i, bad)
        {
            for (size_t w = 0; w < json_array_size(work); w++) {
                if (json_integer_value(json_object_get(json_array_get(work, w), "id")) ==
                    json_integer_value(bad)) {
                    json_array_remove(work, w);
                    break;
                }
            }
            json_array_append_new(kfailed, json_pack("{s:O, s:b, s:O, s:s}", "id", bad, "ok", 0,
                                                     "error", why, "error_type", "conflict"));
        }
        json_decref(broken);
        batch_free(b);
    }
fail:
    batch_free(b);
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
    for (size_t i = 0; ok && i < json_array_size(b->applied); i++) {
        const json_t *op = json_array_get(b->applied, i);
        if (!op_str(op, "tenant"))
            continue; /* a rollout: it edits files in place, found where they are */
        const char *tiers[] = {
            op_str(op, "tier"),
            json_string_value(json_object_get(json_object_get(op, "payload"), "from_tier"))};
        for (int t = 0; ok && t < 2; t++) {
            char path[1024];
            if (!tiers[t])
                continue;
            ll_tenant_file_path(path, sizeof(path), g->root, !g->sharded, tiers[t],
                                op_str(op, "tenant"));
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

/* Applies ops on the remote head, commits and pushes; fills results.  On a
 * moved branch fetches and follows, then moves the batch onto the new head
 * (or rebuilds it when the new commits touched what it changed) and pushes
 * again.  Returns 0 when results hold every op; LL_EUPSTREAM (remote
 * unreachable) or LL_ECONFLICT (the branch kept moving) leave them queued. */
int gitops_run_batch(ll_gitops *g, const json_t *ops, json_t *results)
{
    const json_t *author = json_object_get(json_array_get(ops, 0), "author");
    json_t *work = json_array(), *kfailed = json_array(), *op;
    batch b = {0};
    int error = -1, built = 0;
    size_t i;

    json_array_extend(work, (json_t *)ops);
    for (int attempt = 0; attempt < g->push_attempts; attempt++) {
        git_oid tree_id, commit_id;
        char sha[GIT_OID_HEXSZ + 1] = "";
        int changed = 0;
        ll_buf msg;

        int64_t t0 = ll_monotonic_ms();
        if (!built && (error = build(&b, g, work, kfailed)) < 0)
            break;
        built = 1;
        int64_t t_write = ll_monotonic_ms();
        if ((error = ll_overlay_write(&tree_id, &changed, &b.ov)) < 0)
            break;
        ll_log_debug("msg=\"applied\" ops=%zu apply_ms=%lld write_ms=%lld", json_array_size(work),
                     (long long)(t_write - t0), (long long)(ll_monotonic_ms() - t_write));
        if (!changed) {
            if (b.head)
                git_oid_tostr(sha, sizeof(sha), git_commit_id(b.head));
        } else {
            ll_buf_init(&msg, 1 << 20);
            gitops_commit_message(&msg, json_array_size(b.effective) ? b.effective : b.applied);
            error = gitops_make_commit(
                &commit_id, g, &tree_id, b.head, json_string_value(json_object_get(author, "name")),
                json_string_value(json_object_get(author, "email")), msg.data);
            ll_buf_free(&msg);
            if (error < 0)
                break;
            int64_t t_push = ll_monotonic_ms();
            error = gitops_push(g, &commit_id);
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
            if (error == LL_ECONFLICT) {
                char refused[LL_ERROR_MSG_MAX];
                git_commit *now = NULL;
                snprintf(refused, sizeof(refused), "%s", ll_error_last()->message);
                ll_log_info("msg=\"push rejected: the branch moved; fetching and rebuilding\" "
                            "attempt=%d",
                            attempt + 1);
                /* Back off first, then fetch and move or rebuild at once: work
                 * on a head fetched before the pause would lose again. */
                if (attempt > 0)
                    gitops_jitter_sleep(g, attempt);
                if ((error = gitops_fetch(g)) < 0 || (error = gitops_follow_head(g, NULL)) < 0 ||
                    (error = gitops_remote_head(&now, g)) < 0)
                    break;
                if (now && b.head && git_oid_equal(git_commit_id(now), git_commit_id(b.head))) {
                    /* The branch did not move: the remote refused for another
                     * reason (a stale lock, a hook).  That is an outage. */
                    git_commit_free(now);
                    error =
                        ll_error_set(LL_EUPSTREAM, "git: the remote refused the push: %s", refused);
                    break;
                }
                if (!move_batch(&b, g, now)) {
                    batch_free(&b);
                    built = 0;
                }
                git_commit_free(now);
                error = LL_ECONFLICT;
                continue;
            }
            if (error < 0)
                break;
            git_oid_tostr(sha, sizeof(sha), &commit_id);
            /* Our own commit: the registry already knows what it holds. */
            if (g->have_scanned && b.head && git_oid_equal(&g->scanned, git_commit_id(b.head)))
                git_oid_cpy(&g->scanned, &commit_id);
            git_commit_free(b.head);
            b.head = NULL;
            if (git_commit_lookup(&b.head, g->repo, &commit_id) == 0)
                gitops_publish_tiers(g, b.head);
        }
        json_array_foreach(b.applied, i, op)
        {
            json_array_append_new(results,
                                  json_pack("{s:O, s:b, s:s}", "id", json_object_get(op, "id"),
                                            "ok", 1, "commit", sha));
        }
        json_array_extend(results, b.failed);
        json_array_extend(results, kfailed);
        gitops_set_status(g, b.head ? git_commit_id(b.head) : NULL, NULL);
        error = 0;
        break;
    }
    if (error == LL_ECONFLICT)
        ll_error_set(LL_ECONFLICT, "git: the branch kept moving: %d push attempts refused",
                     g->push_attempts);
    batch_free(&b);
    json_decref(work);
    json_decref(kfailed);
    return error;
}

void ll_gitops_push_stats(ll_gitops *g, long long buckets[LL_PUSH_BUCKETS + 1], long long *count,
                          long long *sum_ms)
{
    pthread_mutex_lock(&g->lock);
    memcpy(buckets, g->push_buckets, sizeof(g->push_buckets));
    *count = g->push_count;
    *sum_ms = g->push_sum_ms;
    pthread_mutex_unlock(&g->lock);
}

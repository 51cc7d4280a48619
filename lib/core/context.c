/* context.c - what the core's use cases share: the thread's registry
 * connection, field errors, the commit author of the current request, and
 * the git writer's progress that callers wait on.
 *
 * Every use case file (tenants.c, tier_views.c, operations.c, access.c,
 * events.c, releases.c, rollouts.c) calls in here; nothing here calls a use
 * case or the composition root (core.c), so the core's files form no
 * circle.
 *
 * Threads: each thread gets its own registry connection through a pthread
 * key (made by ll_core_context_init, closed with the thread or by
 * ll_core_context_free for the thread that frees the core).  The author's
 * strings live in the caller's ll_author_buf.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "landlord/auth.h"
#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/gitops.h"

#include "core_int.h"

static void close_registry(void *r)
{
    ll_registry_close(r);
}

int ll_core_context_init(ll_core *c)
{
    if (pthread_key_create(&c->reg_key, close_registry) != 0)
        return ll_error_set(-1, "cannot create the registry's thread key");
    c->reg_key_made = 1;
    return 0;
}

void ll_core_context_free(ll_core *c)
{
    ll_registry *r;
    if (!c->reg_key_made)
        return;
    if ((r = pthread_getspecific(c->reg_key))) {
        ll_registry_close(r);
        pthread_setspecific(c->reg_key, NULL);
    }
    pthread_key_delete(c->reg_key);
    c->reg_key_made = 0;
}

ll_registry *ll_core_registry(ll_core *c)
{
    ll_registry *r = pthread_getspecific(c->reg_key);
    if (r)
        return r;
    if (ll_registry_open(&r, c->db_path) < 0)
        return NULL;
    pthread_setspecific(c->reg_key, r);
    return r;
}

int ll_core_field_error(const char *field, const char *fmt, ...)
{
    char msg[LL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ll_error_set(LL_EINVALID, "%s", msg);
    ll_error_field(field);
    return LL_EINVALID;
}

unsigned long long ll_core_progress(ll_core *c)
{
    return ll_gitops_generation(c->git);
}

void ll_core_wait_progress(ll_core *c, unsigned long long seen, int64_t deadline_ms)
{
    ll_gitops_wait_progress(c->git, seen, deadline_ms);
}

int ll_core_degraded(ll_core *c)
{
    return ll_gitops_degraded(c->git);
}

/* The commit author of a request: the caller the HTTP layer authenticated
 * (name and email claims, else sub and sub@<git-author-domain>), or the
 * configured identity for work no caller asked for.  The strings live in
 * buf, which the caller keeps while it uses the author. */
ll_registry_author ll_core_author(const ll_core *c, ll_author_buf *buf)
{
    const ll_caller *caller = ll_caller_current();
    ll_registry_author a = {c->cfg.git_author_name, c->cfg.git_author_email};
    if (caller) {
        const char *domain = c->cfg.git_author_domain;
        const char *at = strrchr(c->cfg.git_author_email, '@');
        if (!domain[0])
            domain = at && at[1] ? at + 1 : "localhost";
        ll_caller_author(buf->name, sizeof(buf->name), buf->email, sizeof(buf->email), caller,
                         domain);
        a.name = buf->name;
        a.email = buf->email;
    }
    return a;
}

/* gitops.h - the one writer of the GitOps repository.
 *
 * landlord keeps a bare clone (<data>/work.git) of the remote.  One writer
 * thread owns it: it takes queued operations from the registry's outbox,
 * applies them to the remote head's tree in memory (no working tree), makes
 * one commit, pushes it, and records the outcome.  A rejected push (someone
 * else moved the branch) is answered with fetch and rebuild.  Other threads
 * only notify the writer, wait for an operation, and read snapshots.
 *
 * Ownership, unless a prototype says otherwise: pointer arguments are
 * borrowed for the call; `json_t *` results are new references.
 */
#ifndef LANDLORD_GITOPS_H
#define LANDLORD_GITOPS_H

#include <stdint.h>
#include <jansson.h>

#include "landlord/error.h"
#include "landlord/registry.h"
#include "landlord/tiers.h"

typedef struct ll_gitops ll_gitops;

typedef struct ll_gitops_options {
    const char *workdir;     /* the local bare clone, created if missing */
    const char *url;         /* the remote: a path or URL */
    const char *branch;      /* e.g. "main" */
    const char *root;        /* e.g. "application-plane/production" */
    const char *author_name; /* commit identity */
    const char *author_email;
    const char *default_release; /* release of the seeded pool environments */
    const char *tier_kinds;      /* the tier policy's kinds (LL_TIER_KINDS_DEFAULT), or NULL */
    const char *flux_namespace;  /* where tier templates put HelmReleases, or NULL */
    const char *db_path;         /* the registry; the writer opens its own connection */
    int batch_size;              /* operations per commit */
    int push_attempts;           /* pushes per batch while the branch keeps moving */
    int linger_ms;               /* after a batch of several, wait this long for more */
    int poll_interval_s;         /* fetch (and follow the repository) when idle this long */
    int timeout_s;               /* http(s), ssh: connect, and each read or write, within this */
    int sharded;                 /* new tenant files go to tenants/<tier>/<shard>/;
                                  * -1: decided by the repository (ll_gitops_sharded) */
    const char *username;        /* for http(s) and ssh remotes, or NULL */
    const char *password;        /* the password or token itself (never logged), or NULL */
    const char *ca_file;         /* PEM bundle for https, or NULL */
    const char *ssh_key_file;    /* ed25519 private key for ssh://, or NULL */
    const char *ssh_host_key;    /* pinned "SHA256:<base64>" host key for ssh://, or NULL */
    int import_only;             /* never seed or write: `landlord import` */
    int own_remote;              /* url is landlord's embedded default remote */
    /* Called on the writer's thread after every batch (the progress counter
     * moved), or NULL. */
    void (*on_progress)(void *payload);
    void *on_progress_payload;
    /* Called on the writer's thread after packs of the clone were merged
     * and removed: other handles on the clone should be opened anew (they
     * hold the removed files open), or NULL. */
    void (*on_repacked)(void *payload);
} ll_gitops_options;

/* Opens the clone and the writer's registry connection, fetches the branch,
 * seeds the remote with the default layout when the branch is missing or has
 * no root folder (never with import_only), makes the registry follow the
 * repository (adoption, drift), and reads the tier catalogue.  Does not start
 * the writer thread.  When the remote cannot be reached: with a head from an
 * earlier run, opens degraded (writes queue); without one, LL_EUPSTREAM.  *out: a new handle
 * (ll_gitops_free); opts' strings are copied, its callbacks and payload are kept until
 * ll_gitops_stop. */
int ll_gitops_open(ll_gitops **out, const ll_gitops_options *opts);

/* Where the layout puts a tenant's file: flat at <root>/tenants/<tier>/<id>.yaml
 * (the reference's layout), sharded at <root>/tenants/<tier>/<xx>/<id>.yaml
 * with xx the first byte of SHA-256(id) in hex. */
void ll_tenant_file_path(char *out, size_t cap, const char *root, int sharded, const char *tier,
                         const char *id);

/* Starts the writer thread. */
int ll_gitops_start(ll_gitops *g);

/* Stops the writer thread (after its current batch) and frees everything. */
void ll_gitops_free(ll_gitops *g);

/* Wakes the writer: operations are queued. */
void ll_gitops_notify(ll_gitops *g);

/* Ends the writer and packer threads (their callbacks then stop); the
 * handle stays usable for reads of its snapshots.  ll_gitops_free does it
 * too. */
void ll_gitops_stop(ll_gitops *g);

/* 1 when new tenant files go to shard folders: as configured, or for -1
 * (git-layout auto) as ll_gitops_open decided from the repository. */
int ll_gitops_sharded(const ll_gitops *g);

/* The progress counter: it moves after every batch (pushed or not). */
unsigned long long ll_gitops_generation(ll_gitops *g);

/* Sleeps until the counter differs from seen, deadline_ms (monotonic)
 * passes, or the writer stops. */
void ll_gitops_wait_progress(ll_gitops *g, unsigned long long seen, int64_t deadline_ms);

/* 1 while the remote is unreachable. */
int ll_gitops_degraded(ll_gitops *g);

/* The remote URL without any user:password@ part (borrowed). */
const char *ll_gitops_url(const ll_gitops *g);

/* The tier catalogue of the current head (see tiers.h): a new reference
 * (ll_tier_catalogue_unref), NULL before the first head is read. */
ll_tier_catalogue *ll_gitops_tiers(ll_gitops *g);

/* The remote as the writer last found it: a value, copied out. */
typedef struct ll_git_health {
    int known;        /* 0 until the writer first reached or failed to reach the remote */
    int degraded;     /* the remote is unreachable (writes queue) */
    char head[41];    /* the remote head, "" when unknown */
    char branch[256]; /* cut to fit */
    char url[1100];   /* without credentials; cut to fit */
    char error[LL_ERROR_MSG_MAX]; /* why degraded, "" when not */
} ll_git_health;

/* Copies the remote's state into *out. */
void ll_gitops_health(ll_git_health *out, ll_gitops *g);

/* Latency of successful pushes: buckets[i] counts pushes of at most
 * ll_push_bounds_ms[i] ms (and above the previous bound); buckets[LL_PUSH_BUCKETS]
 * the slower ones. */
#define LL_PUSH_BUCKETS 9
extern const int ll_push_bounds_ms[LL_PUSH_BUCKETS];
void ll_gitops_push_stats(long long buckets[LL_PUSH_BUCKETS + 1], long long *count,
                          long long *sum_ms, ll_gitops *g);

#endif

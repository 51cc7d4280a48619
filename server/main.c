/* main.c - the landlord binary: arguments, configuration, global library
 * initialisation, and the signal thread.
 *
 * Libraries are initialised before any thread starts.  SIGINT and SIGTERM
 * are blocked in every thread and taken by one signal thread with sigwait().
 * Before the server is up (migrations, cloning a large remote, adoption) a
 * signal ends the process at once: nothing has been acknowledged yet, and
 * SQLite and git writes are atomic.  Once serving, a signal makes shutdown
 * an ordinary function call: stop accepting HTTP (waiting writes answer
 * first), stop the git writer after its batch, close the registry.
 */
#include <curl/curl.h>
#include <git2.h>
#include <libssh2.h>
#include <pthread.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "landlord/auth.h"
#include "landlord/config.h"
#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "routes.h"

extern char **environ;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sigset_t set;
    int serving, signal;
} sigs = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0}}, 0, 0};

static void *signal_main(void *arg)
{
    int sig = 0;
    (void)arg;
    sigwait(&sigs.set, &sig);
    pthread_mutex_lock(&sigs.lock);
    if (!sigs.serving) {
        /* Still starting: nothing to hand over. */
        fprintf(stderr, "landlord: stopped by signal %d while starting\n", sig);
        _exit(1);
    }
    sigs.signal = sig;
    pthread_cond_signal(&sigs.cond);
    pthread_mutex_unlock(&sigs.lock);
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out,
            "landlord %s - SaaS tenant management on Kubernetes through GitOps\n\n"
            "usage: landlord <command> [options]\n\n"
            "commands:\n"
            "  serve      run the HTTP API (see 'landlord serve --help')\n"
            "  import     build the registry from an existing GitOps repository\n"
            "  backup     copy the registry into a file, while serving (--to FILE)\n"
            "  restore    put a backup back, while stopped (--from FILE)\n"
            "  token      mint a bearer token from the server's secret (see 'landlord token "
            "--help')\n"
            "  routes     print the route table as JSON\n"
            "  version    print the version\n"
            "  help       this text\n\n"
            "Every serve option is also an environment variable and a config-file key:\n\n",
            LANDLORD_VERSION);
    ll_config_print_help(out);
}

static void serve_usage(FILE *out)
{
    fprintf(out, "usage: landlord serve [options]\n\n"
                 "Serves the HTTP API.  With no options it keeps everything in ./var: the\n"
                 "SQLite registry, a local bare GitOps remote seeded with the default layout,\n"
                 "and its own clone.  Sources, lowest first: config file (--config), LANDLORD_*\n"
                 "environment variables, flags.\n\n"
                 "options (--name VALUE or --name=VALUE):\n");
    ll_config_print_help(out);
}

static void fail(const char *what)
{
    const ll_error *e = ll_error_last();
    fprintf(stderr, "landlord: %s: %s\n", what, e->message);
    if (e->detail[0])
        fprintf(stderr, "  detail: %s\n", e->detail);
    if (e->hint[0])
        fprintf(stderr, "  hint: %s\n", e->hint);
}

/* Applies --name value / --name=value flags (or collects --config when
 * config_only). */
static int apply_flags(ll_config *cfg, int argc, char **argv, int config_only)
{
    for (int i = 0; i < argc; i++) {
        char name[128];
        const char *arg = argv[i], *value, *eq;
        if (strncmp(arg, "--", 2) != 0) {
            ll_error_set(LL_EINVALID, "unexpected argument '%s'", arg);
            ll_error_hint("options look like --listen 127.0.0.1:8080");
            return LL_EINVALID;
        }
        arg += 2;
        if ((eq = strchr(arg, '='))) {
            snprintf(name, sizeof(name), "%.*s", (int)(eq - arg), arg);
            value = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", arg);
            if (i + 1 >= argc) {
                ll_error_set(LL_EINVALID, "option --%s needs a value", name);
                ll_error_hint("write --%s VALUE", name);
                return LL_EINVALID;
            }
            value = argv[++i];
        }
        if (!ll_config_has(name)) {
            ll_error_set(LL_EINVALID, "unknown option --%s", name);
            ll_error_hint("run 'landlord serve --help' for the options");
            return LL_EINVALID;
        }
        if (config_only != (strcmp(name, "config") == 0))
            continue;
        char source[160];
        snprintf(source, sizeof(source), "option --%s", name);
        if (ll_config_set(cfg, name, value, source) < 0)
            return LL_EINVALID;
    }
    return 0;
}

static int load_config(ll_config *cfg, int argc, char **argv)
{
    ll_config_defaults(cfg);
    /* Which file: --config wins over LANDLORD_CONFIG. */
    const char *env_file = getenv("LANDLORD_CONFIG");
    if (env_file && *env_file && ll_config_set(cfg, "config", env_file, "LANDLORD_CONFIG") < 0)
        return LL_EINVALID;
    if (apply_flags(cfg, argc, argv, 1) < 0)
        return LL_EINVALID;
    if (cfg->config[0]) {
        char path[sizeof(cfg->config)];
        snprintf(path, sizeof(path), "%s", cfg->config);
        if (ll_config_load_file(cfg, path) < 0)
            return LL_EINVALID;
    }
    if (ll_config_load_env(cfg, environ) < 0 || apply_flags(cfg, argc, argv, 0) < 0)
        return LL_EINVALID;
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    ll_config cfg;
    ll_core *core = NULL;
    struct MHD_Daemon *daemon = NULL;
    pthread_t signal_thread;
    char url[300];
    int status = 1;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            serve_usage(stdout);
            return 0;
        }
    }
    if (load_config(&cfg, argc, argv) < 0) {
        fail("bad configuration");
        return 2;
    }
    ll_log_parse_level(&ll_log_threshold, cfg.log_level);

    /* Before any thread: signals blocked everywhere, libraries initialised. */
    sigemptyset(&sigs.set);
    sigaddset(&sigs.set, SIGINT);
    sigaddset(&sigs.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs.set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (pthread_create(&signal_thread, NULL, signal_main, NULL) != 0) {
        fprintf(stderr, "landlord: cannot start the signal thread\n");
        return 1;
    }
    pthread_detach(signal_thread);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    git_libgit2_init();
    if (libssh2_init(0) != 0) {
        fprintf(stderr, "landlord: cannot initialise libssh2 (ssh:// remotes)\n");
        goto done;
    }

    if (ll_core_open(&core, &cfg, LL_CORE_SERVE) < 0) {
        fail("cannot start");
        goto done;
    }
    if (ll_http_start(&daemon, url, sizeof(url), core) < 0) {
        fail("cannot serve");
        goto done;
    }
    pthread_mutex_lock(&sigs.lock);
    sigs.serving = 1; /* from here a signal means a clean shutdown */
    pthread_mutex_unlock(&sigs.lock);
    printf("landlord: serving %s (data: %s, git: %s branch %s)\n", url, cfg.data,
           ll_core_git_url(core), cfg.git_branch);
    fflush(stdout);
    ll_log_info("msg=\"serving\" url=%s data=%s", url, cfg.data);
    {
        char keys[512], secret[1100];
        ll_auth_describe(keys, sizeof(keys), ll_core_auth(core));
        ll_auth_secret_path(secret, sizeof(secret), &cfg);
        ll_log_info("msg=\"bearer tokens required on /api/v1\" keys=%s secret_file=%s", keys,
                    secret[0] ? secret : "-");
    }

    pthread_mutex_lock(&sigs.lock);
    while (!sigs.signal)
        pthread_cond_wait(&sigs.cond, &sigs.lock);
    pthread_mutex_unlock(&sigs.lock);
    ll_log_info("msg=\"shutting down\" signal=%d", sigs.signal);
    status = 0;
done:
    ll_http_stop(daemon);
    ll_core_free(core);
    libssh2_exit();
    git_libgit2_shutdown();
    curl_global_cleanup();
    if (status == 0)
        ll_log_info("msg=\"stopped\"");
    return status;
}

/* landlord import: the registry follows an existing GitOps repository. */
static int cmd_import(int argc, char **argv)
{
    ll_config cfg;
    ll_core *core = NULL;
    ll_tier_count *counts = NULL;
    size_t n_counts = 0;
    ll_registry *r;
    int status = 1;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: landlord import [options]\n\n"
                   "Builds the registry in --data from the GitOps repository at --git-url:\n"
                   "every tenant file under <git-root>/tenants/<tier>/ is adopted.  Nothing is\n"
                   "committed or seeded.  Takes the same options as 'landlord serve'.\n\n");
            ll_config_print_help(stdout);
            return 0;
        }
    }
    if (load_config(&cfg, argc, argv) < 0) {
        fail("bad configuration");
        return 2;
    }
    ll_log_parse_level(&ll_log_threshold, cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    git_libgit2_init();
    if (libssh2_init(0) != 0) {
        fprintf(stderr, "landlord: cannot initialise libssh2 (ssh:// remotes)\n");
        goto done;
    }
    if (ll_core_open(&core, &cfg, LL_CORE_IMPORT) < 0) {
        fail("cannot import");
        goto done;
    }
    if (!(r = ll_core_registry(core)) || ll_registry_tenant_counts(&counts, &n_counts, r) < 0) {
        fail("cannot read the registry");
        goto done;
    }
    {
        long long total = 0;
        for (size_t i = 0; i < n_counts; i++)
            total += counts[i].count;
        printf("landlord: imported %lld tenants (", total);
        for (size_t i = 0; i < n_counts; i++)
            printf("%s%s: %lld", i ? ", " : "", counts[i].tier, counts[i].count);
        printf(") from %s into %s\n", ll_core_git_url(core), cfg.data);
    }
    status = 0;
done:
    ll_registry_tier_counts_free(counts, n_counts);
    ll_core_free(core);
    libssh2_exit();
    git_libgit2_shutdown();
    curl_global_cleanup();
    return status;
}

/* Removes --name VALUE (or --name=VALUE) from argv (*argc shrinks) and
 * returns VALUE (borrowed from argv), or NULL when absent. */
static const char *take_option(int *argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        int used = 0;
        const char *value = NULL;
        if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
            continue;
        if (a[2 + n] == '=')
            value = a + 3 + n, used = 1;
        else if (a[2 + n] == '\0' && i + 1 < *argc)
            value = argv[i + 1], used = 2;
        else
            continue;
        memmove(&argv[i], &argv[i + used], (size_t)(*argc - i - used) * sizeof(*argv));
        *argc -= used;
        return value;
    }
    return NULL;
}

/* landlord backup / restore: the registry of --data copied to a file
 * while serving, or put back from one while stopped. */
static int cmd_backup(int argc, char **argv, int restore)
{
    const char *verb = restore ? "restore" : "backup", *opt = restore ? "from" : "to";
    ll_config cfg;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            if (restore)
                printf("usage: landlord restore --data DIR --from FILE\n\n"
                       "Puts the registry backup FILE (made by 'landlord backup') in place of\n"
                       "the registry of DIR, which is kept as landlord.db.before-restore.\n"
                       "Refused while a landlord serves DIR.  At its next start landlord\n"
                       "follows the repository again: tenant files the backup does not know\n"
                       "are adopted.  Takes --data (and --config) like 'landlord serve'.\n");
            else
                printf("usage: landlord backup --data DIR --to FILE\n\n"
                       "Copies the registry of DIR into the new file FILE as one consistent\n"
                       "state, while landlord serves DIR (SQLite's online backup API).  FILE\n"
                       "must not exist.  Takes --data (and --config) like 'landlord serve'.\n");
            return 0;
        }
    }
    const char *file = take_option(&argc, argv, opt);
    if (!file || !*file) {
        fprintf(stderr, "landlord: %s needs --%s FILE\n  hint: landlord %s --data DIR --%s FILE\n",
                verb, opt, verb, opt);
        return 2;
    }
    if (load_config(&cfg, argc, argv) < 0) {
        fail("bad configuration");
        return 2;
    }
    if ((restore ? ll_core_restore(&cfg, file) : ll_core_backup(&cfg, file)) < 0) {
        fail(restore ? "cannot restore" : "cannot back up");
        return 1;
    }
    printf(restore ? "landlord: restored %s into %s\n" : "landlord: backed up %2$s into %1$s\n",
           file, cfg.data);
    return 0;
}

static void token_usage(FILE *out)
{
    fprintf(
        out,
        "usage: landlord token --sub NAME [--scope SCOPE ...] [--ttl 1h] [--name NAME]\n"
        "                      [--email EMAIL] [serve options: --data, --config,\n"
        "                      --jwt-secret-file, --jwt-issuer, --jwt-audience ...]\n\n"
        "Prints an HS256 bearer token signed with the secret the server uses: jwt-secret-file,\n"
        "or <data>/jwt-secret (made now if missing) when no jwt-* key is configured.\n"
        "--scope may repeat or hold several scopes separated by spaces; scopes:\n  %s\n"
        "--ttl: 90s, 15m, 1h (default), 7d; at most 366d.  The token goes to stdout only.\n\n"
        "  curl -H \"Authorization: Bearer $(landlord token --sub me --scope admin)\" \\\n"
        "       http://127.0.0.1:8080/api/v1/tenants\n",
        LL_SCOPES);
}

/* What landlord token was asked for. */
typedef struct token_args {
    const char *sub, *name, *email;
    char scopes[1024]; /* separated by spaces */
    long ttl;          /* seconds */
} token_args;

static int is_token_option(const char *a)
{
    return strcmp(a, "--sub") == 0 || strcmp(a, "--scope") == 0 || strcmp(a, "--ttl") == 0 ||
           strcmp(a, "--name") == 0 || strcmp(a, "--email") == 0;
}

/* Takes one option of landlord token (a) with its value v (borrowed; kept
 * in t): 0, or 2 having said why not. */
static int token_option(token_args *t, const char *a, const char *v)
{
    if (strcmp(a, "--sub") == 0) {
        t->sub = v;
    } else if (strcmp(a, "--name") == 0) {
        t->name = v;
    } else if (strcmp(a, "--email") == 0) {
        t->email = v;
    } else if (strcmp(a, "--ttl") == 0) {
        if (ll_parse_duration(&t->ttl, v) < 0) {
            fail("bad --ttl");
            return 2;
        }
    } else { /* --scope */
        size_t n = strlen(t->scopes);
        if (n + strlen(v) + 2 > sizeof(t->scopes)) {
            fprintf(stderr, "landlord: too many scopes\n");
            return 2;
        }
        snprintf(t->scopes + n, sizeof(t->scopes) - n, "%s%s", n ? " " : "", v);
    }
    return 0;
}

/* Splits argv into the token's options (into t) and serve options (into
 * rest, borrowed from argv; *nrest of them).  0: go on; -1: the help was
 * printed; 2: a bad option, said why. */
static int token_args_parse(token_args *t, char **rest, int *nrest, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            token_usage(stdout);
            return -1;
        }
        if (!is_token_option(a)) {
            rest[(*nrest)++] = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "landlord: %s needs a value\n", a);
            return 2;
        }
        if (token_option(t, a, argv[++i]) != 0)
            return 2;
    }
    return 0;
}

/* landlord token: a local bearer token for operators and scripts. */
static int cmd_token(int argc, char **argv)
{
    ll_config cfg;
    token_args t = {.ttl = 3600};
    char *token = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0, rc;

    if (!rest)
        return 1;
    if ((rc = token_args_parse(&t, rest, &nrest, argc, argv)) != 0) {
        free(rest);
        return rc < 0 ? 0 : rc;
    }
    if (!t.sub) {
        fprintf(stderr, "landlord: token needs --sub NAME (who the token is for)\n");
        token_usage(stderr);
        free(rest);
        return 2;
    }
    if (load_config(&cfg, nrest, rest) < 0) {
        fail("bad configuration");
        free(rest);
        return 2;
    }
    free(rest);
    /* Only errors go to stderr: stdout is the token alone. */
    ll_log_threshold = LL_LOG_WARN;
    if (ll_auth_mint(&token, &cfg, t.sub, t.scopes, t.name, t.email, t.ttl) < 0) {
        fail("cannot mint a token");
        return 1;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}

static int cmd_routes(void)
{
    json_t *list = json_array();
    char *text;
    for (const ll_route *r = ll_routes; r->method; r++)
        json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "method", r->method, "path",
                                              r->pattern, "scope", r->scope));
    text = json_dumps(list, JSON_INDENT(2));
    puts(text);
    free(text);
    json_decref(list);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "help";

    /* glibc gives every thread that contends for the heap an arena of its
     * own (up to 8 per core) and keeps their free memory; landlord's threads
     * mostly wait, so two arenas cost no speed and hold far less. */
    mallopt(M_ARENA_MAX, 2);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "import") == 0)
        return cmd_import(argc - 2, argv + 2);
    if (strcmp(cmd, "backup") == 0 || strcmp(cmd, "restore") == 0)
        return cmd_backup(argc - 2, argv + 2, strcmp(cmd, "restore") == 0);
    if (strcmp(cmd, "token") == 0)
        return cmd_token(argc - 2, argv + 2);
    if (strcmp(cmd, "routes") == 0)
        return cmd_routes();
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("landlord %s\n", LANDLORD_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "landlord: unknown command '%s'\n  hint: run 'landlord --help'\n", cmd);
    return 2;
}

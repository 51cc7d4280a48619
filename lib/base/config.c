/* config.c - the settings table and its three sources.
 *
 * One static table describes every setting: name, type, field offset,
 * default, bounds, help.  The file reader walks libyaml events so an error can
 * point at file:line:col.  Nothing here keeps global state; the caller owns
 * the ll_config and treats it as read-only once serving.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "landlord/config.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/netpolicy.h"
#include "landlord/ociremote.h"
#include "landlord/template.h"
#include "landlord/util.h"
#include "landlord/validate.h"

typedef enum { T_STRING, T_INT } setting_type;

typedef struct setting {
    const char *name;
    setting_type type;
    size_t offset;
    size_t size; /* for strings: the field's size */
    const char *def;
    long min, max;
    int (*check)(const char *value);
    const char *help;
} setting;

static int check_listen(const char *v)
{
    const char *colon = strrchr(v, ':');
    char *end;
    long port;
    if (!colon || colon == v)
        return ll_error_set(LL_EINVALID, "listen address '%s' is not host:port", v);
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
        return ll_error_set(LL_EINVALID, "listen address '%s' has a bad port", v);
    return 0;
}

static int check_nonempty(const char *v)
{
    if (!*v)
        return ll_error_set(LL_EINVALID, "value must not be empty");
    return 0;
}

static int check_branch(const char *v)
{
    if (!*v || strstr(v, "..") || v[0] == '-' || v[0] == '/' || strpbrk(v, " ~^:?*[\\"))
        return ll_error_set(LL_EINVALID, "'%s' is not a valid branch name", v);
    return 0;
}

static int check_root(const char *v)
{
    if (!*v || v[0] == '/' || strstr(v, "..") || strstr(v, "//") || v[strlen(v) - 1] == '/')
        return ll_error_set(LL_EINVALID, "'%s' is not a relative path inside the repository", v);
    return 0;
}

static int check_layout(const char *v)
{
    if (strcmp(v, "auto") != 0 && strcmp(v, "flat") != 0 && strcmp(v, "sharded") != 0)
        return ll_error_set(LL_EINVALID, "'%s' is not a layout (auto, flat or sharded)", v);
    return 0;
}

static int check_helm_version(const char *v)
{
    if (v[0] && strcmp(v, "v2") != 0 && strcmp(v, "v2beta1") != 0)
        return ll_error_set(LL_EINVALID, "'%s' is not a HelmRelease version (v2 or v2beta1)", v);
    return 0;
}

/* Kinds for tier-kinds: "Kind" or "Kind.group", separated by commas. */
static int check_kinds(const char *v)
{
    const char *p = v;
    size_t n, k;

    if (!*v)
        return ll_error_set(LL_EINVALID, "value must not be empty");
    while (*p) {
        p += strspn(p, " ");
        n = strcspn(p, ",");
        while (n > 0 && p[n - 1] == ' ')
            n--;
        k = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
        if (n == 0 || k == 0 || !isupper((unsigned char)p[0]) ||
            (k < n && (p[k] != '.' || k + 1 == n ||
                       strspn(p + k + 1, "abcdefghijklmnopqrstuvwxyz0123456789.-") != n - k - 1)))
            return ll_error_set(LL_EINVALID,
                                "'%.*s' is not a kind (Kind for the core API group, Kind.group "
                                "for the others, e.g. HelmRelease.helm.toolkit.fluxcd.io)",
                                (int)(n < 64 ? n : 64), p);
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    return 0;
}

static int check_chart_name(const char *v)
{
    return ll_validate_label(v, 63, "chart-name");
}

static int check_release(const char *v)
{
    return ll_validate_release(v);
}

static int check_oci_url(const char *v)
{
    char host[300], base[600];
    return v[0] ? ll_ociremote_parse_url(host, sizeof(host), base, sizeof(base), v) : 0;
}

static int check_oci_auth(const char *v)
{
    if (strcmp(v, "auto") != 0 && strcmp(v, "ecr") != 0)
        return ll_error_set(LL_EINVALID, "'%s' is not auto or ecr", v);
    return 0;
}

static int check_region(const char *v)
{
    for (const char *p = v; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
            return ll_error_set(LL_EINVALID, "'%s' is not an AWS region (e.g. us-east-1)", v);
    return 0;
}

static int check_cidrs(const char *v)
{
    ll_netpolicy *p = NULL;
    int error = ll_netpolicy_parse(&p, v);
    ll_netpolicy_free(p);
    return error < 0 ? LL_EINVALID : 0;
}

static int check_reserved(const char *v)
{
    return ll_validate_reserved_list(v);
}

static int check_level(const char *v)
{
    ll_log_level level;
    return ll_log_parse_level(&level, v);
}

#define S(field) T_STRING, offsetof(ll_config, field), sizeof(((ll_config *)0)->field)
#define I(field) T_INT, offsetof(ll_config, field), 0

static const setting settings[] = {
    {"config", S(config), "", 0, 0, NULL, "YAML file with settings (keys are these option names)"},
    {"listen", S(listen), "127.0.0.1:8080", 0, 0, check_listen,
     "address:port to serve HTTP on (port 0 picks a free one)"},
    {"data", S(data), "./var", 0, 0, check_nonempty,
     "data directory: SQLite registry, git clone, default remote"},
    {"git-url", S(git_url), "", 0, 0, NULL,
     "GitOps remote (path or URL); empty = a bare repository <data>/remote.git"},
    {"git-branch", S(git_branch), "main", 0, 0, check_branch, "branch Flux reconciles"},
    {"git-root", S(git_root), "application-plane/production", 0, 0, check_root,
     "folder in the repository that holds tier-templates/, tenants/, pooled-envs/"},
    {"git-author-name", S(git_author_name), "landlord", 0, 0, check_nonempty,
     "name on the commits landlord makes"},
    {"git-author-email", S(git_author_email), "landlord@localhost", 0, 0, check_nonempty,
     "email on the commits landlord makes"},
    {"git-username", S(git_username), "", 0, 0, NULL, "user name for an http(s) or ssh remote"},
    {"git-password-file", S(git_password_file), "", 0, 0, NULL,
     "file holding the password or token for an http(s) remote (never logged)"},
    {"git-ca-file", S(git_ca_file), "", 0, 0, NULL,
     "PEM CA bundle for an https remote (verification is always on)"},
    {"git-ssh-key-file", S(git_ssh_key_file), "", 0, 0, NULL,
     "ed25519 private key for an ssh:// remote"},
    {"git-ssh-host-key", S(git_ssh_host_key), "", 0, 0, NULL,
     "the ssh:// server's host key fingerprint, SHA256:<base64> as ssh-keygen -lf prints it"},
    {"git-poll-interval", I(git_poll_interval), "30", 1, 86400, NULL,
     "seconds between fetches when idle (adoption and drift checks run after each)"},
    {"git-push-attempts", I(git_push_attempts), "10", 1, 1000, NULL,
     "push attempts per batch when the branch keeps moving, before backing off"},
    {"git-layout", S(git_layout), "auto", 0, 0, check_layout,
     "where new tenant files go: flat (tenants/<tier>/<id>.yaml, as the reference), sharded "
     "(tenants/<tier>/<xx>/<id>.yaml: a commit costs the same at 100,000 tenants), or auto "
     "(sharded in a new repository, else what the repository uses)"},
    {"git-timeout", I(git_timeout), "60", 1, 3600, NULL,
     "seconds an http(s) or ssh remote may take to accept a connection or to answer each read"},
    {"kubeconfig", S(kubeconfig), "", 0, 0, NULL,
     "kubeconfig file of the cluster Flux runs in (else $KUBECONFIG, else the pod's service "
     "account, else no cluster: states stay unknown)"},
    {"kube-context", S(kube_context), "", 0, 0, NULL,
     "kubeconfig context to use instead of current-context"},
    {"kube-service-account-dir", S(kube_service_account_dir), "", 0, 0, NULL,
     "in a pod: the service-account folder (default "
     "/var/run/secrets/kubernetes.io/serviceaccount)"},
    {"flux-namespace", S(flux_namespace), "flux-system", 0, 0, check_nonempty,
     "namespace of the GitRepository and Kustomization that carry the tenants"},
    {"flux-git-repository", S(flux_git_repository), "flux-system", 0, 0, check_nonempty,
     "the GitRepository Flux fetches the GitOps branch with"},
    {"flux-kustomization", S(flux_kustomization), "dataplane-tenants", 0, 0, check_nonempty,
     "the Kustomization that applies the tenants folder"},
    {"flux-helm-version", S(flux_helm_version), "", 0, 0, check_helm_version,
     "HelmRelease API version to watch: v2 or v2beta1 (default: v2beta1 when the tier templates "
     "use it, else v2)"},
    {"flux-reconcile-now", I(flux_reconcile_now), "1", 0, 1, NULL,
     "1: after each push, ask Flux to fetch at once (reconcile.fluxcd.io/requestedAt); 0: wait "
     "for its interval"},
    {"tier-kinds", S(tier_kinds), LL_TIER_KINDS_DEFAULT, 0, 0, check_kinds,
     "kinds a tier template may declare, comma-separated: Kind (core API group) or Kind.group; "
     "whatever it says, templates never get cluster-scoped RBAC, Flux sources, Kustomizations "
     "or Secrets in flux-namespace (README: tier template policy)"},
    {"default-release", S(default_release), "0.0", 0, 0, check_release,
     "release for tenants onboarded without one (1.2.3, 1.2 or 1.2.x)"},
    {"reserved-namespaces", S(reserved_namespaces), LL_RESERVED_NAMESPACES_DEFAULT, 0, 0,
     check_reserved,
     "namespaces no tenant may own, whatever its tier: comma-separated names, prefix* and "
     "*suffix (the value replaces the default; default, flux-system, kube-* and the "
     "flux-namespace are reserved whatever it says); an id matching one is refused (422)"},
    {"log-level", S(log_level), "info", 0, 0, check_level, "debug, info, warn or error"},
    {"http-threads", I(http_threads), "4", 1, 256, NULL, "HTTP worker threads"},
    {"http-connection-limit", I(http_connection_limit), "512", 1, 65536, NULL,
     "concurrent HTTP connections accepted"},
    {"http-connection-timeout", I(http_connection_timeout), "30", 1, 3600, NULL,
     "seconds an idle or slow connection is kept"},
    {"http-max-body", I(http_max_body), "1048576", 1024, 1073741824, NULL,
     "largest request body in bytes (413 above)"},
    {"chart-name", S(chart_name), "helm-tenant-chart", 0, 0, check_chart_name,
     "the tenant chart's name: uploaded releases must carry it"},
    {"release-max-size", I(release_max_size), "10485760", 1024, 104857600, NULL,
     "largest chart archive in bytes (POST /api/v1/releases; 413 above)"},
    {"chart-max-unpacked", I(chart_max_unpacked), "67108864", 65536, 4294967296L, NULL,
     "largest uncompressed size of a chart archive in bytes: the whole tar stream, headers, "
     "padding and whatever follows its end marker, counted while inflating (422 above)"},
    {"chart-max-entry-size", I(chart_max_entry_size), "5242880", 1024, 1073741824, NULL,
     "largest file in a chart archive in bytes, as its header declares it (422 above)"},
    {"chart-max-entries", I(chart_max_entries), "10000", 1, 1000000, NULL,
     "most entries (files and folders) in a chart archive (422 above)"},
    {"oci-url", S(oci_url), "", 0, 0, check_oci_url,
     "OCI registry for uploaded charts, oci://host[:port]/path (as helm push takes it; ECR "
     "included); empty = an OCI image layout in <data>/oci"},
    {"oci-username", S(oci_username), "", 0, 0, NULL,
     "user name for the registry (Basic auth or its token server); not used with ECR"},
    {"oci-password-file", S(oci_password_file), "", 0, 0, NULL,
     "file holding the registry password or token, first line (never logged)"},
    {"oci-ca-file", S(oci_ca_file), "", 0, 0, NULL,
     "PEM CA bundle for the registry (verification is always on)"},
    {"oci-plain-http", I(oci_plain_http), "0", 0, 1, NULL,
     "1: talk http:// to the registry; only for a registry on this machine (127.0.0.1, ::1, "
     "localhost)"},
    {"oci-auth", S(oci_auth), "auto", 0, 0, check_oci_auth,
     "auto: ECR auth for <account>.dkr.ecr.<region>.amazonaws.com, else the registry's "
     "challenge (Basic or bearer token); ecr: ECR auth whatever the host"},
    {"oci-timeout", I(oci_timeout), "60", 1, 3600, NULL,
     "seconds the registry (and AWS) may take to accept a connection, or without progress"},
    {"aws-region", S(aws_region), "", 0, 0, check_region,
     "ECR region (default: from the registry host, else $AWS_REGION or $AWS_DEFAULT_REGION)"},
    {"write-wait", I(write_wait), "10", 0, 300, NULL,
     "seconds a write waits for its push before answering 202 (?wait= overrides)"},
    {"batch-size", I(batch_size), "64", 1, 10000, NULL, "operations combined into one commit"},
    {"batch-linger", I(batch_linger), "50", 0, 1000, NULL,
     "ms the git writer waits for more operations after a batch of several (group commit)"},
    {"jwt-secret-file", S(jwt_secret_file), "", 0, 0, NULL,
     "file holding the HS256 secret for bearer tokens (at least 32 bytes; never logged); with "
     "no jwt-* key set, <data>/jwt-secret is created (mode 0600) on first start"},
    {"jwt-public-key-file", S(jwt_public_key_file), "", 0, 0, NULL,
     "PEM public key or certificate that verifies bearer tokens: RSA (RS256) or EC P-256 "
     "(ES256)"},
    {"jwt-jwks-file", S(jwt_jwks_file), "", 0, 0, NULL,
     "JWKS file (RSA and EC P-256 keys, chosen by kid) that verifies bearer tokens"},
    {"jwt-issuer", S(jwt_issuer), "", 0, 0, NULL,
     "tokens must carry this iss (unchecked when empty)"},
    {"jwt-audience", S(jwt_audience), "", 0, 0, NULL,
     "tokens must carry this aud (unchecked when empty)"},
    {"jwt-leeway", I(jwt_leeway), "30", 0, 300, NULL,
     "seconds of clock skew allowed when checking exp and nbf"},
    {"jwt-cache-size", I(jwt_cache_size), "1024", 0, 65536, NULL,
     "verified bearer tokens kept (by their SHA-256, ~2 KB each) so a token sent again skips "
     "the signature check; exp and nbf are still checked on every request; 0: none"},
    {"git-author-domain", S(git_author_domain), "", 0, 0, NULL,
     "commits of callers whose token has no email claim are authored <sub>@<domain> (default: "
     "the domain of git-author-email)"},
    {"tls-cert-file", S(tls_cert_file), "", 0, 0, NULL,
     "PEM certificate (chain) to serve HTTPS with; needs tls-key-file"},
    {"tls-key-file", S(tls_key_file), "", 0, 0, NULL, "PEM private key of tls-cert-file"},
    {"allow-insecure-http", I(allow_insecure_http), "0", 0, 1, NULL,
     "1: serve plain HTTP on a non-loopback address (tokens then travel in clear text)"},
    {"webhook-allow-cidr", S(webhook_allow_cidr), "", 0, 0, check_cidrs,
     "comma-separated address blocks (CIDR) webhook receivers may be in besides public "
     "addresses, e.g. 10.0.0.0/8,fd00::/8; empty: public addresses only"},
    {"metrics-auth", I(metrics_auth), "0", 0, 1, NULL,
     "1: /metrics needs a valid bearer token (any scope); 0: public"},
    {"rate-limit", I(rate_limit), "100", 0, 1000000, NULL,
     "API requests per second per caller (token bucket; admin tokens are exempt; 0: off)"},
    {"rate-limit-burst", I(rate_limit_burst), "200", 1, 1000000, NULL,
     "requests a caller may send at once before rate-limit applies"},
    {"idempotency-ttl", I(idempotency_ttl), "86400", 60, 2592000, NULL,
     "seconds the answer to a POST with an Idempotency-Key is kept for replays"},
    {"audit-retention", I(audit_retention), "365", 1, 36500, NULL, "days audit records are kept"},
    {"http-max-header", I(http_max_header), "16384", 4096, 1048576, NULL,
     "largest request line plus headers in bytes (431 above)"},
    {"http-body-timeout", I(http_body_timeout), "30", 1, 3600, NULL,
     "seconds a request body may take to arrive in full (slow bodies are cut off)"},
    {"http-header-timeout", I(http_header_timeout), "10", 1, 3600, NULL,
     "seconds a new connection may take to send its first request line and headers in full; a "
     "kept-alive one gets http-connection-timeout more for each next request (then it is closed)"},
    {"http-per-address-limit", I(http_per_address_limit), "128", 0, 65536, NULL,
     "concurrent connections from one client address (0: no limit); behind a proxy every "
     "connection comes from the proxy's addresses: raise it above the proxy's pool, or 0"},
    {"http-pending-limit", I(http_pending_limit), "0", 0, 65536, NULL,
     "connections still sending their first request header kept at once (beyond, the oldest is "
     "closed); below http-connection-limit, so the rest stays for requests (0: half of it)"},
    {"rollout-wave-timeout", I(rollout_wave_timeout), "600", 1, 86400, NULL,
     "seconds a rollout wave may take, from its push, until every tenant in it reads ready; "
     "then the wave fails (wave_timeout_seconds overrides per rollout)"},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static const setting *find(const char *name)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (strcmp(settings[i].name, name) == 0)
            return &settings[i];
    }
    return NULL;
}

int ll_config_has(const char *name)
{
    return find(name) != NULL;
}

static void env_name(char *out, size_t cap, const char *name)
{
    size_t n = (size_t)snprintf(out, cap, "LANDLORD_");
    for (const char *p = name; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

static int apply(ll_config *cfg, const setting *s, const char *value)
{
    char *field = (char *)cfg + s->offset;
    if (s->type == T_STRING) {
        if (strlen(value) >= s->size)
            return ll_error_set(LL_EINVALID, "value is longer than %zu characters", s->size - 1);
        if (s->check && s->check(value) < 0)
            return LL_EINVALID;
        memcpy(field, value, strlen(value) + 1);
    } else {
        char *end;
        long v;
        errno = 0;
        v = strtol(value, &end, 10);
        if (errno || end == value || *end)
            return ll_error_set(LL_EINVALID, "'%s' is not a whole number", value);
        if (v < s->min || v > s->max)
            return ll_error_set(LL_EINVALID, "%ld is outside %ld..%ld", v, s->min, s->max);
        *(long *)(void *)field = v;
    }
    return 0;
}

void ll_config_defaults(ll_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NSETTINGS; i++)
        apply(cfg, &settings[i], settings[i].def);
}

int ll_config_set(ll_config *cfg, const char *name, const char *value, const char *source)
{
    const setting *s = find(name);
    char msg[LL_ERROR_MSG_MAX];
    if (!s) {
        ll_error_set(LL_ENOTFOUND, "%s: unknown setting '%s'", source, name);
        ll_error_hint("run 'landlord serve --help' for the list of settings");
        return LL_ENOTFOUND;
    }
    if (apply(cfg, s, value) < 0) {
        snprintf(msg, sizeof(msg), "%s", ll_error_last()->message);
        ll_error_set(LL_EINVALID, "%s: bad value for '%s': %s", source, name, msg);
        if (s->type == T_INT)
            ll_error_hint("'%s' takes a whole number from %ld to %ld (default %s)", name, s->min,
                          s->max, s->def);
        else
            ll_error_hint("'%s': %s (default '%s')", name, s->help, s->def);
        return LL_EINVALID;
    }
    return 0;
}

/* How far load_yaml has read: mapping depth, the key awaiting its value,
 * and the position of the current event for messages. */
typedef struct yaml_walk {
    int depth, have_key, finished;
    char key[128];
    char where[1200];
} yaml_walk;

/* Applies one parse event of a config file: 0, or LL_EINVALID with the
 * error set (ev is borrowed; the caller deletes it). */
static int apply_event(ll_config *cfg, yaml_walk *w, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        w->finished = 1;
        break;
    case YAML_MAPPING_START_EVENT:
        if (++w->depth > 1) {
            ll_error_set(LL_EINVALID, "%s: '%s' takes a single value, not a mapping", w->where,
                         w->key);
            ll_error_hint("settings are flat: write '%s: value'", w->key);
            return LL_EINVALID;
        }
        break;
    case YAML_MAPPING_END_EVENT:
        w->depth--;
        break;
    case YAML_SEQUENCE_START_EVENT:
        ll_error_set(LL_EINVALID, "%s: unexpected list%s%s", w->where, w->have_key ? " for " : "",
                     w->have_key ? w->key : "");
        ll_error_hint("settings are flat: write 'name: value'");
        return LL_EINVALID;
    case YAML_ALIAS_EVENT:
        ll_error_set(LL_EINVALID, "%s: aliases are not supported here", w->where);
        ll_error_hint("write the value out");
        return LL_EINVALID;
    case YAML_SCALAR_EVENT: {
        const char *text = (const char *)ev->data.scalar.value;
        if (w->depth != 1) {
            ll_error_set(LL_EINVALID, "%s: the config file must be a mapping", w->where);
            ll_error_hint("write one 'name: value' per line");
            return LL_EINVALID;
        }
        if (!w->have_key) {
            snprintf(w->key, sizeof(w->key), "%s", text);
            if (!find(w->key) || strcmp(w->key, "config") == 0) {
                ll_error_set(LL_EINVALID, "%s: unknown setting '%s'", w->where, w->key);
                ll_error_hint("run 'landlord serve --help' for the settings a file may set");
                return LL_EINVALID;
            }
            w->have_key = 1;
        } else {
            if (ll_config_set(cfg, w->key, text, w->where) < 0)
                return LL_EINVALID;
            w->have_key = 0;
        }
        break;
    }
    default:
        break;
    }
    return 0;
}

/* Applies the settings of the YAML stream the parser reads (from a file or
 * from memory); path names it in messages. */
static int load_yaml(ll_config *cfg, yaml_parser_t *parser, const char *path)
{
    yaml_walk w = {0};
    yaml_event_t ev;
    int error;

    while (!w.finished) {
        if (!yaml_parser_parse(parser, &ev)) {
            ll_error_set(LL_EINVALID, "%s:%zu:%zu: %s", path, parser->problem_mark.line + 1,
                         parser->problem_mark.column + 1,
                         parser->problem ? parser->problem : "yaml error");
            ll_error_hint("the config file is a YAML mapping of setting: value");
            return LL_EINVALID;
        }
        snprintf(w.where, sizeof(w.where), "%s:%zu:%zu", path, ev.start_mark.line + 1,
                 ev.start_mark.column + 1);
        error = apply_event(cfg, &w, &ev);
        yaml_event_delete(&ev);
        if (error < 0)
            return error;
    }
    return 0;
}

int ll_config_load_file(ll_config *cfg, const char *path)
{
    int error = -1;
    FILE *f = NULL;
    yaml_parser_t parser;

    if (!yaml_parser_initialize(&parser))
        return ll_error_set(LL_ERROR, "cannot start the yaml parser");
    if (!(f = fopen(path, "rb"))) {
        ll_error_set(LL_EINVALID, "%s: cannot open config file: %s", path, strerror(errno));
        ll_error_hint("check the --config path");
        goto done;
    }
    yaml_parser_set_input_file(&parser, f);
    if ((error = load_yaml(cfg, &parser, path)) < 0)
        goto done;
    snprintf(cfg->config, sizeof(cfg->config), "%s", path);
    error = 0;
done:
    yaml_parser_delete(&parser);
    if (f)
        fclose(f);
    return error;
}

int ll_config_load_text(ll_config *cfg, const char *name, const char *text, size_t len)
{
    yaml_parser_t parser;
    int error;

    if (!yaml_parser_initialize(&parser))
        return ll_error_set(LL_ERROR, "cannot start the yaml parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    error = load_yaml(cfg, &parser, name);
    yaml_parser_delete(&parser);
    return error;
}

int ll_config_load_env(ll_config *cfg, char **envp)
{
    char var[160], source[200];
    for (size_t i = 0; i < NSETTINGS; i++) {
        env_name(var, sizeof(var), settings[i].name);
        for (char **e = envp; e && *e; e++) {
            size_t n = strlen(var);
            if (strncmp(*e, var, n) == 0 && (*e)[n] == '=') {
                snprintf(source, sizeof(source), "environment variable %s", var);
                if (ll_config_set(cfg, settings[i].name, *e + n + 1, source) < 0)
                    return LL_EINVALID;
            }
        }
    }
    return 0;
}

void ll_config_print_help(FILE *out)
{
    char var[160], flag[64];
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        env_name(var, sizeof(var), s->name);
        snprintf(flag, sizeof(flag), "--%s %s", s->name, s->type == T_INT ? "N" : "VALUE");
        fprintf(out, "  %-34s %s\n  %-34s   env %s", flag, s->help, "", var);
        if (s->def[0])
            fprintf(out, ", default %s", s->def);
        if (s->type == T_INT)
            fprintf(out, ", %ld..%ld", s->min, s->max);
        fputc('\n', out);
    }
}

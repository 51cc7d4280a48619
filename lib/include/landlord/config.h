/* config.h - landlord's settings: one table, three sources.
 *
 * Every setting has a name (the YAML key and the flag without "--"), an
 * environment variable (LANDLORD_ + upper-cased name with '_'), a type, a
 * default and bounds.  Sources apply in order: defaults < file < environment
 * < flags.  The configuration is read-only once the server runs.
 *
 * Ownership: every pointer argument is borrowed for the call; values are
 * copied into the ll_config (whose strings are arrays: nothing to free).
 */
#ifndef LANDLORD_CONFIG_H
#define LANDLORD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef struct ll_config {
    char config[1024];  /* the YAML file read, or "" */
    char listen[256];   /* host:port */
    char data[1024];    /* data directory */
    char git_url[1024]; /* "" = <data>/remote.git */
    char git_branch[128];
    char git_root[256];
    char git_author_name[128];
    char git_author_email[256];
    char git_username[256];
    char git_password_file[1024]; /* the file holding the password or token */
    char git_ca_file[1024];
    char git_ssh_key_file[1024];
    char git_ssh_host_key[128];
    long git_poll_interval; /* seconds between fetches when idle */
    long git_push_attempts; /* pushes per batch before backing off */
    long git_timeout;       /* seconds for an http(s) remote to connect or answer */
    char git_layout[16];    /* "auto", "flat" or "sharded" (the core resolves auto) */
    char kubeconfig[1024];
    char kube_context[256];
    char kube_service_account_dir[1024];
    char flux_namespace[64];
    char flux_git_repository[256];
    char flux_kustomization[256];
    char flux_helm_version[16];
    char tier_kinds[1024];   /* kinds a tier template may declare: Kind or Kind.group, commas */
    long flux_reconcile_now; /* 1: annotate the GitRepository after each push */
    char default_release[32];
    char reserved_namespaces[4096]; /* names, prefix* and *suffix tenants may never own */
    char log_level[16];
    long http_threads;
    long http_connection_limit;
    long http_connection_timeout; /* seconds */
    long http_max_body;           /* bytes */
    long write_wait;              /* seconds a write waits for its push */
    char chart_name[64];          /* the tenant chart's name */
    long release_max_size;        /* bytes of a chart archive */
    long chart_max_unpacked;      /* bytes of a chart archive's whole uncompressed stream */
    long chart_max_entry_size;    /* bytes of one entry of a chart archive */
    long chart_max_entries;       /* entries of a chart archive */
    char oci_url[1024];           /* oci://host[:port]/base, or "" for the embedded layout */
    char oci_username[256];
    char oci_password_file[1024]; /* the file holding the registry password or token */
    char oci_ca_file[1024];
    long oci_plain_http; /* 1: http:// to a registry on this machine */
    char oci_auth[16];   /* "auto" or "ecr" */
    long oci_timeout;    /* seconds to connect, and without progress */
    char aws_region[64]; /* ECR: "" = from the registry host or $AWS_REGION */
    long batch_size;     /* operations per commit */
    long batch_linger;   /* ms to wait for more operations under load */
    /* Identity and access. */
    char jwt_secret_file[1024];     /* HS256 secret; "" = <data>/jwt-secret when no key is set */
    char jwt_public_key_file[1024]; /* PEM public key or certificate: RS256 or ES256 */
    char jwt_jwks_file[1024];       /* JWKS with RSA and EC P-256 keys */
    char jwt_issuer[256];           /* required iss, or "" */
    char jwt_audience[256];         /* required aud, or "" */
    long jwt_leeway;                /* seconds of clock skew allowed on exp and nbf */
    long jwt_cache_size;            /* verified tokens kept (by SHA-256); 0 = none */
    char git_author_domain[256];    /* sub@<domain> for callers without an email claim */
    char tls_cert_file[1024];
    char tls_key_file[1024];
    long allow_insecure_http;      /* 1: plain HTTP on a non-loopback address */
    char webhook_allow_cidr[1024]; /* blocks webhook receivers may be in besides public ones */
    long metrics_auth;             /* 1: /metrics needs a bearer token */
    long rate_limit;               /* requests per second per caller; 0 = off */
    long rate_limit_burst;
    long idempotency_ttl;      /* seconds an Idempotency-Key answer is kept */
    long audit_retention;      /* days audit records are kept */
    long http_max_header;      /* bytes of request line + headers */
    long http_body_timeout;    /* seconds a body may take to arrive */
    long rollout_wave_timeout; /* seconds a rollout wave may take to read ready */

    /* The HTTP edge (server/http.c). */
    long http_header_timeout;    /* seconds a connection may take to send a request header */
    long http_per_address_limit; /* connections from one address; 0 = no limit */
    long http_pending_limit;     /* connections without a first header; 0 = half the limit */
} ll_config;

/* Fills cfg with the defaults. */
void ll_config_defaults(ll_config *cfg);

/* Sets one setting from text.  source names where the text came from (for the
 * error message).  Returns 0, LL_ENOTFOUND for an unknown name or LL_EINVALID
 * for a bad value (message and hint set). */
int ll_config_set(ll_config *cfg, const char *name, const char *value, const char *source);

/* Reads a YAML file: a mapping of setting names to scalars.  Errors carry
 * path:line:col and a hint. */
int ll_config_load_file(ll_config *cfg, const char *path);

/* The same for YAML text in memory (name stands for the file in messages,
 * e.g. "<stdin>"); cfg->config is left alone.  The fuzz harness of the
 * config file (tests/fuzz/fuzz_config.c) goes through this. */
int ll_config_load_text(ll_config *cfg, const char *name, const char *text, size_t len);

/* Applies every LANDLORD_* variable that names a setting; unknown LANDLORD_*
 * variables are ignored (LANDLORD_BIN and friends belong to tools). */
int ll_config_load_env(ll_config *cfg, char **envp);

/* Writes the options, their variables, defaults and help, one per line. */
void ll_config_print_help(FILE *out);

/* 1 when name is a setting. */
int ll_config_has(const char *name);

#endif

/* gitssh.c - landlord's transport for ssh:// remotes, on libssh2.
 *
 * Why.  libgit2 1.5's own ssh transport leaks on every connection, so on
 * every fetch and push: _git_ssh_setup_conn frees the LIBSSH2_KNOWNHOSTS of
 * load_known_hosts only on error, and load_known_hosts clears two buffers
 * (git_str_clear) instead of freeing them.  landlord runs for months; this
 * file replaces that transport so none of its code runs.
 *
 * How.  ll_git_ssh_install() registers the ssh schemes with
 * git_transport_register().  libgit2 then makes a smart transport
 * (git_transport_smart: it speaks the git protocol) over this file's
 * subtransport, which only carries bytes.  The first action of a
 * connection (UPLOADPACK_LS for a fetch, RECEIVEPACK_LS for a push):
 *   1. opens TCP with ll_git_tcp_connect (gitstream.c: git-timeout for the
 *      connection); every blocking libssh2 call after it gets the same
 *      timeout (libssh2_session_set_timeout);
 *   2. runs the libssh2 handshake;
 *   3. hands the host key to the remote's certificate_check callback
 *      (gitops.c's on_certificate pins it with git-ssh-host-key); no
 *      callback means no trust, and known_hosts is not read;
 *   4. asks the remote's credentials callback, once, for an ssh key file
 *      and logs in with it (libssh2 derives the public key from the
 *      private key); a refusal is GIT_EAUTH;
 *   5. opens a session channel and execs git-upload-pack '<path>' or
 *      git-receive-pack '<path>' (a path with a quote is refused: the
 *      remote shell would read it).
 * The action after it (UPLOADPACK, RECEIVEPACK) gets the same stream, as
 * libgit2's transport does: rpc = 0, one connection per fetch or push.
 * libgit2 also sends scp-like URLs ([user@]host:path) to the transport
 * registered for ssh://, so they are parsed here too.
 *
 * Threads.  A transport and its stream belong to the thread running the
 * fetch or push (landlord's git writer).  libssh2_init() runs before any
 * thread starts (server/main.c); sessions share nothing.  The timeout is
 * set at install, before the writer starts, and only read after.
 *
 * Ownership.  A stream owns its socket, libssh2 session and channel, and
 * stream_free() releases all three on every path: the smart transport
 * frees the stream that action() returned, and action() frees what it
 * built when it fails.  The subtransport only borrows its current stream.
 * No key, password or passphrase is ever put into a message.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <git2.h>
#include <git2/sys/credential.h>
#include <git2/sys/transport.h>
#include <libssh2.h>

#include "gitssh.h"
#include "gitssh_int.h"
#include "gitstream.h"

typedef struct {
    git_smart_subtransport_stream parent;
    int fd;
    LIBSSH2_SESSION *session;
    LIBSSH2_CHANNEL *channel;
    int broken;      /* a libssh2 call failed: do not wait for the server */
    char where[300]; /* host:port, for messages */
} ssh_stream;

typedef struct {
    git_smart_subtransport parent;
    git_transport *owner; /* borrowed: the smart transport that owns us */
    ssh_stream *current;  /* borrowed: the smart transport owns it */
} ssh_subtransport;

static int timeout_s = 60;

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sets the libgit2 error (GIT_ERROR_SSH) to the formatted message; returns
 * code. */
static int fail(int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    git_error_set_str(GIT_ERROR_SSH, msg);
    return code;
}

/* libssh2's failure rc while doing something with s's server: sets the
 * libgit2 error, copying libssh2's message at once, and marks the
 * connection broken.  Returns -1. */
static int ssh_fail(ssh_stream *s, int rc, const char *doing)
{
    char *why = NULL;
    s->broken = 1;
    if (rc == LIBSSH2_ERROR_TIMEOUT)
        return fail(-1, "cannot %s %s over ssh: no answer within %d s", doing, s->where, timeout_s);
    libssh2_session_last_error(s->session, &why, NULL, 0);
    return fail(-1, "cannot %s %s over ssh: %s", doing, s->where,
                why && why[0] ? why : "unknown libssh2 error");
}

/* --- URLs ----------------------------------------------------------------- */

/* Copies len bytes of src into the cap-sized dst; -1 when they do not fit. */
static int copy_part(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        return -1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

/* Where the authority ([user@]host[:port]) starts and ends, and where the
 * path starts: after "://" up to the first '/'; scp-like, up to the ':'
 * after the host (an IPv6 address in [] may hold ':'). */
static int locate_parts(const char **out_start, const char **out_end, const char **out_path,
                        const char *url, const char *scheme)
{
    const char *colon, *at, *host;

    if (scheme) {
        *out_start = scheme + 3;
        *out_end = *out_start + strcspn(*out_start, "/");
        *out_path = *out_end;
        return 0;
    }
    colon = strchr(url, ':');
    at = strchr(url, '@');
    host = at && (!colon || at < colon) ? at + 1 : url;
    if (*host == '[' && strchr(host, ']'))
        colon = strchr(strchr(host, ']'), ':');
    else
        colon = strchr(host, ':');
    if (!colon)
        return fail(-1, "ssh remote url has no ':' between host and path");
    *out_start = url;
    *out_end = colon;
    *out_path = colon + 1;
    return 0;
}

/* The user name before the authority's last '@' (a password after its
 * ':' is dropped); *out_host is where the host starts. */
static int parse_user(ll_ssh_url *out, const char **out_host, const char *start, const char *end)
{
    const char *at = NULL;

    for (const char *p = start; p < end; p++)
        if (*p == '@')
            at = p;
    *out_host = at ? at + 1 : start;
    if (at) {
        size_t n = strcspn(start, ":"); /* user[:password] */
        if (copy_part(out->user, sizeof(out->user), start,
                      n < (size_t)(at - start) ? n : (size_t)(at - start)) < 0)
            return fail(-1, "ssh remote url has a user name longer than %zu bytes",
                        sizeof(out->user) - 1);
    }
    return 0;
}

/* host[:port] or [IPv6][:port] in [host, end): out->host, and out->port
 * (1-65535, 22 when there is none). */
static int parse_host(ll_ssh_url *out, const char *host, const char *end)
{
    const char *host_end = end, *port = NULL;

    if (*host == '[') {
        const char *close = memchr(host, ']', (size_t)(end - host));
        if (!close)
            return fail(-1, "ssh remote url has an IPv6 address without ']'");
        if (close + 1 < end && close[1] == ':')
            port = close + 2;
        else if (close + 1 != end)
            return fail(-1, "ssh remote url has text after the IPv6 address");
        host++;
        host_end = close;
    } else {
        const char *colon = memchr(host, ':', (size_t)(end - host));
        if (colon) {
            port = colon + 1;
            host_end = colon;
        }
    }
    if (host_end == host ||
        copy_part(out->host, sizeof(out->host), host, (size_t)(host_end - host)) < 0)
        return fail(-1, "ssh remote url has no host, or one longer than %zu bytes",
                    sizeof(out->host) - 1);
    if (port && port < end) {
        size_t n = (size_t)(end - port);
        if (n > 5 || strspn(port, "0123456789") != n || atoi(port) < 1 || atoi(port) > 65535)
            return fail(-1, "ssh remote url has a bad port: '%.*s'", (int)(end - port), port);
        copy_part(out->port, sizeof(out->port), port, n);
    } else {
        snprintf(out->port, sizeof(out->port), "22");
    }
    return 0;
}

/* The repository path as the remote command gets it ("/~user/x" of an
 * ssh:// URL becomes "~user/x"); not empty, without a single quote. */
static int parse_path(ll_ssh_url *out, const char *path, int scheme)
{
    if (scheme && path[0] == '/' && path[1] == '~')
        path++;
    if (!path[0] || strcmp(path, "/") == 0)
        return fail(-1, "ssh remote url %s has no repository path", out->host);
    if (strchr(path, '\''))
        return fail(-1,
                    "ssh repository path %s has a single quote, which cannot be passed to "
                    "the remote shell",
                    path);
    if (copy_part(out->path, sizeof(out->path), path, strlen(path)) < 0)
        return fail(-1, "ssh repository path is longer than %zu bytes", sizeof(out->path) - 1);
    return 0;
}

int ll_git_ssh_parse_url(ll_ssh_url *out, const char *url)
{
    const char *scheme = strstr(url, "://"), *start = NULL, *end = NULL, *path = NULL, *host = NULL;
    int error;

    memset(out, 0, sizeof(*out));
    if ((error = locate_parts(&start, &end, &path, url, scheme)) < 0 ||
        (error = parse_user(out, &host, start, end)) < 0 ||
        (error = parse_host(out, host, end)) < 0)
        return error;
    return parse_path(out, path, scheme != NULL);
}

/* --- the stream ------------------------------------------------------------ */

/* The smart transport's read: up to size bytes of the remote command's
 * stdout into buffer (borrowed), their count in *bytes_read; 0 bytes at its
 * end.  Returns 0, GIT_EEOF when the command ended with a message on
 * stderr, or -1; the libgit2 error is set. */
static int stream_read(git_smart_subtransport_stream *stream, char *buffer, size_t size,
                       size_t *bytes_read)
{
    ssh_stream *s = (ssh_stream *)stream;
    ssize_t n;

    *bytes_read = 0;
    if (s->broken)
        return -1; /* libgit2's goodbye after a failure: keep the first message */
    /* Blocking: waits for data (up to the timeout); 0 only at the end. */
    n = libssh2_channel_read(s->channel, buffer, size);
    if (n < 0)
        return ssh_fail(s, (int)n, "read from");
    if (n == 0) {
        /* The command ended; what it wrote to stderr says why (git's
         * "fatal: '...' does not appear to be a git repository"). */
        char err[512];
        ssize_t m = libssh2_channel_read_stderr(s->channel, err, sizeof(err) - 1);
        if (m > 0) {
            while (m > 0 && isspace((unsigned char)err[m - 1]))
                m--;
            for (ssize_t i = 0; i < m; i++)
                if (err[i] == '\n' || err[i] == '\r')
                    err[i] = ' ';
            err[m] = '\0';
            return fail(GIT_EEOF, "the git command on %s ended: %s", s->where, err);
        }
        if (m < 0)
            return ssh_fail(s, (int)m, "read stderr from");
    }
    *bytes_read = (size_t)n;
    return 0;
}

/* The smart transport's write: all len bytes of buffer (borrowed) to the
 * remote command's stdin.  Returns 0 or -1 with the libgit2 error set. */
static int stream_write(git_smart_subtransport_stream *stream, const char *buffer, size_t len)
{
    ssh_stream *s = (ssh_stream *)stream;
    size_t off = 0;

    if (s->broken)
        return -1; /* libgit2's goodbye flush after a failure: keep the first message */
    while (off < len) {
        ssize_t n = libssh2_channel_write(s->channel, buffer + off, len - off);
        if (n < 0)
            return ssh_fail(s, (int)n, "write to");
        off += (size_t)n;
    }
    return 0;
}

/* Frees the channel, the session and the socket, whatever got made.  After
 * a failure the socket is shut down first, so libssh2's goodbye (channel
 * close, disconnect) fails at once instead of waiting for the timeout
 * again; libssh2 frees its objects either way. */
static void stream_free(git_smart_subtransport_stream *stream)
{
    ssh_stream *s = (ssh_stream *)stream;
    ssh_subtransport *t;

    if (!s)
        return;
    t = (ssh_subtransport *)s->parent.subtransport;
    if (t->current == s)
        t->current = NULL;
    if (s->broken && s->fd >= 0)
        shutdown(s->fd, SHUT_RDWR);
    if (s->channel)
        libssh2_channel_free(s->channel);
    if (s->session) {
        if (!s->broken)
            libssh2_session_disconnect(s->session, "done");
        libssh2_session_free(s->session);
    }
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

/* --- connecting -------------------------------------------------------------- */

/* libgit2's name for a libssh2 host key type. */
static git_cert_ssh_raw_type_t raw_type(int libssh2_type)
{
    switch (libssh2_type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return GIT_CERT_SSH_RAW_TYPE_RSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS:
        return GIT_CERT_SSH_RAW_TYPE_DSS;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
        return GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
        return GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        return GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_521;
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        return GIT_CERT_SSH_RAW_TYPE_KEY_ED25519;
    default:
        return GIT_CERT_SSH_RAW_TYPE_UNKNOWN;
    }
}

/* Asks the remote's certificate_check callback about the server's host key
 * (as libgit2's transport does, but with valid = 0 always: known_hosts is
 * not read).  Returns 0 when the callback accepts it, else a negative code
 * with the libgit2 error set (the callback's message when it set one). */
static int check_host_key(ssh_stream *s, ssh_subtransport *t, const ll_ssh_url *u)
{
    git_cert_hostkey cert = {.parent.cert_type = GIT_CERT_HOSTKEY_LIBSSH2};
    const char *hash;
    size_t len = 0;
    int type = 0, error;

    if (!(cert.hostkey = libssh2_session_hostkey(s->session, &len, &type)) ||
        !(hash = libssh2_hostkey_hash(s->session, LIBSSH2_HOSTKEY_HASH_SHA256)))
        return fail(-1, "cannot read the ssh host key of %s", s->where);
    cert.type = GIT_CERT_SSH_SHA256 | GIT_CERT_SSH_RAW;
    memcpy(cert.hash_sha256, hash, sizeof(cert.hash_sha256));
    if ((hash = libssh2_hostkey_hash(s->session, LIBSSH2_HOSTKEY_HASH_SHA1))) {
        cert.type |= GIT_CERT_SSH_SHA1;
        memcpy(cert.hash_sha1, hash, sizeof(cert.hash_sha1));
    }
    cert.hostkey_len = len;
    cert.raw_type = raw_type(type);

    git_error_clear();
    error = git_transport_smart_certificate_check(t->owner, &cert.parent, 0, u->host);
    if (error == GIT_PASSTHROUGH)
        return fail(GIT_ECERTIFICATE,
                    "ssh host key of %s is not checked (no certificate_check callback): refused",
                    s->where);
    if (error != 0 && !git_error_last())
        error =
            fail(error, "ssh host key of %s refused by the certificate_check callback", s->where);
    return error > 0 ? GIT_ECERTIFICATE : error;
}

/* Logs in with the key file the remote's credentials callback gives (asked
 * once).  Returns 0, GIT_EAUTH when the server refuses the key or the
 * callback gives none, or another negative code; the libgit2 error is
 * set. */
static int authenticate(ssh_stream *s, ssh_subtransport *t, const ll_ssh_url *u)
{
    git_credential *cred = NULL;
    git_credential_ssh_key *key;
    int error, rc;

    error = git_transport_smart_credentials(&cred, t->owner, u->user[0] ? u->user : NULL,
                                            GIT_CREDENTIAL_SSH_KEY);
    if (error == GIT_PASSTHROUGH) {
        error = fail(GIT_EAUTH, "ssh authentication on %s needs a key: no credentials callback",
                     s->where);
        goto done;
    }
    if (error < 0)
        goto done;
    if (!cred || cred->credtype != GIT_CREDENTIAL_SSH_KEY ||
        !((git_credential_ssh_key *)cred)->privatekey) {
        error = fail(GIT_EAUTH, "ssh authentication on %s needs a private key file", s->where);
        goto done;
    }
    key = (git_credential_ssh_key *)cred;
    rc = libssh2_userauth_publickey_fromfile_ex(s->session, key->username,
                                                (unsigned int)strlen(key->username), key->publickey,
                                                key->privatekey, key->passphrase);
    if (rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_SEND ||
        rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_DISCONNECT) {
        error = ssh_fail(s, rc, "log in to");
    } else if (rc < 0) {
        char *why = NULL;
        libssh2_session_last_error(s->session, &why, NULL, 0);
        error = fail(GIT_EAUTH, "ssh authentication as %s on %s with the key file %s failed: %s",
                     key->username, s->where, key->privatekey, why && why[0] ? why : "refused");
    }
done:
    git_credential_free(cred);
    return error;
}

/* Connects to the URL's server and runs cmd there ("git-upload-pack" or
 * "git-receive-pack").  *out: a new stream the caller (the smart
 * transport) frees.  Returns 0 or a negative code with the libgit2 error
 * set; on failure everything made so far is freed. */
static int open_stream(ssh_stream **out, ssh_subtransport *t, const char *url, const char *cmd)
{
    ll_ssh_url u;
    ssh_stream *s = NULL;
    char command[sizeof(u.path) + 32], doing[64];
    int error, rc;

    *out = NULL;
    if ((error = ll_git_ssh_parse_url(&u, url)) < 0)
        return error;
    if (!(s = calloc(1, sizeof(*s)))) {
        git_error_set_oom();
        return -1;
    }
    s->parent.subtransport = &t->parent;
    s->parent.read = stream_read;
    s->parent.write = stream_write;
    s->parent.free = stream_free;
    s->fd = -1;
    snprintf(s->where, sizeof(s->where), strchr(u.host, ':') ? "[%s]:%s" : "%s:%s", u.host, u.port);

    if ((error = ll_git_tcp_connect(&s->fd, u.host, u.port, timeout_s)) < 0)
        goto done;
    if (!(s->session = libssh2_session_init())) {
        error = fail(-1, "cannot start an ssh session with %s: out of memory", s->where);
        goto done;
    }
    libssh2_session_set_blocking(s->session, 1);
    libssh2_session_set_timeout(s->session, (long)timeout_s * 1000);
    if ((rc = libssh2_session_handshake(s->session, s->fd)) < 0) {
        error = ssh_fail(s, rc, "handshake with");
        goto done;
    }
    if ((error = check_host_key(s, t, &u)) < 0 || (error = authenticate(s, t, &u)) < 0)
        goto done;
    if (!(s->channel = libssh2_channel_open_session(s->session))) {
        error = ssh_fail(s, libssh2_session_last_errno(s->session), "open a channel on");
        goto done;
    }
    snprintf(command, sizeof(command), "%s '%s'", cmd, u.path);
    if ((rc = libssh2_channel_exec(s->channel, command)) < 0) {
        snprintf(doing, sizeof(doing), "run %s on", cmd);
        error = ssh_fail(s, rc, doing);
        goto done;
    }
    *out = s;
    s = NULL;
    error = 0;
done:
    stream_free(s ? &s->parent : NULL);
    return error;
}

/* --- the subtransport --------------------------------------------------------- */

/* The smart transport's action: *out is a new stream for the *_LS actions
 * (the smart transport frees it), and the same stream, borrowed, for the
 * action after it.  Returns 0 or a negative code with the libgit2 error
 * set. */
static int sub_action(git_smart_subtransport_stream **out, git_smart_subtransport *subtransport,
                      const char *url, git_smart_service_t action)
{
    ssh_subtransport *t = (ssh_subtransport *)subtransport;
    ssh_stream *s = NULL;
    int error;

    *out = NULL;
    switch (action) {
    case GIT_SERVICE_UPLOADPACK_LS:
    case GIT_SERVICE_RECEIVEPACK_LS:
        error = open_stream(&s, t, url,
                            action == GIT_SERVICE_UPLOADPACK_LS ? "git-upload-pack"
                                                                : "git-receive-pack");
        if (error < 0)
            return error;
        t->current = s;
        *out = &s->parent;
        return 0;
    case GIT_SERVICE_UPLOADPACK:
    case GIT_SERVICE_RECEIVEPACK:
        /* The second step of the same fetch or push (and the goodbye flush
         * libgit2 writes when it closes). */
        if (!t->current)
            return fail(-1, "ssh transport: no connection for the git command");
        *out = &t->current->parent;
        return 0;
    }
    return fail(-1, "ssh transport: unknown action %d", (int)action);
}

static int sub_close(git_smart_subtransport *subtransport)
{
    /* The smart transport has freed the stream (and with it everything
     * open) before it calls this. */
    (void)subtransport;
    return 0;
}

/* Frees the subtransport (its stream is gone by now). */
static void sub_free(git_smart_subtransport *subtransport)
{
    free(subtransport);
}

/* A new subtransport for the smart transport owner (borrowed: it owns us and
 * frees *out with sub_free).  Returns 0 or -1 with the libgit2 error set. */
static int sub_new(git_smart_subtransport **out, git_transport *owner, void *param)
{
    ssh_subtransport *t = calloc(1, sizeof(*t));
    (void)param;
    *out = NULL;
    if (!t) {
        git_error_set_oom();
        return -1;
    }
    t->owner = owner;
    t->parent.action = sub_action;
    t->parent.close = sub_close;
    t->parent.free = sub_free;
    *out = &t->parent;
    return 0;
}

static git_smart_subtransport_definition definition = {sub_new, 0, NULL};

/* What git_transport_register calls for an ssh URL: libgit2's smart
 * transport over this file's subtransport; *out is new, libgit2 frees it. */
static int transport_new(git_transport **out, git_remote *owner, void *param)
{
    (void)param;
    return git_transport_smart(out, owner, &definition);
}

int ll_git_ssh_install(int seconds)
{
    /* git_transport_register takes the scheme without "://" in 1.5. */
    static const char *const schemes[] = {"ssh", "ssh+git", "git+ssh"};
    static int installed;
    int error;

    timeout_s = seconds > 0 ? seconds : 60;
    if (installed)
        return 0;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        error = git_transport_register(schemes[i], transport_new, NULL);
        if (error < 0 && error != GIT_EEXISTS)
            return error;
    }
    installed = 1;
    return 0;
}

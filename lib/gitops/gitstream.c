/* gitstream.c - the TCP stream libgit2 uses for http(s):// remotes.
 *
 * libgit2 1.5's own socket stream leaves Nagle's algorithm on and has no
 * timeouts.  Its HTTP client writes a chunked request body in many small
 * writes (chunk size, data, CRLF), so the last chunk waits for the
 * server's delayed ACK: about 40 ms on every push, the whole difference
 * between landlord's push and the git CLI's (curl sets TCP_NODELAY).  This
 * stream connects with a timeout, sets TCP_NODELAY, and bounds every read
 * and write, so a server that stops answering fails the push instead of
 * hanging the writer.  TLS (libgit2's OpenSSL stream) runs on top of it.
 *
 * It is registered only for http(s) remotes.  ssh:// remotes go through
 * landlord's own transport (gitssh.c), which opens its socket with
 * ll_git_tcp_connect() below: the same timeouts, no git_stream.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <fcntl.h>
#include <git2.h>
#include <git2/sys/stream.h>

#include "gitstream.h"

typedef struct {
    git_stream parent;
    char *host;
    char *port;
    int fd;
} tcp_stream;

static int timeout_s = 60;

static int net_error(const char *what, const char *host, const char *port, int err)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%s %s:%s: %s", what, host, port, strerror(err));
    git_error_set_str(GIT_ERROR_NET, msg);
    return -1;
}

/* Connects fd to ai's address within the given number of seconds; 0 or an errno. */
static int connect_within(int fd, const struct addrinfo *ai, int seconds)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS)
            return errno;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n;
        do
            n = poll(&p, 1, seconds * 1000);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return errno;
        if (n == 0)
            return ETIMEDOUT;
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            return errno;
        if (err)
            return err;
    }
    if (fcntl(fd, F_SETFL, flags) < 0)
        return errno;
    return 0;
}

int ll_git_tcp_connect(int *out, const char *host, const char *port, int seconds)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(host, port, &hints, &list);
    *out = -1;
    if (rc != 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "cannot resolve %s: %s", host, gai_strerror(rc));
        git_error_set_str(GIT_ERROR_NET, msg);
        return -1;
    }
    int err = EHOSTUNREACH;
    for (struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if ((err = connect_within(fd, ai, seconds)) != 0) {
            close(fd);
            continue;
        }
        int one = 1;
        struct timeval tv = {.tv_sec = seconds};
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        *out = fd;
        break;
    }
    freeaddrinfo(list);
    if (*out < 0)
        return net_error("cannot connect to", host, port, err);
    return 0;
}

static int tcp_connect(git_stream *stream)
{
    tcp_stream *s = (tcp_stream *)stream;
    return ll_git_tcp_connect(&s->fd, s->host, s->port, timeout_s);
}

static ssize_t tcp_read(git_stream *stream, void *data, size_t len)
{
    tcp_stream *s = (tcp_stream *)stream;
    ssize_t n;
    do
        n = recv(s->fd, data, len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return net_error(errno == EAGAIN ? "no answer within the timeout from" : "cannot read from",
                         s->host, s->port, errno == EAGAIN ? ETIMEDOUT : errno);
    return n;
}

static ssize_t tcp_write(git_stream *stream, const char *data, size_t len, int flags)
{
    tcp_stream *s = (tcp_stream *)stream;
    (void)flags;
    ssize_t n;
    do
        n = send(s->fd, data, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return net_error("cannot write to", s->host, s->port, errno == EAGAIN ? ETIMEDOUT : errno);
    return n;
}

static int tcp_close(git_stream *stream)
{
    tcp_stream *s = (tcp_stream *)stream;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    return 0;
}

static void tcp_free(git_stream *stream)
{
    tcp_stream *s = (tcp_stream *)stream;
    tcp_close(stream);
    free(s->host);
    free(s->port);
    free(s);
}

static int tcp_new(git_stream **out, const char *host, const char *port)
{
    tcp_stream *s = calloc(1, sizeof(*s));
    if (!s || !(s->host = strdup(host)) || !(s->port = strdup(port))) {
        if (s)
            free(s->host);
        free(s);
        git_error_set_oom();
        return -1;
    }
    s->fd = -1;
    s->parent.version = GIT_STREAM_VERSION;
    s->parent.connect = tcp_connect;
    s->parent.read = tcp_read;
    s->parent.write = tcp_write;
    s->parent.close = tcp_close;
    s->parent.free = tcp_free;
    *out = &s->parent;
    return 0;
}

int ll_git_stream_install(int seconds)
{
    timeout_s = seconds;
    git_stream_registration reg = {.version = GIT_STREAM_VERSION, .init = tcp_new};
    return git_stream_register(GIT_STREAM_STANDARD, &reg);
}

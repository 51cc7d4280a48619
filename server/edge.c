/* edge.c - the HTTP edge: what happens to a connection before a request
 * on it reaches a route (http.c wires it into libmicrohttpd).
 *
 * Slots: deadlines for request headers, and room kept for requests.
 *
 * Every connection has a slot, made when libmicrohttpd accepts it
 * (MHD_OPTION_NOTIFY_CONNECTION, "started") and freed when it is closed
 * ("closed"), in the share of the worker thread that serves it.  A slot is
 * pending from the connection's opening until its first request header is
 * complete (ll_edge_serving, from the access handler's first call), serving until that request's
 * answer is sent, then idle until the next header is complete.  A pending
 * slot has http-header-timeout to get there; an idle one
 * http-connection-timeout more.  libmicrohttpd closes a silent connection
 * after http-connection-timeout by itself, but every byte restarts its
 * timer: one that trickles a header a byte at a time would stay for ever.
 * These deadlines run from the opening (or the last answer) whatever
 * arrives.  ll_edge_reap (http.c's waiter thread, every 20 ms) closes what
 * is overdue with shutdown(2):
 * libmicrohttpd sees the stream end and closes the connection; the
 * descriptor stays valid until "closed" takes the slot out, under the same
 * lock.
 *
 * Room: in each worker's share, pending slots may number at most
 * http-pending-limit / http-threads; a new connection beyond that closes the
 * share's oldest pending one.  And a new connection that takes a worker's
 * last place closes the oldest pending (else idle) one, so the next
 * connection, a health check or a normal request, is accepted.  Pending
 * connections can therefore never hold more than http-pending-limit of the
 * http-connection-limit places: the rest stays for connections that sent a
 * header in time, and a request in progress is never closed for room.  Per
 * client address, libmicrohttpd refuses connections over
 * http-per-address-limit at accept (MHD_OPTION_PER_IP_CONNECTION_LIMIT).
 *
 * Strict framing and header bytes.
 *
 * libmicrohttpd 0.9.75 takes the first of several Content-Length headers,
 * lets Transfer-Encoding win over Content-Length, cuts a header value at a
 * NUL, takes a bare LF for a line end and glues a folded line onto the
 * header's name.  A proxy in front may read the same bytes otherwise: the
 * rest of the stream is then another request to one of them and a body to
 * the other (request smuggling).  ll_edge_framing names the rule such a
 * request breaks; http.c refuses it before anything else, with 400 and the
 * connection closed, so nothing after it on the connection is read as a
 * request.
 *
 * The NUL, the bare LF and the folding leave no trace in the parsed headers,
 * only in the bytes.  libmicrohttpd parses the request line and headers in
 * place, in one block of the connection's read buffer (starting at the
 * method, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE bytes long), turning each
 * CRLF into two NULs and each header's colon into one, and hands out
 * pointers into the block.  In a well-formed block each header's name thus
 * starts two bytes after the previous value ends (after the request line's
 * version for the first), and the block ends four bytes after the last
 * value.  Anything else means bytes that no parsed header shows.  This walk
 * relies on 0.9.75's parser: with another libmicrohttpd it is off (a warning
 * at start says so) and the other checks remain.
 *
 * Threads: the slot calls run on libmicrohttpd's worker threads, the reaper
 * on http.c's waiter thread; each worker's share has its own lock, so
 * workers never wait for one another.  ll_edge_framing runs on the worker
 * that parsed the request and touches nothing shared.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "edge.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/util.h"

/* --- slots ------------------------------------------------------------------ */

static int raw_walk; /* 1: libmicrohttpd is the 0.9.75 whose parse the framing walk knows */

enum slot_state { SLOT_PENDING, SLOT_IDLE, SLOT_SERVING };

typedef struct slot slot;
typedef struct share share;

struct slot {
    int fd;
    share *share;
    enum slot_state state;
    int listed;  /* in its share's list for state (pending or idle) */
    int closing; /* shut down by the edge; libmicrohttpd has yet to close it */
    int64_t deadline_ms;
    slot *prev, *next;
};

typedef struct slot_list {
    slot *head, *tail; /* oldest first: deadlines in order */
} slot_list;

struct share {
    const struct MHD_Daemon *daemon; /* the worker's; NULL while unassigned */
    pthread_mutex_t lock;            /* guards the rest and the slots in it */
    unsigned connections, closing, pending;
    slot_list lists[2];                     /* SLOT_PENDING, SLOT_IDLE */
    unsigned long closed_late, closed_room; /* since the last log line */
};

static struct {
    pthread_mutex_t lock; /* assigns shares to workers */
    share *shares;
    unsigned nshares;
    unsigned places;      /* connections libmicrohttpd gives one worker */
    unsigned pending_cap; /* pending slots one worker keeps */
    int64_t pending_ms, idle_ms;
    int64_t logged_ms;
} edge = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0, 0, 0, 0};

static _Thread_local share *thread_share; /* this worker's, once known */

static void slot_unlist(slot *s)
{
    slot_list *l;
    if (!s->listed)
        return;
    l = &s->share->lists[s->state];
    if (s->prev)
        s->prev->next = s->next;
    else
        l->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        l->tail = s->prev;
    s->prev = s->next = NULL;
    if (s->state == SLOT_PENDING)
        s->share->pending--;
    s->listed = 0;
}

/* Puts s at the end of the list of state (its share locked). */
static void slot_list_as(slot *s, enum slot_state state, int64_t deadline_ms)
{
    slot_list *l;
    slot_unlist(s);
    s->state = state;
    s->deadline_ms = deadline_ms;
    if (state == SLOT_SERVING || s->closing)
        return;
    l = &s->share->lists[state];
    s->prev = l->tail;
    s->next = NULL;
    if (l->tail)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
    s->listed = 1;
    if (state == SLOT_PENDING)
        s->share->pending++;
}

/* Ends s's connection (its share locked): libmicrohttpd reads the end of
 * the stream and closes it. */
static void slot_close(slot *s)
{
    slot_unlist(s);
    if (s->closing)
        return;
    s->closing = 1;
    s->share->closing++;
    shutdown(s->fd, SHUT_RDWR);
}

/* The share of worker d, assigned on its first connection. */
static share *share_of(const struct MHD_Daemon *d)
{
    share *sh = NULL;
    pthread_mutex_lock(&edge.lock);
    for (unsigned i = 0; i < edge.nshares && !sh; i++) {
        if (!edge.shares[i].daemon)
            edge.shares[i].daemon = d;
        if (edge.shares[i].daemon == d)
            sh = &edge.shares[i];
    }
    pthread_mutex_unlock(&edge.lock);
    return sh;
}

static void edge_opened(struct MHD_Connection *conn, void **socket_context)
{
    const union MHD_ConnectionInfo *fd, *d;
    share *sh = thread_share;
    slot *s;

    fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    d = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
    if (!fd || !d)
        return;
    if (!sh || sh->daemon != d->daemon)
        sh = thread_share = share_of(d->daemon);
    if (!sh || !(s = calloc(1, sizeof(*s))))
        return; /* not watched: libmicrohttpd's own timeout still applies */
    s->fd = fd->connect_fd;
    s->share = sh;
    pthread_mutex_lock(&sh->lock);
    sh->connections++;
    slot_list_as(s, SLOT_PENDING, ll_monotonic_ms() + edge.pending_ms);
    if (sh->pending > edge.pending_cap) {
        slot_close(sh->lists[SLOT_PENDING].head);
        sh->closed_room++;
    } else if (sh->connections - sh->closing >= edge.places) {
        slot *old = sh->lists[SLOT_PENDING].head;
        if (old == s)
            old = sh->lists[SLOT_IDLE].head;
        if (old) {
            slot_close(old);
            sh->closed_room++;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    *socket_context = s;
}

static void edge_closed(slot *s)
{
    share *sh;
    if (!s)
        return;
    sh = s->share;
    pthread_mutex_lock(&sh->lock);
    slot_unlist(s);
    sh->connections--;
    if (s->closing)
        sh->closing--;
    pthread_mutex_unlock(&sh->lock);
    free(s);
}

void ll_edge_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        edge_opened(conn, socket_context);
    } else {
        edge_closed(*socket_context);
        *socket_context = NULL;
    }
}

static slot *slot_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* A request header arrived complete: no deadline while it is served. */
void ll_edge_serving(struct MHD_Connection *conn)
{
    slot *s = slot_of(conn);
    if (!s)
        return;
    pthread_mutex_lock(&s->share->lock);
    slot_list_as(s, SLOT_SERVING, 0);
    pthread_mutex_unlock(&s->share->lock);
}

/* A request ended: the next header has until the idle deadline. */
void ll_edge_idle(struct MHD_Connection *conn)
{
    slot *s = slot_of(conn);
    if (!s)
        return;
    pthread_mutex_lock(&s->share->lock);
    if (s->state == SLOT_SERVING)
        slot_list_as(s, SLOT_IDLE, ll_monotonic_ms() + edge.idle_ms);
    pthread_mutex_unlock(&s->share->lock);
}

/* Closes the connections past their deadline (the waiter thread, every
 * 20 ms); one log line a second at most says how many were closed. */
void ll_edge_reap(void)
{
    int64_t now = ll_monotonic_ms();
    unsigned long late = 0, room = 0;

    for (unsigned i = 0; i < edge.nshares; i++) {
        share *sh = &edge.shares[i];
        pthread_mutex_lock(&sh->lock);
        for (int l = SLOT_PENDING; l <= SLOT_IDLE; l++) {
            slot *s;
            while ((s = sh->lists[l].head) && s->deadline_ms <= now) {
                slot_close(s);
                sh->closed_late++;
            }
        }
        if (now - edge.logged_ms >= 1000) {
            late += sh->closed_late;
            room += sh->closed_room;
            sh->closed_late = sh->closed_room = 0;
        }
        pthread_mutex_unlock(&sh->lock);
    }
    if (now - edge.logged_ms < 1000)
        return;
    edge.logged_ms = now;
    if (late || room)
        ll_log_warn("msg=\"closed connections that sent no request header in time, or to make "
                    "room\" late=%lu room=%lu header_timeout_s=%lld",
                    late, room, (long long)(edge.pending_ms / 1000));
}

/* Sizes the shares for cfg; 0, or LL_EINVALID when the limits leave no
 * room for requests. */
int ll_edge_init(const ll_config *cfg)
{
    unsigned threads = (unsigned)cfg->http_threads, total = (unsigned)cfg->http_connection_limit;
    unsigned pending = cfg->http_pending_limit ? (unsigned)cfg->http_pending_limit : total / 2;

    if (pending >= total) {
        ll_error_set(LL_EINVALID,
                     "http-pending-limit (%u) must be below http-connection-limit (%u)", pending,
                     total);
        ll_error_hint("connections still sending a request header may hold at most "
                      "http-pending-limit places; the rest stays for requests");
        return LL_EINVALID;
    }
    if (!(edge.shares = calloc(threads, sizeof(*edge.shares))))
        return ll_error_set(-1, "out of memory");
    for (unsigned i = 0; i < threads; i++)
        pthread_mutex_init(&edge.shares[i].lock, NULL);
    edge.nshares = threads;
    /* libmicrohttpd gives each worker total / threads places (the first
     * total % threads one more); pending slots keep one free at least. */
    edge.places = total / threads ? total / threads : 1;
    edge.pending_cap = pending / threads ? pending / threads : 1;
    if (edge.pending_cap >= edge.places && edge.places > 1)
        edge.pending_cap = edge.places - 1;
    edge.pending_ms = 1000LL * cfg->http_header_timeout;
    edge.idle_ms = 1000LL * (cfg->http_connection_timeout + cfg->http_header_timeout);
    edge.logged_ms = ll_monotonic_ms();
    raw_walk = strcmp(MHD_get_version(), "0.9.75") == 0;
    if (!raw_walk)
        ll_log_warn("msg=\"libmicrohttpd %s is not the 0.9.75 whose parse landlord knows: NULs, "
                    "bare LFs and folded lines in request headers are not looked for\"",
                    MHD_get_version());
    return 0;
}

/* After the daemon stopped: every connection is closed, every slot gone. */
void ll_edge_free(void)
{
    for (unsigned i = 0; i < edge.nshares; i++)
        pthread_mutex_destroy(&edge.shares[i].lock);
    free(edge.shares);
    edge.shares = NULL;
    edge.nshares = 0;
}

/* --- strict framing and header bytes ---------------------------------------- */

#define RULE_RAW                                                                                   \
    "the request header holds bytes that no header shows: a NUL, a line ended by a bare LF, "      \
    "or a folded line"

struct framing {
    const char *next, *end; /* where the next name must start, and the block's end; or NULL */
    unsigned content_length, transfer_encoding;
    const char *te; /* the Transfer-Encoding value */
    size_t te_len;
    const char *rule; /* the first rule broken, by header (when it is a name to show) */
    char header[64];
    const char *last_key; /* the header before, which a misplaced name blames */
    size_t last_key_size;
};

static int token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!token_char((unsigned char)s[i]))
            return 0;
    return n > 0;
}

/* 1 when the walk finds header key: value where a well-formed block has it;
 * else *blame is the header whose line holds the stray bytes (NULL: the
 * request line's). */
static int walk_header(struct framing *f, const char *key, size_t key_size, const char *value,
                       size_t value_size, const char **blame, size_t *blame_size)
{
    uintptr_t k = (uintptr_t)key, v = (uintptr_t)value, end = (uintptr_t)f->end;
    *blame = key;
    *blame_size = key_size;
    if (key != f->next) {
        *blame = f->last_key;
        *blame_size = f->last_key_size;
        return 0;
    }
    if (v < k + key_size + 1 || v > end || end - v < 2 || end - v - 2 < value_size)
        return 0;
    for (const char *p = key + key_size + 1; p < value; p++)
        if (*p != ' ' && *p != '\t')
            return 0;
    if (value[value_size] != '\0' || value[value_size + 1] != '\0')
        return 0;
    f->next = value + value_size + 2;
    return 1;
}

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      size_t key_size, const char *value, size_t value_size)
{
    struct framing *f = cls;
    const char *blame = key;
    size_t blame_size = key_size;
    if (!value)
        value = "";
    if (f->next && !walk_header(f, key, key_size, value, value_size, &blame, &blame_size))
        f->rule = RULE_RAW;
    else if (!is_token(key, key_size))
        f->rule = "a header name must be a token: no spaces, no control characters";
    for (size_t i = 0; i < value_size && !f->rule; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            f->rule = "a header value must not hold control characters (a tab is allowed)";
    }
    if (f->rule) {
        if (blame && is_token(blame, blame_size) && blame_size < sizeof(f->header))
            snprintf(f->header, sizeof(f->header), "%.*s", (int)blame_size, blame);
        return MHD_NO;
    }
    f->last_key = key;
    f->last_key_size = key_size;
    if (strcasecmp(key, "Content-Length") == 0)
        f->content_length++;
    if (strcasecmp(key, "Transfer-Encoding") == 0) {
        f->transfer_encoding++;
        f->te = value;
        f->te_len = value_size;
    }
    return MHD_YES;
}

/* 1 when the Transfer-Encoding value is "chunked", with optional blanks. */
static int te_chunked(const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n == 7 && strncasecmp(v, "chunked", 7) == 0;
}

/* The framing rule the headers break (naming the header in f->header), or
 * NULL. */
static const char *framing_rule(struct framing *f, const char *version)
{
    const char *rule = NULL, *header = "Transfer-Encoding";
    if (f->content_length > 1) {
        rule = "Content-Length must appear once (several are how requests are smuggled)";
        header = "Content-Length";
    } else if (f->content_length && f->transfer_encoding) {
        rule = "Content-Length and Transfer-Encoding must not come together";
    } else if (f->transfer_encoding > 1 ||
               (f->transfer_encoding && !te_chunked(f->te, f->te_len))) {
        rule = "Transfer-Encoding must be chunked, and appear once";
    } else if (f->transfer_encoding && strcmp(version, MHD_HTTP_VERSION_1_0) == 0) {
        rule = "an HTTP/1.0 request must not carry Transfer-Encoding";
    }
    if (rule)
        snprintf(f->header, sizeof(f->header), "%s", header);
    return rule;
}

const char *ll_edge_framing(struct MHD_Connection *conn, const char *method, const char *version,
                            char *header, size_t header_cap)
{
    struct framing f = {0};
    const union MHD_ConnectionInfo *hs =
        raw_walk ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE) : NULL;

    if (hs) {
        uintptr_t start = (uintptr_t)method, v = (uintptr_t)version;
        uintptr_t end = start + hs->header_size;
        size_t vlen = strlen(version);
        f.end = method + hs->header_size;
        if (v > start && v < end && end - v >= vlen + 2)
            f.next = version + vlen + 2;
        else
            f.rule = RULE_RAW;
    }
    if (!f.rule)
        MHD_get_connection_values_n(conn, MHD_HEADER_KIND, framing_header, &f);
    if (!f.rule && f.next && !(f.end - f.next == 2 && !f.next[0] && !f.next[1])) {
        f.rule = RULE_RAW;
        if (f.last_key && is_token(f.last_key, f.last_key_size) &&
            f.last_key_size < sizeof(f.header))
            snprintf(f.header, sizeof(f.header), "%.*s", (int)f.last_key_size, f.last_key);
    }
    if (!f.rule)
        f.rule = framing_rule(&f, version);
    snprintf(header, header_cap, "%s", f.rule ? f.header : "");
    return f.rule;
}

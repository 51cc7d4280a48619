/* stream.c - GET /api/v1/events as Server-Sent Events.
 *
 * Each open stream is a record on a list (at most 256).  libmicrohttpd
 * pulls its bytes through stream_read: formatted events after the last id
 * sent (of one tenant when asked), a keepalive comment after 15 s of
 * silence, and when there is nothing to say the connection is suspended
 * (parked) instead of holding a worker.  The waiter thread (waiter.c)
 * calls ll_streams_resume every 20 ms, which resumes the parked streams
 * whose events generation moved or whose keepalive is due.  When the
 * server stops, every stream ends after what it holds.
 *
 * Threads: the list, each stream's suspended flag and the stopping flag
 * are guarded by one mutex, so a stream is never resumed between deciding
 * to park and parking.  A stream's buffer is only touched by the worker
 * that libmicrohttpd runs its reader on.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "landlord/util.h"
#include "problem.h"
#include "reply.h"
#include "stream.h"

#define STREAMS_MAX  256
#define KEEPALIVE_MS 15000
#define STREAM_BATCH 100

typedef struct stream stream;

struct stream {
    struct MHD_Connection *conn;
    ll_core *core;
    long long last_id;
    char tenant[128]; /* only this tenant's events, or "" */
    ll_buf out;       /* formatted, not yet handed to libmicrohttpd */
    size_t taken;
    int64_t last_write_ms;
    unsigned long long seen; /* events generation when last looked */
    int suspended;
    stream *next;
};

static struct {
    pthread_mutex_t lock;
    int stopping;
    ll_core *core;
    stream *list; /* open event streams */
    int n;
} streams = {PTHREAD_MUTEX_INITIALIZER, 0, NULL, NULL, 0};

void ll_streams_start(ll_core *core)
{
    pthread_mutex_lock(&streams.lock);
    streams.core = core;
    streams.stopping = 0;
    pthread_mutex_unlock(&streams.lock);
}

void ll_streams_stop(void)
{
    pthread_mutex_lock(&streams.lock);
    streams.stopping = 1;
    pthread_mutex_unlock(&streams.lock);
}

void ll_streams_resume(int all)
{
    unsigned long long gen = ll_core_events_generation(streams.core);
    int64_t now = ll_monotonic_ms();
    pthread_mutex_lock(&streams.lock);
    for (stream *s = streams.list; s; s = s->next) {
        if (s->suspended && (all || gen != s->seen || now - s->last_write_ms >= KEEPALIVE_MS)) {
            s->suspended = 0;
            MHD_resume_connection(s->conn);
        }
    }
    pthread_mutex_unlock(&streams.lock);
}

/* Appends the events after s->last_id (of s->tenant when set). */
static void stream_fill(stream *s)
{
    json_t *events = NULL, *e;
    size_t i;
    if (ll_events_after(&events, s->core, s->last_id, STREAM_BATCH) < 0)
        return;
    json_array_foreach(events, i, e)
    {
        long long id = json_integer_value(json_object_get(e, "id"));
        const char *tenant = json_string_value(json_object_get(e, "tenant"));
        s->last_id = id;
        if (s->tenant[0] && (!tenant || strcmp(tenant, s->tenant) != 0))
            continue;
        char *data = json_dumps(e, JSON_COMPACT);
        if (data)
            ll_buf_printf(&s->out, "id: %lld\nevent: %s\ndata: %s\n\n", id,
                          json_string_value(json_object_get(e, "type")), data);
        free(data);
    }
    json_decref(events);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *s = cls;
    (void)pos;
    pthread_mutex_lock(&streams.lock);
    int stopping = streams.stopping;
    pthread_mutex_unlock(&streams.lock);
    if (s->taken == s->out.len) {
        s->out.len = 0;
        s->taken = 0;
        if (stopping)
            return MHD_CONTENT_READER_END_OF_STREAM;
        s->seen = ll_core_events_generation(s->core);
        stream_fill(s);
        if (s->out.len == 0 && ll_monotonic_ms() - s->last_write_ms >= KEEPALIVE_MS)
            ll_buf_adds(&s->out, ": keepalive\n\n");
        if (s->out.len == 0) {
            /* Nothing to say: park the connection until there is. */
            pthread_mutex_lock(&streams.lock);
            s->suspended = 1;
            MHD_suspend_connection(s->conn);
            pthread_mutex_unlock(&streams.lock);
            return 0;
        }
    }
    size_t n = s->out.len - s->taken;
    if (n > max)
        n = max;
    memcpy(buf, s->out.data + s->taken, n);
    s->taken += n;
    s->last_write_ms = ll_monotonic_ms();
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream *s = cls;
    pthread_mutex_lock(&streams.lock);
    for (stream **pp = &streams.list; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            streams.n--;
            break;
        }
    }
    pthread_mutex_unlock(&streams.lock);
    ll_buf_free(&s->out);
    free(s);
}

enum MHD_Result ll_reply_event_stream(ll_req *req, long long after, const char *tenant)
{
    stream *s = calloc(1, sizeof(*s));
    if (!s)
        return MHD_NO;
    s->conn = req->conn;
    s->core = req->core;
    s->last_id = after;
    snprintf(s->tenant, sizeof(s->tenant), "%s", tenant ? tenant : "");
    ll_buf_init(&s->out, 4 << 20);
    ll_buf_adds(&s->out, "retry: 3000\n\n");
    s->last_write_ms = ll_monotonic_ms();
    pthread_mutex_lock(&streams.lock);
    if (streams.stopping || streams.n >= STREAMS_MAX) {
        pthread_mutex_unlock(&streams.lock);
        ll_buf_free(&s->out);
        free(s);
        return ll_reply_problem(req, 503, "unavailable",
                                "too many open event streams; try again later", NULL);
    }
    s->next = streams.list;
    streams.list = s;
    streams.n++;
    pthread_mutex_unlock(&streams.lock);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free);
    if (!resp) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return ll_reply_response(req, 200, resp);
}

/* log.c - key=value lines on stderr.
 *
 * A line: `ts=... level=info req=<id> msg="..." k=v ...`.  Callers format the
 * key=value part; this module adds time, level and the request id that the
 * HTTP layer set for the current thread.  One fputs per line, so lines from
 * different threads do not interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/util.h"

ll_log_level ll_log_threshold = LL_LOG_INFO;

static __thread char request_id[130];

static const char *level_names[] = {"debug", "info", "warn", "error"};

int ll_log_parse_level(ll_log_level *out, const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (ll_log_level)i;
            return 0;
        }
    }
    return ll_error_set(LL_EINVALID, "unknown log level '%s'", name);
}

void ll_log_set_request_id(const char *id)
{
    size_t n = id ? strnlen(id, sizeof(request_id) - 1) : 0;
    memcpy(request_id, id ? id : "", n);
    request_id[n] = '\0';
}

void ll_log_write(ll_log_level level, const char *fmt, ...)
{
    char ts[32], line[2048];
    int n;
    va_list ap;

    if (level < ll_log_threshold)
        return;
    ll_now_rfc3339(ts);
    n = snprintf(line, sizeof(line), "ts=%s level=%s", ts, level_names[level]);
    if (request_id[0] && n < (int)sizeof(line))
        n += snprintf(line + n, sizeof(line) - n, " req=%s", request_id);
    if (n < (int)sizeof(line) - 2) {
        line[n++] = ' ';
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
    }
    if (n >= (int)sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n] = '\n';
    line[n + 1] = '\0';
    fputs(line, stderr);
}

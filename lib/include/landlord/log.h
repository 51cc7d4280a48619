/* log.h - one line per event on stderr, key=value, with the request id.
 *
 * Messages must never carry a token, password or other credential.  The level
 * is checked before anything is formatted.
 *
 * Ownership: arguments are borrowed for the call; nothing is kept.
 */
#ifndef LANDLORD_LOG_H
#define LANDLORD_LOG_H

typedef enum { LL_LOG_DEBUG = 0, LL_LOG_INFO, LL_LOG_WARN, LL_LOG_ERROR } ll_log_level;

extern ll_log_level ll_log_threshold;

/* Parses "debug", "info", "warn" or "error"; returns LL_EINVALID otherwise. */
int ll_log_parse_level(ll_log_level *out, const char *name);

/* Sets the request id printed with every line from this thread (copied; NULL
 * clears it). */
void ll_log_set_request_id(const char *request_id);

void ll_log_write(ll_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ll_log_debug(...)                                                                          \
    do {                                                                                           \
        if (ll_log_threshold <= LL_LOG_DEBUG)                                                      \
            ll_log_write(LL_LOG_DEBUG, __VA_ARGS__);                                               \
    } while (0)
#define ll_log_info(...)                                                                           \
    do {                                                                                           \
        if (ll_log_threshold <= LL_LOG_INFO)                                                       \
            ll_log_write(LL_LOG_INFO, __VA_ARGS__);                                                \
    } while (0)
#define ll_log_warn(...)                                                                           \
    do {                                                                                           \
        if (ll_log_threshold <= LL_LOG_WARN)                                                       \
            ll_log_write(LL_LOG_WARN, __VA_ARGS__);                                                \
    } while (0)
#define ll_log_error(...) ll_log_write(LL_LOG_ERROR, __VA_ARGS__)

#endif

/* error.c - the thread-local last error.
 *
 * Each thread has one ll_error.  ll_error_set() overwrites it; detail, hint and
 * field add to it.  Nothing here allocates, so it works when memory runs out.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "landlord/error.h"

static __thread ll_error last_error;

int ll_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    last_error.code = code;
    va_start(ap, fmt);
    vsnprintf(last_error.message, sizeof(last_error.message), fmt, ap);
    va_end(ap);
    last_error.detail[0] = '\0';
    last_error.hint[0] = '\0';
    last_error.field[0] = '\0';
    last_error.kind[0] = '\0';
    return code;
}

void ll_error_detail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error.detail, sizeof(last_error.detail), fmt, ap);
    va_end(ap);
}

void ll_error_hint(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error.hint, sizeof(last_error.hint), fmt, ap);
    va_end(ap);
}

void ll_error_field(const char *field)
{
    snprintf(last_error.field, sizeof(last_error.field), "%s", field ? field : "");
}

void ll_error_kind(const char *kind)
{
    snprintf(last_error.kind, sizeof(last_error.kind), "%s", kind ? kind : "");
}

const ll_error *ll_error_last(void)
{
    return &last_error;
}

void ll_error_clear(void)
{
    memset(&last_error, 0, sizeof(last_error));
}

const char *ll_error_name(int code)
{
    switch (code) {
    case LL_OK:
        return "ok";
    case LL_ENOTFOUND:
        return "not-found";
    case LL_EEXISTS:
        return "exists";
    case LL_EINVALID:
        return "invalid";
    case LL_ECONFLICT:
        return "conflict";
    case LL_EAUTH:
        return "unauthorized";
    case LL_EFORBIDDEN:
        return "forbidden";
    case LL_EUPSTREAM:
        return "upstream";
    case LL_ETIMEOUT:
        return "timeout";
    case LL_EMALFORMED:
        return "malformed";
    case LL_EGONE:
        return "gone";
    case LL_EPRECONDITION:
        return "precondition-failed";
    case LL_ENOSPACE:
        return "no-space";
    default:
        return "error";
    }
}

int ll_error_of_errno(int err)
{
    return err == ENOSPC || err == EDQUOT ? LL_ENOSPACE : LL_ERROR;
}

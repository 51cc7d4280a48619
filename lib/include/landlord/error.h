/* error.h - return codes and the thread-local last error.
 *
 * Functions return 0 on success, one of the negative LL_E* codes below for the
 * failures a caller is expected to handle, and -1 for everything else.  The
 * message that goes with the most recent failure on this thread is kept by
 * ll_error_set() and read with ll_error_last(); lower layers set it, upper
 * layers pass the code up and leave the message alone.
 *
 * Ownership: the strings given to the setters are copied (truncated to
 * their fields); ll_error_last() and ll_error_name() return borrowed or
 * static text the caller never frees.
 */
#ifndef LANDLORD_ERROR_H
#define LANDLORD_ERROR_H

#include <stdarg.h>

enum {
    LL_OK = 0,
    LL_ERROR = -1,          /* anything unexpected */
    LL_ENOTFOUND = -2,      /* the named thing does not exist */
    LL_EEXISTS = -3,        /* the thing to create exists already */
    LL_EINVALID = -4,       /* well-formed input that breaks a rule */
    LL_ECONFLICT = -5,      /* the current state forbids the change */
    LL_EAUTH = -6,          /* missing or bad credentials */
    LL_EFORBIDDEN = -7,     /* credentials lack a permission */
    LL_EUPSTREAM = -8,      /* git remote, registry or cluster failed */
    LL_ETIMEOUT = -9,       /* waited too long */
    LL_EMALFORMED = -10,    /* input that cannot be parsed at all */
    LL_EGONE = -11,         /* a position that expired (a Kubernetes resourceVersion) */
    LL_EPRECONDITION = -12, /* the caller's If-Match names another version */
    LL_ENOSPACE = -13       /* the data volume is full (ENOSPC, EDQUOT): nothing was written */
};

#define LL_ERROR_MSG_MAX 512

typedef struct ll_error {
    int code;
    char message[LL_ERROR_MSG_MAX]; /* one line: what failed, with what input */
    char detail[LL_ERROR_MSG_MAX];  /* optional: more about the failure */
    char hint[LL_ERROR_MSG_MAX];    /* optional: what to do about it */
    char field[128];                /* optional: the request field at fault, e.g. "id" */
    char kind[64]; /* optional: a finer error class than the code, e.g. "render-failed" */
} ll_error;

/* Records a failure on this thread and returns code, so callers can write
 * `return ll_error_set(LL_EINVALID, "...")`.  Clears detail, hint and field. */
int ll_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Add detail, hint or the field at fault to the error last set. */
void ll_error_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ll_error_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ll_error_field(const char *field);
void ll_error_kind(const char *kind);

/* The last error set on this thread (borrowed; never NULL). */
const ll_error *ll_error_last(void);

/* Forget the last error. */
void ll_error_clear(void);

/* A short stable name for a code ("invalid", "not-found", ...).  Static string. */
const char *ll_error_name(int code);

/* The code for a failed system call's errno: LL_ENOSPACE when the volume is
 * full (ENOSPC, or EDQUOT: over a quota), else LL_ERROR. */
int ll_error_of_errno(int err);

#endif

/* storage.h - whether the data volume takes writes.
 *
 * A write that fails because the volume is full (LL_ENOSPACE: the registry's
 * SQLite file or its WAL, the chart image layout) reports it with
 * ll_storage_full(); the next write that reaches the disk reports
 * ll_storage_ok().  /readyz shows the state, so an operator sees why writes
 * answer 503 and sees it clear once space is freed, without a restart.
 * Process-wide and thread-safe: the volume is shared by every connection.
 *
 * Ownership: message is borrowed for the call.
 */
#ifndef LANDLORD_STORAGE_H
#define LANDLORD_STORAGE_H

#include "landlord/error.h"

/* Records that a write failed for lack of space: path is the file that could
 * not be written (logged, never shown to callers), message the error a
 * caller was given.  Logs once when the volume turns full. */
void ll_storage_full(const char *path, const char *message);

/* Records that a write reached the disk: the volume takes writes again. */
void ll_storage_ok(void);

/* 1 while the last write to the data volume failed for lack of space. */
int ll_storage_is_full(void);

/* The data volume's state, copied out: a value. */
typedef struct ll_storage_state {
    int full;                     /* the last write failed for lack of space */
    char error[LL_ERROR_MSG_MAX]; /* the error a caller was given then, "" when not full */
    char since[32];               /* when it turned full (RFC 3339), "" when not */
} ll_storage_state;

/* Copies the volume's state into *out. */
void ll_storage_health(ll_storage_state *out);

/* 1 when an error message (libgit2's, which ends with strerror(errno)) says
 * that a volume was full. */
int ll_storage_message_full(const char *message);

/* Takes the data dir's lock (an exclusive flock on <dir>/landlord.lock,
 * which the kernel lets go when the process ends, even by kill -9), so
 * that two landlords never share a registry, clone and embedded remote.
 * *out_fd the lock's descriptor (ll_storage_unlock); LL_ECONFLICT when
 * another process holds it. */
int ll_storage_lock(int *out_fd, const char *dir);

/* Lets the lock go; fd < 0 is fine. */
void ll_storage_unlock(int fd);

#endif

/* storage.c - whether the data volume takes writes (see storage.h).
 *
 * One flag for the process, set by the writer that met a full volume and
 * cleared by the next write that succeeded.  The flag is an atomic so that
 * the registry's after-commit hook, which runs on every commit of every
 * thread, costs one load while all is well; the message and the time it
 * turned full are kept under a mutex for /readyz.
 *
 * The data dir's lock is a flock: held by the process that serves (or
 * imports, or restores) the dir, gone with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/storage.h"
#include "landlord/util.h"

static int full;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char message_at_full[LL_ERROR_MSG_MAX];
static char since[32];

void ll_storage_full(const char *path, const char *message)
{
    int was;
    pthread_mutex_lock(&lock);
    was = __atomic_exchange_n(&full, 1, __ATOMIC_ACQ_REL);
    snprintf(message_at_full, sizeof(message_at_full), "%s", message ? message : "");
    if (!was)
        ll_now_rfc3339(since);
    pthread_mutex_unlock(&lock);
    if (!was)
        ll_log_warn("msg=\"the data volume is full; writes are refused until space is freed\" "
                    "path=\"%s\" error=\"%s\"",
                    path ? path : "", message ? message : "");
}

void ll_storage_ok(void)
{
    if (!__atomic_load_n(&full, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&lock);
    int was = __atomic_exchange_n(&full, 0, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&lock);
    if (was)
        ll_log_info("msg=\"the data volume takes writes again\"");
}

int ll_storage_is_full(void)
{
    return __atomic_load_n(&full, __ATOMIC_ACQUIRE);
}

void ll_storage_health(ll_storage_state *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&lock);
    if ((out->full = __atomic_load_n(&full, __ATOMIC_ACQUIRE))) {
        snprintf(out->error, sizeof(out->error), "%s", message_at_full);
        snprintf(out->since, sizeof(out->since), "%s", since);
    }
    pthread_mutex_unlock(&lock);
}

int ll_storage_message_full(const char *message)
{
    return message && (strstr(message, strerror(ENOSPC)) || strstr(message, strerror(EDQUOT)) ||
                       strstr(message, "the data volume is full"));
}

int ll_storage_lock(int *out_fd, const char *dir)
{
    char path[4096];
    int fd;

    *out_fd = -1;
    if ((size_t)snprintf(path, sizeof(path), "%s/landlord.lock", dir) >= sizeof(path))
        return ll_error_set(LL_EINVALID, "data dir path too long");
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
        return ll_error_set(ll_error_of_errno(errno), "cannot open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(fd);
        if (err != EWOULDBLOCK)
            return ll_error_set(LL_ERROR, "cannot lock %s: %s", path, strerror(err));
        ll_error_set(LL_ECONFLICT, "another landlord process uses the data dir %s", dir);
        ll_error_hint("stop it first, or give this one a --data of its own");
        return LL_ECONFLICT;
    }
    *out_fd = fd;
    return 0;
}

void ll_storage_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the last descriptor lets the flock go */
}

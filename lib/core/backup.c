/* backup.c - the registry of a data dir copied out while serving, and put
 * back while not (landlord backup, landlord restore).
 *
 * The SQLite mechanics are the registry's (lib/registry/backup.c); here is
 * only where the file is and the data dir's lock: a restore takes it, so
 * it is refused while a landlord serves (or imports into) the dir.  What a
 * restored registry lacks the repository still has: at its next start the
 * registry follows the head again (adopting tenant files it does not know,
 * marking drifted those whose files are gone).
 */
#include <stdio.h>

#include "core_int.h"
#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/registry.h"
#include "landlord/storage.h"
#include "landlord/util.h"

static int db_path(char *out, size_t cap, const ll_config *cfg)
{
    if ((size_t)snprintf(out, cap, "%s/" LL_CORE_REGISTRY_FILE, cfg->data) >= cap)
        return ll_error_set(LL_EINVALID, "data dir path too long");
    return 0;
}

int ll_core_backup(const ll_config *cfg, const char *to)
{
    char path[4096];
    int error = db_path(path, sizeof(path), cfg);
    return error < 0 ? error : ll_registry_backup(path, to);
}

int ll_core_restore(const ll_config *cfg, const char *from)
{
    char path[4096];
    int lock = -1, error;

    /* A new machine's data dir may not exist yet. */
    if ((error = db_path(path, sizeof(path), cfg)) < 0 || (error = ll_mkdir_p(cfg->data)) < 0 ||
        (error = ll_storage_lock(&lock, cfg->data)) < 0)
        return error;
    error = ll_registry_restore(path, from);
    ll_storage_unlock(lock);
    return error;
}

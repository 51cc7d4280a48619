/* core_int.h - the service handle, shared by the files of the core's use
 * cases (tenants.c, events.c); private to lib/. */
#ifndef LANDLORD_CORE_INT_H
#define LANDLORD_CORE_INT_H

#include <pthread.h>

#include "landlord/config.h"
#include "landlord/core.h"
#include "landlord/gitops.h"
#include "landlord/ociremote.h"
#include "landlord/status.h"
#include "landlord/webhooks.h"

struct ll_core {
    ll_config cfg;
    char db_path[1100];
    char git_url[1100];
    char work_path[1100];
    char oci_dir[1200];           /* the OCI image layout of uploaded releases (embedded default) */
    ll_ociremote *oci;            /* the OCI registry (oci-url), or NULL for the layout */
    pthread_mutex_t release_lock; /* one upload or delete of a release at a time */
    ll_gitops *git;
    ll_status *status;     /* NULL unless serving */
    ll_webhooks *webhooks; /* NULL unless serving */
    pthread_key_t reg_key;
};

/* Records an LL_EINVALID error about field; returns LL_EINVALID. */
int ll_core_field_error(const char *field, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif

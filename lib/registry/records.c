/* records.c - rows into arrays of records: the registry's stores that
 * read lists (registry_events.c, releases.c) run reg_rows with reg_collect,
 * which grows a reg_records array and fills each new, zeroed record with
 * the store's from_row; reg_records_finish hands the array to the caller or,
 * after a failure, frees it with the store's clear.  Column helpers copy
 * text out of a row.  Used on the calling thread only; nothing is kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/util.h"
#include "registry_int.h"

int reg_collect(sqlite3_stmt *st, void *payload)
{
    reg_records *l = payload;
    if (ll_grow(&l->v, &l->cap, l->n, l->size) < 0)
        return -1;
    char *item = (char *)l->v + l->n * l->size;
    memset(item, 0, l->size);
    l->n++;
    return l->from_row(item, st) < 0 ? ll_error_set(-1, "out of memory") : 0;
}

void reg_records_free(void *v, size_t n, size_t size, void (*clear)(void *))
{
    for (size_t i = 0; v && i < n; i++)
        clear((char *)v + i * size);
    free(v);
}

int reg_records_finish(void **out, size_t *out_n, reg_records *l, int error)
{
    *out = NULL;
    *out_n = 0;
    if (error < 0 || !l->n) {
        reg_records_free(l->v, l->n, l->size, l->clear);
        return error < 0 ? error : 0;
    }
    *out = l->v;
    *out_n = l->n;
    return 0;
}

char *reg_dup_col(sqlite3_stmt *st, int i, int *oom)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    char *s = v ? strdup(v) : NULL;
    if (v && !s && oom)
        *oom = 1;
    return s;
}

void reg_copy_col(char *to, size_t cap, sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    snprintf(to, cap, "%s", v ? v : "");
}

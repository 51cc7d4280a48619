/* embedded.h - files compiled into the binary at build time (cmake/embed.cmake):
 * migrations/, lib/seed/, openapi/openapi.yaml and web/. */
#ifndef LANDLORD_EMBEDDED_H
#define LANDLORD_EMBEDDED_H

#include <stddef.h>

typedef struct ll_embedded_file {
    const char *path;          /* relative to the source root, e.g. "migrations/0001_init.sql" */
    const unsigned char *data; /* NUL-terminated, size bytes before the NUL */
    size_t size;
} ll_embedded_file;

/* Terminated by an entry whose path is NULL; sorted by path. */
extern const ll_embedded_file ll_embedded_files[];

/* The file at path, or NULL (borrowed, static). */
const ll_embedded_file *ll_embedded_find(const char *path);

#endif

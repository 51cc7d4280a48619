/* chart_tar.h - the tar's framing as Helm reads it (chart_tar.c), for the
 * chart reader (chart.c); private to lib/charts. */
#ifndef LANDLORD_CHART_TAR_H
#define LANDLORD_CHART_TAR_H

#include <stddef.h>

#define PAX_MAX (1u << 20) /* libarchive's own limit on a pax header */

enum { SCAN_HEADER, SCAN_PAX, SCAN_SKIP, SCAN_END };

typedef struct ll_tar_scan {
    int state;
    unsigned char hdr[512]; /* the header being gathered */
    size_t have;
    unsigned long long left; /* SCAN_SKIP, SCAN_PAX: bytes to go */
    unsigned long long pad;  /* SCAN_PAX: padding after the pax body */
    char *pax;               /* SCAN_PAX: the body gathered */
    size_t pax_len;
    long long pax_size;    /* a pax "size" for the next entry, or -1 */
    int paxes, long_names; /* pax and GNU long name headers before the next entry */
    char why[200];         /* the refusal, once refused */
} ll_tar_scan;

/* Scans the next n bytes of the stream (starting with state SCAN_HEADER,
 * pax_size -1, the rest zero).  -1 once refused: sc->why says why.  The
 * caller frees sc->pax. */
int ll_tar_scan_feed(ll_tar_scan *sc, const unsigned char *p, size_t n);

#endif

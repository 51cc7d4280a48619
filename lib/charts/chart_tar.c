/* chart_tar.c - the tar's framing, as Helm reads it.
 *
 * Helm reads charts with Go's archive/tar; libarchive's tar reader
 * differs: it reads some entry types as headers of the next entry (GNU
 * volume 'V', Solaris ACL 'A', Sun's 'X'), or a body that Go skips (a
 * pax "size" on a folder).  An entry either one hides from the other
 * could be a second Chart.yaml.  So the stream tar reads also goes
 * through this scanner, which frames headers and bodies as Go does and
 * refuses every entry type but regular files ('0', '\0'), folders ('5'),
 * pax headers ('x', 'g') and GNU long names ('L', 'K'): the types
 * `helm package`, GNU tar and pax write for a chart, on which both
 * readers agree.  chart.c hands every block it gives libarchive's tar
 * reader to ll_tar_scan_feed() too.
 *
 * Pure: the scanner's state is the caller's; reentrant.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chart_tar.h"

/* A header's octal number field, as Go's parseOctal takes it (spaces and
 * NULs around digits); -1 when it is anything else (base-256 included:
 * no chart needs 8 GiB). */
static long long octal_field(const unsigned char *p, size_t n)
{
    size_t a = 0, b = n;
    long long v = 0;
    while (a < b && (p[a] == ' ' || p[a] == '\0'))
        a++;
    while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\0'))
        b--;
    for (size_t i = a; i < b; i++) {
        if (p[i] < '0' || p[i] > '7' || v > (LLONG_MAX >> 3))
            return -1;
        v = v * 8 + (p[i] - '0');
    }
    return v;
}

/* The decimal number [p, end) of a pax record, or -1 when it is empty,
 * holds anything but digits, or does not fit. */
static long long pax_number(const char *p, const char *end)
{
    long long v = 0;
    if (p == end)
        return -1;
    for (const char *q = p; q < end; q++) {
        if (*q < '0' || *q > '9' || v > (LLONG_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*q - '0');
    }
    return v;
}

/* The "size" record of a pax body, or -1 when it has none; -2 when the
 * body is malformed (Go refuses it too); -3 when it has a GNU.sparse.*
 * record (libarchive takes GNU.sparse.name as the path even when Go, with
 * no sparse map, does not; sparse files are refused anyway). */
static long long pax_size_record(const char *p, size_t n)
{
    long long size = -1;
    while (n > 0) {
        size_t len = 0, i = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && len < PAX_MAX)
            len = len * 10 + (size_t)(p[i++] - '0');
        if (i == 0 || i >= n || p[i] != ' ' || len <= i + 1 || len > n || p[len - 1] != '\n')
            return -2;
        const char *kv = p + i + 1, *end = p + len - 1;
        const char *eq = memchr(kv, '=', (size_t)(end - kv));
        if (!eq)
            return -2;
        if (eq - kv >= 11 && memcmp(kv, "GNU.sparse.", 11) == 0)
            return -3;
        if (eq - kv == 4 && memcmp(kv, "size", 4) == 0 && (size = pax_number(eq + 1, end)) < 0)
            return -2;
        p += len;
        n -= len;
    }
    return size;
}

static int scan_refuse(ll_tar_scan *sc, const char *why)
{
    snprintf(sc->why, sizeof(sc->why), "%s", why);
    return -1;
}

/* Go and libarchive apply a chain of these headers in other orders (Go:
 * the last long name, a long name over a pax path, a global header takes
 * the pax records before it; libarchive: the first long name, the outer
 * header last): only one of a kind per entry.  Counts the header of this
 * type; -1 (sc->why) when it is a second one. */
static int count_name_header(ll_tar_scan *sc, char type)
{
    if ((type == 'x' && sc->long_names) || (type == 'L' && (sc->paxes || sc->long_names)) ||
        (type == 'g' && (sc->paxes || sc->long_names)))
        return scan_refuse(sc, "an entry named by more than one pax or GNU long name header");
    sc->paxes += type == 'x';
    sc->long_names += type == 'L';
    if (type == '0' || type == '\0' || type == '5')
        sc->paxes = sc->long_names = 0;
    return 0;
}

/* A pax header of body bytes: gathered next (SCAN_PAX), up to PAX_MAX. */
static int scan_pax_start(ll_tar_scan *sc, unsigned long long body)
{
    if (body > PAX_MAX)
        return scan_refuse(sc, "a pax header larger than 1 MiB");
    free(sc->pax);
    if (!(sc->pax = malloc(body ? body : 1)))
        return scan_refuse(sc, "a pax header that cannot be kept (out of memory)");
    sc->pax_len = 0;
    sc->left = body;
    sc->pad = (512 - body % 512) % 512;
    sc->state = SCAN_PAX;
    if (!body) {
        sc->pax_size = -1;
        sc->state = SCAN_HEADER;
    }
    return 0;
}

/* A whole header is in sc->hdr: what follows it. */
static int scan_header(ll_tar_scan *sc)
{
    const unsigned char *h = sc->hdr;
    char type = (char)h[156];
    long long size = octal_field(h + 124, 12);
    static const unsigned char zero[512];

    sc->have = 0;
    if (memcmp(h, zero, sizeof(zero)) == 0) {
        sc->state = SCAN_END; /* the end marker: check_rest reads on */
        return 0;
    }
    if (size < 0)
        return scan_refuse(sc, "a tar header with a size that is not an octal number");
    unsigned long long body = (unsigned long long)size;
    if (count_name_header(sc, type) < 0)
        return -1;
    switch (type) {
    case 'x':
        return scan_pax_start(sc, body);
    case 'g':
    case 'L':
    case 'K':
        break;
    case '5':
        if (sc->pax_size > 0)
            return scan_refuse(sc, "a folder whose pax header gives it data");
        body = 0; /* Go reads no body for a folder */
        sc->pax_size = -1;
        break;
    case '0':
    case '\0':
        if (sc->pax_size >= 0)
            body = (unsigned long long)sc->pax_size;
        sc->pax_size = -1;
        break;
    default:
        snprintf(sc->why, sizeof(sc->why),
                 "an entry of tar type '%c', which is neither a file nor a folder (only those, "
                 "pax headers and GNU long names are read alike by landlord and Helm)",
                 type >= 0x20 && type < 0x7f ? type : '?');
        return -1;
    }
    sc->left = body + (512 - body % 512) % 512;
    sc->state = sc->left ? SCAN_SKIP : SCAN_HEADER;
    return 0;
}

/* Scans the next n bytes of the stream.  -1 once refused (sc->why). */
int ll_tar_scan_feed(ll_tar_scan *sc, const unsigned char *p, size_t n)
{
    while (n > 0 && sc->state != SCAN_END) {
        size_t k;
        switch (sc->state) {
        case SCAN_HEADER:
            k = n < 512 - sc->have ? n : 512 - sc->have;
            memcpy(sc->hdr + sc->have, p, k);
            sc->have += k;
            if (sc->have == 512 && scan_header(sc) < 0)
                return -1;
            break;
        case SCAN_PAX:
            k = n < sc->left ? n : (size_t)sc->left;
            memcpy(sc->pax + sc->pax_len, p, k);
            sc->pax_len += k;
            sc->left -= k;
            if (!sc->left) {
                sc->pax_size = pax_size_record(sc->pax, sc->pax_len);
                if (sc->pax_size == -2)
                    return scan_refuse(sc, "a malformed pax header");
                if (sc->pax_size == -3)
                    return scan_refuse(sc, "a pax header with GNU sparse records, which Helm's "
                                           "reader and landlord's name differently");
                sc->left = sc->pad;
                sc->state = sc->left ? SCAN_SKIP : SCAN_HEADER;
            }
            break;
        default: /* SCAN_SKIP */
            k = n < sc->left ? n : (size_t)sc->left;
            sc->left -= k;
            if (!sc->left)
                sc->state = SCAN_HEADER;
            break;
        }
        p += k;
        n -= k;
    }
    return 0;
}

/* util.c - capped buffers, clocks, randomness, small file helpers.
 *
 * ll_buf never grows past the cap its owner chose: anything sized by a client
 * or an upstream goes through one.  Everything here is thread-safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "landlord/embedded.h"
#include "landlord/error.h"
#include "landlord/util.h"

void ll_buf_init(ll_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

int ll_buf_add(ll_buf *b, const void *data, size_t n)
{
    size_t want, nalloc;
    char *p;

    if (n > b->cap || b->len > b->cap - n)
        return ll_error_set(LL_EINVALID, "data exceeds the limit of %zu bytes", b->cap);
    want = b->len + n + 1;
    if (want > b->alloc) {
        nalloc = b->alloc ? b->alloc : 256;
        while (nalloc < want)
            nalloc *= 2;
        if (nalloc > b->cap + 1)
            nalloc = b->cap + 1;
        p = realloc(b->data, nalloc);
        if (!p)
            return ll_error_set(LL_ERROR, "out of memory");
        b->data = p;
        b->alloc = nalloc;
    }
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int ll_buf_adds(ll_buf *b, const char *s)
{
    return ll_buf_add(b, s, strlen(s));
}

int ll_buf_printf(ll_buf *b, const char *fmt, ...)
{
    char small[512], *big = NULL;
    int n, error;
    va_list ap;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return ll_error_set(LL_ERROR, "bad format");
    if ((size_t)n < sizeof(small))
        return ll_buf_add(b, small, n);
    if (!(big = malloc((size_t)n + 1)))
        return ll_error_set(LL_ERROR, "out of memory");
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    error = ll_buf_add(b, big, n);
    free(big);
    return error;
}

char *ll_buf_steal(size_t *out_len, ll_buf *b)
{
    char *p = b->data;
    if (!p) {
        p = calloc(1, 1);
    }
    if (out_len)
        *out_len = b->len;
    b->data = NULL;
    b->len = b->alloc = 0;
    return p;
}

void ll_buf_free(ll_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

int ll_grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    if (*cap > SIZE_MAX / 2 / size)
        return ll_error_set(-1, "out of memory");
    size_t grown_cap = *cap ? *cap * 2 : 16;
    void *grown = realloc(*v, grown_cap * size);
    if (!grown)
        return ll_error_set(-1, "out of memory");
    *v = grown;
    *cap = grown_cap;
    return 0;
}

void ll_now_rfc3339(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

int64_t ll_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ll_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ll_hex_encode(char *out, const unsigned char *in, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ll_hex_decode(unsigned char *out, size_t cap, const char *hex)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (int)(n / 2);
}

int ll_random_hex(char *out, size_t nbytes)
{
    unsigned char raw[64];
    size_t got = 0;
    if (nbytes > sizeof(raw))
        return ll_error_set(LL_EINVALID, "too many random bytes asked for");
    while (got < nbytes) {
        ssize_t r = getrandom(raw + got, nbytes - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return ll_error_set(LL_ERROR, "getrandom: %s", strerror(errno));
        }
        got += (size_t)r;
    }
    ll_hex_encode(out, raw, nbytes);
    return 0;
}

int ll_read_file(char **out, size_t *out_len, const char *path, size_t cap)
{
    int error = -1, fd = -1;
    ll_buf b;
    char chunk[8192];
    ssize_t r;

    ll_buf_init(&b, cap);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        error = ll_error_set(errno == ENOENT ? LL_ENOTFOUND : LL_ERROR, "cannot open %s: %s", path,
                             strerror(errno));
        goto done;
    }
    while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            ll_error_set(LL_ERROR, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        if ((error = ll_buf_add(&b, chunk, (size_t)r)) < 0) {
            ll_error_set(error, "%s is larger than %zu bytes", path, cap);
            goto done;
        }
    }
    *out = ll_buf_steal(out_len, &b);
    error = 0;
done:
    if (fd >= 0)
        close(fd);
    ll_buf_free(&b);
    return error;
}

int ll_mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return ll_error_set(LL_EINVALID, "bad directory path '%s'", path);
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
            return ll_error_set(ll_error_of_errno(errno), "cannot create %s: %s", tmp,
                                strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
        return ll_error_set(ll_error_of_errno(errno), "cannot create %s: %s", tmp, strerror(errno));
    return 0;
}

const ll_embedded_file *ll_embedded_find(const char *path)
{
    for (const ll_embedded_file *f = ll_embedded_files; f->path; f++) {
        if (strcmp(f->path, path) == 0)
            return f;
    }
    return NULL;
}

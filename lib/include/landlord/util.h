/* util.h - capped growable buffers, time stamps, random ids.
 *
 * Ownership: pointer arguments are borrowed for the call; an ll_buf owns
 * its bytes until ll_buf_free or ll_buf_steal.
 */
#ifndef LANDLORD_UTIL_H
#define LANDLORD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer with a mandatory cap (curl's dynbuf).  The bytes are
 * always followed by a NUL that len does not count. */
typedef struct ll_buf {
    char *data;
    size_t len;
    size_t alloc;
    size_t cap;
} ll_buf;

/* Starts an empty buffer that may grow to at most cap bytes. */
void ll_buf_init(ll_buf *b, size_t cap);

/* Appends n bytes; LL_EINVALID (with a message) when the cap would be passed,
 * -1 when memory runs out.  Either way the buffer is unchanged. */
int ll_buf_add(ll_buf *b, const void *data, size_t n);
int ll_buf_adds(ll_buf *b, const char *s);
int ll_buf_printf(ll_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hands the bytes to the caller (who frees them) and resets the buffer. */
char *ll_buf_steal(size_t *out_len, ll_buf *b);

void ll_buf_free(ll_buf *b);

/* Makes room for one more item of size bytes in the array *v, which holds
 * n items in room for *cap: when full, *cap doubles (from 16) and *v is
 * reallocated.  The new item's bytes are left as they are.  0, or -1 with
 * the error set when out of memory (*v and *cap unchanged). */
int ll_grow(void **v, size_t *cap, size_t n, size_t size);

/* Now as RFC 3339 UTC with milliseconds: "2026-11-23T18:16:26.123Z". */
void ll_now_rfc3339(char out[32]);

/* Milliseconds on the monotonic clock. */
int64_t ll_monotonic_ms(void);

/* Milliseconds since the epoch (wall clock): for deadlines that must
 * survive a restart. */
int64_t ll_wall_ms(void);

/* Fills out with 2*nbytes lower-case hex characters of randomness and a NUL. */
int ll_random_hex(char *out, size_t nbytes);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void ll_hex_encode(char *out, const unsigned char *in, size_t n);

/* Decodes hex into out (at most cap bytes); returns the length or -1. */
int ll_hex_decode(unsigned char *out, size_t cap, const char *hex);

/* Reads a whole file into a new NUL-terminated buffer of at most cap bytes. */
int ll_read_file(char **out, size_t *out_len, const char *path, size_t cap);

/* Creates a directory and its parents (mode 0700 for new ones). */
int ll_mkdir_p(const char *path);

#endif

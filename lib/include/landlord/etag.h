/* etag.h - versions (ETags) of what the API serves (etag.c). */
#ifndef LANDLORD_ETAG_H
#define LANDLORD_ETAG_H

#define LL_ETAG_MAX 40

/* Writes into out a strong ETag ("<32 hex>", quotes included) over the
 * parts, in order (NULL parts count as empty); parts are borrowed. */
void ll_etag_of(char out[LL_ETAG_MAX], const char *const *parts, int n);

/* 1 when an If-Match header value (a list of entity tags, or *) matches
 * etag by strong comparison (weak tags never match); both borrowed. */
int ll_etag_matches(const char *if_match, const char *etag);

#endif

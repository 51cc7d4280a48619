/* ociremote_parse.c - the OCI push client's parsers of outside text:
 * oci:// URLs (host, port, the OCI name grammar of the base path),
 * WWW-Authenticate challenges, and what a registry answers (a token
 * server's answer, a manifest, an error body; ociremote_int.h).  They read
 * hostile input and are fuzzed (tests/fuzz/fuzz_challenge.c, fuzz_oci.c).
 *
 * Pure: no state beyond the call; reentrant.
 */
#define _GNU_SOURCE /* vasprintf */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "landlord/aws.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/oci.h"
#include "landlord/ociremote.h"
#include "ociremote_int.h"
#include "ociremote_req.h"
#include "landlord/util.h"

/* --- names and URLs ------------------------------------------------------------- */

/* One component of the OCI name grammar: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static int component_ok(const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < n && (islower((unsigned char)s[i]) || isdigit((unsigned char)s[i])))
            i++;
        if (i == start)
            return 0;
        if (i == n)
            return 1;
        if (s[i] == '.')
            i++;
        else if (s[i] == '_')
            i += i + 1 < n && s[i + 1] == '_' ? 2 : 1;
        else if (s[i] == '-')
            while (i < n && s[i] == '-')
                i++;
        else
            return 0;
    }
}

/* The host part h[0..hl) of url: a name or IPv4 address, or [IPv6]; then
 * an optional :port (1-65535). */
static int check_host(const char *h, size_t hl, const char *url)
{
    const char *p = h;
    if (*p == '[') {
        while (p < h + hl && *p != ']')
            p++;
        if (p == h + hl)
            return ll_error_set(LL_EINVALID, "'%.200s' has an unclosed [ in its host", url);
        p++;
    } else {
        while (p < h + hl && (isalnum((unsigned char)*p) || *p == '.' || *p == '-'))
            p++;
    }
    if (p == h || (p < h + hl && *p != ':'))
        return ll_error_set(LL_EINVALID, "'%.200s' has a bad host", url);
    if (p < h + hl) {
        const char *port = ++p;
        long v = 0;
        while (p < h + hl && isdigit((unsigned char)*p) && v <= 65535)
            v = v * 10 + (*p++ - '0');
        if (p == port || p != h + hl || v < 1 || v > 65535)
            return ll_error_set(LL_EINVALID, "'%.200s' has a bad port", url);
    }
    return 0;
}

/* The base path after the host (p, in url): components separated by single
 * '/', any outer '/' dropped, into base. */
static int parse_base(char *base, size_t base_cap, const char *p, const char *url)
{
    while (*p == '/')
        p++;
    size_t bl = strlen(p);
    while (bl && p[bl - 1] == '/')
        bl--;
    if (bl >= base_cap || bl > REPO_MAX - 64)
        return ll_error_set(LL_EINVALID, "'%.200s' has a path longer than %d characters", url,
                            REPO_MAX - 64);
    for (size_t i = 0; i < bl;) {
        size_t n = 0;
        while (i + n < bl && p[i + n] != '/')
            n++;
        if (!component_ok(p + i, n))
            return ll_error_set(LL_EINVALID,
                                "'%.200s': path component '%.*s' is not a repository name "
                                "component (lower-case letters and digits, separated by '.', "
                                "'_', '__' or '-')",
                                url, (int)n, p + i);
        i += n + 1;
    }
    memcpy(base, p, bl);
    base[bl] = '\0';
    return 0;
}

int ll_ociremote_parse_url(char *host, size_t host_cap, char *base, size_t base_cap,
                           const char *url)
{
    const char *h, *slash;
    size_t hl;
    int error;

    if (!url || strncmp(url, "oci://", 6) != 0)
        return ll_error_set(LL_EINVALID, "'%.200s' is not an oci:// URL", url ? url : "");
    h = url + 6;
    slash = strchr(h, '/');
    hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= host_cap)
        return ll_error_set(LL_EINVALID, "'%.200s' has no host (oci://host[:port]/path)", url);
    if ((error = check_host(h, hl, url)) < 0)
        return error;
    memcpy(host, h, hl);
    host[hl] = '\0';
    return parse_base(base, base_cap, slash ? slash : h + hl, url);
}

/* --- the challenge ------------------------------------------------------------------ */

static int token_char(char c)
{
    /* (strchr would match the terminator: c must not be '\0') */
    return c && (isalnum((unsigned char)c) || strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A parameter's value at *pp, a quoted string (with backslash escapes) or
 * a token (which may hold '/' and ':'), into value[cap] (*out_len bytes);
 * *pp moves past it.  name is the parameter's, for messages. */
static int param_value(char *value, size_t cap, size_t *out_len, const char **pp, const char *name)
{
    const char *p = *pp;
    size_t vl = 0;
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++) {
            if (*p == '\\' && p[1])
                p++;
            if (vl + 1 >= cap)
                return ll_error_set(LL_EINVALID, "challenge parameter %s is too long", name);
            value[vl++] = *p;
        }
        if (*p != '"')
            return ll_error_set(LL_EINVALID, "challenge parameter %s is not closed", name);
        p++;
    } else {
        while (token_char(*p) || *p == '/' || *p == ':') {
            if (vl + 1 >= cap)
                return ll_error_set(LL_EINVALID, "challenge parameter %s is too long", name);
            value[vl++] = *p++;
        }
    }
    value[vl] = '\0';
    *out_len = vl;
    *pp = p;
    return 0;
}

/* Keeps the parameters landlord uses (realm, service, scope) in out; the
 * others are ignored. */
static int keep_param(ll_oci_challenge *out, const char *name, const char *value, size_t vl)
{
    static const struct {
        const char *name;
        size_t offset, cap;
    } kept[] = {
        {"realm", offsetof(ll_oci_challenge, realm), sizeof(((ll_oci_challenge *)0)->realm)},
        {"service", offsetof(ll_oci_challenge, service), sizeof(((ll_oci_challenge *)0)->service)},
        {"scope", offsetof(ll_oci_challenge, scope), sizeof(((ll_oci_challenge *)0)->scope)},
    };
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        if (strcmp(name, kept[i].name) != 0)
            continue;
        if (vl >= kept[i].cap)
            return ll_error_set(LL_EINVALID, "challenge parameter %s is too long", name);
        memcpy((char *)out + kept[i].offset, value, vl + 1);
        return 0;
    }
    return 0;
}

int ll_oci_challenge_parse(ll_oci_challenge *out, const char *v)
{
    const char *p = v ? v : "";
    size_t n = 0;
    int error;

    memset(out, 0, sizeof(*out));
    p = skip_blanks(p);
    while (token_char(*p) && n + 1 < sizeof(out->scheme))
        out->scheme[n++] = (char)tolower((unsigned char)*p++);
    if (!n || (*p && *p != ' ' && *p != '\t'))
        return ll_error_set(LL_EINVALID, "not an authentication challenge");
    for (;;) {
        char name[32], value[1024];
        size_t nl = 0, vl = 0;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            return 0;
        while (token_char(*p) && nl + 1 < sizeof(name))
            name[nl++] = (char)tolower((unsigned char)*p++);
        name[nl] = '\0';
        p = skip_blanks(p);
        if (!nl || *p != '=')
            return 0; /* another challenge, or a token68: nothing more we use */
        p = skip_blanks(p + 1);
        if ((error = param_value(value, sizeof(value), &vl, &p, name)) < 0 ||
            (error = keep_param(out, name, value, vl)) < 0)
            return error;
    }
}

/* --- what a registry answers (ociremote_int.h) ------------------------------------ */

int ll_ociremote_token_answer(char **out, int64_t *out_use_ms, const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    const char *tok = json_string_value(json_object_get(doc, "token"));
    int error = 0;

    *out = NULL;
    *out_use_ms = 0;
    if (!tok || !tok[0])
        tok = json_string_value(json_object_get(doc, "access_token"));
    if (!tok || !tok[0]) {
        error = ll_error_set(LL_ENOTFOUND, "the token server's answer has no token");
        goto done;
    }
    for (const char *p = tok; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            error = ll_error_set(LL_EMALFORMED, "the token server sent a token with control "
                                                "characters");
            goto done;
        }
    }
    /* expires_in: the token spec's default is 60 s; a lifetime beyond a
     * day is taken as a day (a token is fetched again at least daily, and
     * no sum below can overflow whatever the server sent). */
    json_int_t expires_in = json_integer_value(json_object_get(doc, "expires_in"));
    if (expires_in <= 0)
        expires_in = 60;
    if (expires_in > TOKEN_LIFE_MAX_S)
        expires_in = TOKEN_LIFE_MAX_S;
    int64_t margin = expires_in / 2 < TOKEN_MARGIN_S ? expires_in / 2 : TOKEN_MARGIN_S;
    *out_use_ms = (int64_t)(expires_in - margin) * 1000;
    if (!(*out = strdup(tok)))
        error = ll_error_set(-1, "out of memory");
done:
    json_decref(doc);
    return error;
}

int ll_ociremote_manifest_holds(char *config, size_t cap, const char *body, size_t len,
                                const char *layer_digest)
{
    json_t *m = json_loadb(body, len, 0, NULL), *layer;
    size_t i;
    int same = 0;

    json_array_foreach(json_object_get(m, "layers"), i, layer)
    {
        const char *mt = json_string_value(json_object_get(layer, "mediaType"));
        const char *d = json_string_value(json_object_get(layer, "digest"));
        if (mt && d && (!strcmp(mt, LL_OCI_CHART) || !strcmp(mt, "application/tar+gzip")) &&
            !strcmp(d, layer_digest))
            same = 1;
    }
    const char *cfg = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
    if (cap)
        snprintf(config, cap, "%s", cfg ? cfg : "");
    json_decref(m);
    return same && cfg;
}

void ll_ociremote_error_text(char *out, size_t cap, const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *e = json_array_get(json_object_get(doc, "errors"), 0);
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    out[0] = '\0';
    if (code)
        snprintf(out, cap, "%.64s%s%.200s", code, msg ? ": " : "", msg ? msg : "");
    else if (len && len < 200) {
        /* ECR answers 401 in text/plain ("Not Authorized") */
        size_t i, k = 0;
        for (i = 0; i < len && k + 1 < cap; i++)
            out[k++] = (unsigned char)body[i] < 0x20 ? ' ' : body[i];
        out[k] = '\0';
    }
    json_decref(doc);
}

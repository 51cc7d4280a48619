/* oci_push_floor.c - the floor of the chart upload benchmark: libcurl doing
 * exactly the HTTP sequence landlord does for one chart push, nothing else.
 *
 *   bench_oci_floor ORIGIN REPO USER:PASSWORD LIST
 *
 * LIST has one push per line: "TAG CONFIG_DIGEST CONFIG_FILE LAYER_DIGEST
 * LAYER_FILE MANIFEST_FILE".  Per push, on one easy handle that keeps its
 * connection (as landlord's per-thread handle does), with Basic credentials
 * sent at once (landlord's steady state: the challenge is known): HEAD the
 * manifest by tag; for the config blob and the chart layer HEAD, POST an
 * upload, PUT the bytes to the Location with ?digest=; PUT the manifest.
 * The files are read before the clock starts.  Prints one line per push:
 * "<ms>" with three decimals; exits non-zero on any unexpected status.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

typedef struct reply {
    long status;
    char location[4096];
} reply;

static size_t on_header(char *data, size_t size, size_t n, void *payload)
{
    reply *r = payload;
    size_t len = size * n;
    if (len > 9 && strncasecmp(data, "location:", 9) == 0) {
        const char *v = data + 9;
        size_t vl = len - 9;
        while (vl && *v == ' ')
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
            vl--;
        snprintf(r->location, sizeof(r->location), "%.*s", (int)vl, v);
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *payload)
{
    (void)data;
    (void)payload;
    return size * n;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        !(buf = malloc((size_t)n + 1)) || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* One request; exits unless the status is want. */
static void exchange(CURL *h, const char *userpwd, const char *method, const char *url,
                     const char *ctype, const char *body, size_t len, long want, reply *r)
{
    struct curl_slist *headers = NULL;
    char ct[200];
    memset(r, 0, sizeof(*r));
    curl_easy_reset(h);
    snprintf(ct, sizeof(ct), "Content-Type:%s%s", ctype ? " " : "", ctype ? ctype : "");
    headers = curl_slist_append(headers, "Expect:");
    headers = curl_slist_append(headers, ct);
    if (!strcmp(method, "HEAD") && strstr(url, "/manifests/"))
        headers =
            curl_slist_append(headers, "Accept: application/vnd.oci.image.manifest.v1+json, "
                                       "application/vnd.oci.image.index.v1+json, "
                                       "application/vnd.docker.distribution.manifest.v2+json, "
                                       "application/vnd.docker.distribution.manifest.list.v2+json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "landlord-bench-floor");
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERPWD, userpwd);
    if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        if (!strcmp(method, "PUT"))
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
    }
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK || r->status != want) {
        fprintf(stderr, "%s %s: %s, status %ld (wanted %ld)\n", method, url, curl_easy_strerror(rc),
                r->status, want);
        exit(1);
    }
}

static void push_blob(CURL *h, const char *origin, const char *repo, const char *userpwd,
                      const char *digest, const char *data, size_t len)
{
    char url[2048], *put = NULL;
    reply r;
    snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", origin, repo, digest);
    exchange(h, userpwd, "HEAD", url, NULL, NULL, 0, 404, &r);
    snprintf(url, sizeof(url), "%s/v2/%s/blobs/uploads/", origin, repo);
    exchange(h, userpwd, "POST", url, NULL, "", 0, 202, &r);
    if (asprintf(&put, "%s%s%sdigest=%s", r.location[0] == '/' ? origin : "", r.location,
                 strchr(r.location, '?') ? "&" : "?", digest) < 0)
        exit(2);
    exchange(h, userpwd, "PUT", put, "application/octet-stream", data, len, 201, &r);
    free(put);
}

int main(int argc, char **argv)
{
    char line[4096], tag[256], cd[100], cf[1024], ld[100], lf[1024], mf[1024], url[2048];
    FILE *list;
    CURL *h;

    if (argc != 5) {
        fprintf(stderr, "usage: %s ORIGIN REPO USER:PASSWORD LIST\n", argv[0]);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    h = curl_easy_init();
    if (!(list = fopen(argv[4], "r")))
        return 2;
    while (fgets(line, sizeof(line), list)) {
        size_t cl, ll, ml;
        struct timespec t0, t1;
        reply r;
        if (sscanf(line, "%255s %99s %1023s %99s %1023s %1023s", tag, cd, cf, ld, lf, mf) != 6)
            continue;
        char *config = slurp(cf, &cl), *layer = slurp(lf, &ll), *manifest = slurp(mf, &ml);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", argv[1], argv[2], tag);
        exchange(h, argv[3], "HEAD", url, NULL, NULL, 0, 404, &r);
        push_blob(h, argv[1], argv[2], argv[3], cd, config, cl);
        push_blob(h, argv[1], argv[2], argv[3], ld, layer, ll);
        exchange(h, argv[3], "PUT", url, "application/vnd.oci.image.manifest.v1+json", manifest, ml,
                 201, &r);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("%.3f\n", (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
        fflush(stdout);
        free(config);
        free(layer);
        free(manifest);
    }
    fclose(list);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    return 0;
}

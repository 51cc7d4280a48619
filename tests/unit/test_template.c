/* test_template.c - unit tests of lib/tiers/template.c and lib/base/yamltext.c.
 *
 * The three tier templates of the reference system are copied here byte for
 * byte (v2beta1, "{RELEASE_VERSION}.x"), next to v2-style ones.  Each test
 * walks a table of cases; a case that fails names itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "landlord/error.h"
#include "landlord/template.h"
#include "base/yamltext.h"

/* ---- the reference's tier templates, exact ---------------------------- */

static const char BASIC_V2BETA1[] =
    "apiVersion: helm.toolkit.fluxcd.io/v2beta1\n"
    "kind: HelmRelease\n"
    "metadata:\n"
    "  name: {TENANT_ID}-basic\n"
    "  namespace: flux-system\n"
    "spec:\n"
    "  releaseName: {TENANT_ID}-basic\n"
    "  targetNamespace: pool-1  # Deploying into the tenant-specific namespace\n"
    "  storageNamespace: pool-1\n"
    "  interval: 1m0s\n"
    "  chart:\n"
    "    spec:\n"
    "      chart: helm-tenant-chart\n"
    "      version: \"{RELEASE_VERSION}.x\"\n"
    "      sourceRef:\n"
    "        kind: HelmRepository\n"
    "        name: helm-tenant-chart\n"
    "  values:\n"
    "    tenantId: {TENANT_ID}\n"
    "    apps:\n"
    "      producer:\n"
    "        envId: pool-1\n"
    "        enabled: false  # Pool deployment -- basic tier shares resources with other tenants\n"
    "        ingress:\n"
    "          enabled: true\n"
    "      consumer:\n"
    "        envId: pool-1\n"
    "        enabled: false  # Pool deployment -- basic tier shares resources with other tenants\n"
    "        ingress:\n"
    "          enabled: true\n";

static const char PREMIUM_V2BETA1[] =
    "apiVersion: v1\n"
    "kind: Namespace\n"
    "metadata:\n"
    "  name: {TENANT_ID}\n"
    "---\n"
    "apiVersion: helm.toolkit.fluxcd.io/v2beta1\n"
    "kind: HelmRelease\n"
    "metadata:\n"
    "  name: {TENANT_ID}-premium\n"
    "  namespace: flux-system\n"
    "spec:\n"
    "  releaseName: {TENANT_ID}-premium\n"
    "  targetNamespace: {TENANT_ID}\n"
    "  storageNamespace: {TENANT_ID}\n"
    "  interval: 1m0s\n"
    "  chart:\n"
    "    spec:\n"
    "      chart: helm-tenant-chart\n"
    "      version: \"{RELEASE_VERSION}.x\"\n"
    "      sourceRef:\n"
    "        kind: HelmRepository\n"
    "        name: helm-tenant-chart\n"
    "  values:\n"
    "    tenantId: {TENANT_ID}\n"
    "    apps:\n"
    "      producer:\n"
    "        enabled: true # Silo deployment -- premium tier has a dedicated deployment for each "
    "tenant\n"
    "        ingress:\n"
    "          enabled: true\n"
    "        image:\n"
    "          tag: \"0.1\" # {\"$imagepolicy\": \"flux-system:producer-image-policy:tag\"}\n"
    "      consumer:\n"
    "        enabled: true # Silo deployment -- premium tier has a dedicated deployment for each "
    "tenant\n"
    "        ingress:\n"
    "          enabled: true\n"
    "        image:\n"
    "          tag: \"0.1\" # {\"$imagepolicy\": \"flux-system:consumer-image-policy:tag\"}\n";

static const char ADVANCED_V2BETA1[] =
    "apiVersion: v1\n"
    "kind: Namespace\n"
    "metadata:\n"
    "  name: {TENANT_ID}\n"
    "---\n"
    "apiVersion: helm.toolkit.fluxcd.io/v2beta1\n"
    "kind: HelmRelease\n"
    "metadata:\n"
    "  name: {TENANT_ID}-advanced\n"
    "  namespace: flux-system\n"
    "spec:\n"
    "  releaseName: {TENANT_ID}-advanced\n"
    "  targetNamespace: {TENANT_ID}  # Deploying into the tenant-specific namespace\n"
    "  interval: 1m0s\n"
    "  chart:\n"
    "    spec:\n"
    "      chart: helm-tenant-chart\n"
    "      version: \"{RELEASE_VERSION}.x\"\n"
    "      sourceRef:\n"
    "        kind: HelmRepository\n"
    "        name: helm-tenant-chart\n"
    "  values:\n"
    "    tenantId: {TENANT_ID}\n"
    "    apps:\n"
    "      producer:\n"
    "        envId: pool-1\n"
    "        enabled: false # Pool deployment -- advanced tier shares resources with other "
    "tenants\n"
    "        ingress:\n"
    "          enabled: true\n"
    "      consumer:\n"
    "        enabled: true  # Silo deployment -- advanced tier has a dedicated deployment for each "
    "tenant\n"
    "        ingress:\n"
    "          enabled: true\n"
    "        image:\n"
    "          tag: \"0.1\" # {\"$imagepolicy\": \"flux-system:consumer-image-policy:tag\"}\n";

/* ---- v2-style templates ------------------------------------------------- */

static const char PREMIUM_V2[] = "apiVersion: v1\n"
                                 "kind: Namespace\n"
                                 "metadata:\n"
                                 "  name: {TENANT_ID}\n"
                                 "---\n"
                                 "apiVersion: helm.toolkit.fluxcd.io/v2\n"
                                 "kind: HelmRelease\n"
                                 "metadata:\n"
                                 "  name: {TENANT_ID}-{TIER}\n"
                                 "  namespace: flux-system\n"
                                 "spec:\n"
                                 "  releaseName: {TENANT_ID}-{TIER}\n"
                                 "  targetNamespace: {TENANT_ID}\n"
                                 "  interval: 1m0s\n"
                                 "  chart:\n"
                                 "    spec:\n"
                                 "      chart: helm-tenant-chart\n"
                                 "      version: \"{RELEASE_VERSION}\"\n"
                                 "      sourceRef:\n"
                                 "        kind: HelmRepository\n"
                                 "        name: helm-tenant-chart\n"
                                 "  values:\n"
                                 "    tenantId: {TENANT_ID}\n"
                                 "    apps:\n"
                                 "      producer:\n"
                                 "        enabled: true\n"
                                 "        image:\n"
                                 "          tag: \"0.1\" # {\"$imagepolicy\": "
                                 "\"flux-system:producer-image-policy:tag\"}\n"
                                 "---\n";

static const char ENV_V2[] = "apiVersion: v1\n"
                             "kind: Namespace\n"
                             "metadata:\n"
                             "  name: {ENVIRONMENT_ID}\n"
                             "---\n"
                             "apiVersion: helm.toolkit.fluxcd.io/v2\n"
                             "kind: HelmRelease\n"
                             "metadata:\n"
                             "  name: {ENVIRONMENT_ID}\n"
                             "  namespace: flux-system\n"
                             "spec:\n"
                             "  releaseName: {ENVIRONMENT_ID}\n"
                             "  targetNamespace: {ENVIRONMENT_ID}\n"
                             "  storageNamespace: {ENVIRONMENT_ID}\n"
                             "  chart:\n"
                             "    spec:\n"
                             "      chart: helm-tenant-chart\n"
                             "      version: \"{RELEASE_VERSION}.x\"\n"
                             "  values:\n"
                             "    tenantId: {ENVIRONMENT_ID}\n"
                             "    apps:\n"
                             "      producer:\n"
                             "        enabled: true\n"
                             "        ingress:\n"
                             "          enabled: false";

/* ---- helpers ---------------------------------------------------------- */

/* s with every from replaced by to (new string). */
static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    const char *p, *q;
    char *out, *w;

    for (p = s; (q = strstr(p, from)); p = q + fl)
        n++;
    out = malloc(strlen(s) + n * tl + 1);
    assert_non_null(out);
    w = out;
    for (p = s; (q = strstr(p, from)); p = q + fl) {
        memcpy(w, p, (size_t)(q - p));
        w += q - p;
        memcpy(w, to, tl);
        w += tl;
    }
    strcpy(w, p);
    return out;
}

/* In place: s becomes s with from replaced by to (exactly once required). */
static void edit_once(char **s, const char *from, const char *to)
{
    const char *q = strstr(*s, from);
    char *out;

    assert_non_null(q);
    assert_null(strstr(q + 1, from));
    out = replace_all(*s, from, to);
    free(*s);
    *s = out;
}

/* The template with its placeholders replaced as sed would. */
static char *naive(const char *tmpl, const char *id, const char *tier, const char *ver,
                   const char *env)
{
    char *a = replace_all(tmpl, "{RELEASE_VERSION}.x", ver);
    char *b = replace_all(a, "{RELEASE_VERSION}", ver);
    char *c = replace_all(b, "{TENANT_ID}", id);
    char *d = replace_all(c, "{TIER}", tier);
    char *e = replace_all(d, "{ENVIRONMENT_ID}", env);

    free(a);
    free(b);
    free(c);
    free(d);
    return e;
}

static json_t *parse_json(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);

    if (!v)
        fail_msg("bad json in test: %s", err.text);
    return v;
}

/* Renders; *rc gets the code; returns the text (or NULL). */
static char *render(int *rc, const char *tmpl, size_t len, const char *id, const char *tier,
                    const char *release, const char *values_json)
{
    json_t *values = values_json ? parse_json(values_json) : NULL;
    ll_render_input in = {id, tier, release, "pool-1", values};
    char *out = NULL;
    size_t out_len = 0;

    *rc = ll_template_render(&out, &out_len, tmpl, len, &in);
    json_decref(values);
    if (*rc == 0) {
        assert_non_null(out);
        assert_int_equal(strlen(out), out_len);
    } else {
        assert_null(out);
    }
    return out;
}

static char *render_ok(const char *tmpl, const char *id, const char *values_json)
{
    int rc;
    char *out = render(&rc, tmpl, strlen(tmpl), id, "premium", "0.0", values_json);

    if (rc != 0)
        fail_msg("render failed (%d): %s", rc, ll_error_last()->message);
    return out;
}

/* The JSON value at a dotted path whose first part is a document index. */
static json_t *at(json_t *docs, const char *path)
{
    char buf[256], *part, *save = NULL;
    json_t *v;

    snprintf(buf, sizeof(buf), "%s", path);
    part = strtok_r(buf, ".", &save);
    v = json_array_get(docs, (size_t)atoi(part));
    while (v && (part = strtok_r(NULL, ".", &save)))
        v = json_object_get(v, part);
    return v;
}

static json_t *load(const char *text)
{
    json_t *docs = NULL;
    int rc = ll_yaml_load_json(&docs, text, strlen(text));

    if (rc != 0)
        fail_msg("load failed (%d): %s", rc, ll_error_last()->message);
    return docs;
}

static void expect_str(json_t *docs, const char *path, const char *want)
{
    json_t *v = at(docs, path);

    if (!json_is_string(v) || strcmp(json_string_value(v), want) != 0)
        fail_msg("%s: want string \"%s\", got %s", path, want,
                 !v                  ? "nothing"
                 : json_is_string(v) ? json_string_value(v)
                                     : "a non-string");
}

/* got holds every value of want: objects key by key, the rest equal. */
static void expect_merged(const char *name, json_t *got, json_t *want)
{
    const char *key;
    json_t *v, *g;

    json_object_foreach(want, key, v)
    {
        g = json_object_get(got, key);
        if (json_is_object(v) && json_is_object(g))
            expect_merged(name, g, v);
        else if (!json_equal(g, v))
            fail_msg("%s: values.%s differs", name, key);
    }
}

/* Every line of want that holds a comment is somewhere in got. */
static void expect_comments_kept(const char *want, const char *got)
{
    char *copy = strdup(want), *line, *save = NULL, needle[1024];

    assert_non_null(copy);
    for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strchr(line, '#'))
            continue;
        snprintf(needle, sizeof(needle), "%s\n", line);
        if (!strstr(got, needle))
            fail_msg("comment line lost: %s", line);
    }
    free(copy);
}

/* ---- rendering the reference templates ------------------------------------ */

static void test_reference_templates(void **state)
{
    static const struct {
        const char *name;
        const char *tmpl;
        const char *hr_name;
        size_t hr_doc;
    } cases[] = {
        {"basic", BASIC_V2BETA1, "acme-basic", 0},
        {"premium", PREMIUM_V2BETA1, "acme-premium", 1},
        {"advanced", ADVANCED_V2BETA1, "acme-advanced", 1},
        {"premium v2", PREMIUM_V2, "acme-premium", 1},
    };
    size_t i;
    char path[64];

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = render_ok(cases[i].tmpl, "acme", NULL);
        char *want = naive(cases[i].tmpl, "acme", "premium", "0.0.x", "pool-1");
        json_t *docs = load(out);

        /* Plain ids need no quoting: the result is sed's, byte for byte. */
        if (strcmp(out, want) != 0)
            fail_msg("%s: render differs from plain substitution:\n%s", cases[i].name, out);
        snprintf(path, sizeof(path), "%zu.metadata.name", cases[i].hr_doc);
        expect_str(docs, path, cases[i].hr_name);
        snprintf(path, sizeof(path), "%zu.spec.values.tenantId", cases[i].hr_doc);
        expect_str(docs, path, "acme");
        snprintf(path, sizeof(path), "%zu.spec.chart.spec.version", cases[i].hr_doc);
        expect_str(docs, path, "0.0.x");
        assert_int_equal(ll_template_check_objects(out, strlen(out)), 0);
        json_decref(docs);
        free(out);
        free(want);
    }
}

static void test_env_template_without_final_newline(void **state)
{
    char *out, *want;
    json_t *docs;

    (void)state;
    out = render_ok(ENV_V2, "acme", NULL);
    want = naive(ENV_V2, "acme", "premium", "0.0.x", "pool-1");
    assert_string_equal(out, want);
    assert_int_not_equal(out[strlen(out) - 1], '\n');
    docs = load(out);
    expect_str(docs, "1.metadata.name", "pool-1");
    expect_str(docs, "1.spec.values.tenantId", "pool-1");
    json_decref(docs);
    free(out);
    free(want);
}

static void test_release_expressions(void **state)
{
    static const struct {
        const char *tmpl_version; /* how the template writes it */
        const char *release;
        const char *want;
    } cases[] = {
        {"\"{RELEASE_VERSION}.x\"", "0.0", "\"0.0.x\""},
        {"\"{RELEASE_VERSION}.x\"", "1.2.x", "\"1.2.x\""},
        {"\"{RELEASE_VERSION}.x\"", "1.2.3", "\"1.2.3\""},
        {"\"{RELEASE_VERSION}\"", "0.0", "\"0.0.x\""},
        {"\"{RELEASE_VERSION}\"", "1.2.x", "\"1.2.x\""},
        {"\"{RELEASE_VERSION}\"", "1.2.3", "\"1.2.3\""},
        {"{RELEASE_VERSION}", "1.2", "1.2.x"},
        {"{RELEASE_VERSION}", "10.20.30", "10.20.30"},
    };
    char tmpl[512], want[512];
    size_t i;
    int rc;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(tmpl, sizeof(tmpl),
                 "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  version: %s\n",
                 cases[i].tmpl_version);
        snprintf(want, sizeof(want),
                 "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  version: %s\n",
                 cases[i].want);
        char *out = render(&rc, tmpl, strlen(tmpl), "acme", "basic", cases[i].release, NULL);
        if (rc != 0 || strcmp(out, want) != 0)
            fail_msg("case %zu (%s with %s): rc %d, got %s", i, cases[i].tmpl_version,
                     cases[i].release, rc, out ? out : "(null)");
        free(out);
    }
}

/* A missing value names its placeholder; the release's expression is
 * worked out once and serves every {RELEASE_VERSION} of the template. */
static void test_missing_values_named(void **state)
{
    static const char tmpl[] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {TENANT_ID}\n"
                               "data:\n  a: \"{RELEASE_VERSION}.x\"\n  b: \"{RELEASE_VERSION}\"\n"
                               "  c: {TIER}\n";
    static const struct {
        const char *id, *tier, *release, *why;
    } cases[] = {
        {NULL, "basic", "1.0", "template uses {TENANT_ID} but no value was given for it"},
        {"acme", NULL, "1.0", "template uses {TIER} but no value was given for it"},
        {"acme", "basic", NULL, "template uses {RELEASE_VERSION} but no release was given"},
        {"acme", "-basic", "1.0", "template value for {TIER} may only hold letters"},
    };
    int rc;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out =
            render(&rc, tmpl, strlen(tmpl), cases[i].id, cases[i].tier, cases[i].release, NULL);
        assert_int_equal(rc, LL_EINVALID);
        if (strncmp(ll_error_last()->message, cases[i].why, strlen(cases[i].why)) != 0)
            fail_msg("case %zu: '%s' does not start with '%s'", i, ll_error_last()->message,
                     cases[i].why);
        free(out);
    }
    char *out = render(&rc, tmpl, strlen(tmpl), "acme", "basic", "1.2", NULL);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: acme\n"
                             "data:\n  a: \"1.2.x\"\n  b: \"1.2.x\"\n  c: basic\n");
    free(out);
}

static void test_bad_inputs(void **state)
{
    static const char tmpl_all[] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "
                                   "{TENANT_ID}\ndata:\n  v: \"{RELEASE_VERSION}.x\"\n";
    static const char tmpl_tier[] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {TIER}\n";
    static const struct {
        const char *name;
        const char *tmpl;
        const char *id;
        const char *tier;
        const char *release;
        const char *values;
        int want;
    } cases[] = {
        {"no id", tmpl_all, NULL, "basic", "1.0", NULL, LL_EINVALID},
        {"no release", tmpl_all, "acme", "basic", NULL, NULL, LL_EINVALID},
        {"bad release", tmpl_all, "acme", "basic", "latest", NULL, LL_EINVALID},
        {"no tier", tmpl_tier, "acme", NULL, "1.0", NULL, LL_EINVALID},
        {"tier unused and absent", tmpl_all, "acme", NULL, "1.0", NULL, 0},
        {"id with yaml in it", tmpl_all, "a: b", "basic", "1.0", NULL, LL_EINVALID},
        {"id with a newline", tmpl_all, "a\nkind: x", "basic", "1.0", NULL, LL_EINVALID},
        {"id starting with a dash", tmpl_all, "-a", "basic", "1.0", NULL, LL_EINVALID},
        {"empty id", tmpl_all, "", "basic", "1.0", NULL, LL_EINVALID},
        {"values not an object", BASIC_V2BETA1, "acme", "basic", "1.0", "[1]", LL_EINVALID},
        {"values key too long for yaml", BASIC_V2BETA1, "acme", "basic", "1.0",
         "{\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
         "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
         "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
         "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
         "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
         "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
         "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
         "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
         "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
         "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
         "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
         "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
         "\": 1}",
         LL_EINVALID},
    };
    size_t i;
    int rc;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = render(&rc, cases[i].tmpl, strlen(cases[i].tmpl), cases[i].id, cases[i].tier,
                           cases[i].release, cases[i].values);
        if (rc != cases[i].want)
            fail_msg("%s: want %d, got %d (%s)", cases[i].name, cases[i].want, rc,
                     ll_error_last()->message);
        if (rc < 0 && strchr(ll_error_last()->message, '\n'))
            fail_msg("%s: message spans lines", cases[i].name);
        free(out);
    }
}

static void test_other_braces_untouched(void **state)
{
    static const char tmpl[] = "apiVersion: v1 # {TENANT} {\"$imagepolicy\": \"a:b:tag\"}\n"
                               "kind: ConfigMap\n"
                               "metadata:\n"
                               "  name: {TENANT_ID}\n"
                               "data:\n"
                               "  a: \"{NOT_A_PLACEHOLDER} {TENANT_ID\"\n"
                               "  b: '{TIER}'\n";
    char *out = render_ok(tmpl, "acme", NULL);

    (void)state;
    assert_string_equal(out, "apiVersion: v1 # {TENANT} {\"$imagepolicy\": \"a:b:tag\"}\n"
                             "kind: ConfigMap\n"
                             "metadata:\n"
                             "  name: acme\n"
                             "data:\n"
                             "  a: \"{NOT_A_PLACEHOLDER} {TENANT_ID\"\n"
                             "  b: 'premium'\n");
    free(out);
}

/* ---- ids a YAML reader could misread -------------------------------------- */

static void test_ambiguous_ids(void **state)
{
    static const char *const ids[] = {"true",       "null", "yes", "1e3",  "0x1f", "123",
                                      "2001-12-14", "on",   "no",  "0777", "y",    "1_000"};
    char line[128];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char *out = render_ok(PREMIUM_V2BETA1, ids[i], NULL);
        json_t *docs = load(out);
        char name[64];

        snprintf(line, sizeof(line), "\n    tenantId: \"%s\"\n", ids[i]);
        if (!strstr(out, line))
            fail_msg("%s: tenantId not quoted:\n%s", ids[i], out);
        snprintf(line, sizeof(line), "\n  name: \"%s\"\n", ids[i]);
        if (!strstr(out, line))
            fail_msg("%s: namespace name not quoted:\n%s", ids[i], out);
        snprintf(line, sizeof(line), "\n  targetNamespace: \"%s\"\n", ids[i]);
        if (!strstr(out, line))
            fail_msg("%s: targetNamespace not quoted", ids[i]);
        /* "<id>-premium" is a string to everyone: it stays plain. */
        snprintf(line, sizeof(line), "\n  name: %s-premium\n", ids[i]);
        if (!strstr(out, line))
            fail_msg("%s: derived name was changed:\n%s", ids[i], out);

        expect_str(docs, "0.metadata.name", ids[i]);
        expect_str(docs, "1.spec.values.tenantId", ids[i]);
        expect_str(docs, "1.spec.targetNamespace", ids[i]);
        expect_str(docs, "1.spec.storageNamespace", ids[i]);
        snprintf(name, sizeof(name), "%s-premium", ids[i]);
        expect_str(docs, "1.metadata.name", name);
        expect_comments_kept(PREMIUM_V2BETA1, out);
        json_decref(docs);
        free(out);
    }
}

static void test_plain_is_ambiguous(void **state)
{
    static const struct {
        const char *s;
        int want;
    } cases[] = {
        {"", 1},
        {"~", 1},
        {"null", 1},
        {"Null", 1},
        {"NULL", 1},
        {"nUlL", 1},
        {"true", 1},
        {"True", 1},
        {"TRUE", 1},
        {"false", 1},
        {"yes", 1},
        {"Yes", 1},
        {"no", 1},
        {"NO", 1},
        {"y", 1},
        {"Y", 1},
        {"n", 1},
        {"on", 1},
        {"Off", 1},
        {"0", 1},
        {"123", 1},
        {"-1", 1},
        {"+1", 1},
        {"1_000", 1},
        {"0777", 1},
        {"0x1f", 1},
        {"0X1F", 1},
        {"0o17", 1},
        {"0b101", 1},
        {"1.5", 1},
        {".5", 1},
        {"5.", 1},
        {"1e3", 1},
        {"1E3", 1},
        {"1e-3", 1},
        {"-1.5e+10", 1},
        {".inf", 1},
        {"-.Inf", 1},
        {"+.INF", 1},
        {".nan", 1},
        {".NaN", 1},
        {"inf", 1},
        {"-inf", 1},
        {"nan", 1},
        {"infinity", 1},
        {"1:20", 1},
        {"190:20:30.15", 1},
        {"2001-12-14", 1},
        {"2001-1-4", 1},
        {"2001-12-14t21:59:43.10-05:00", 1},
        {"2001-12-14 21:59:43.10 -5", 1},
        {"<<", 1},
        {"=", 1},
        {"acme", 0},
        {"tenant-1", 0},
        {"pool-1", 0},
        {"true-basic", 0},
        {"1e3-premium", 0},
        {"1.2.x", 0},
        {"1.2.3", 0},
        {"v1", 0},
        {"e3", 0},
        {"1e", 0},
        {"0x", 0},
        {"12ab", 0},
        {"yes-no", 0},
        {"2001-12", 0},
        {"2001-12-14-x", 0},
        {"nullable", 0},
        {"-", 0},
        {"1-2", 0},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (ll_yaml_plain_is_ambiguous(cases[i].s) != cases[i].want)
            fail_msg("\"%s\": want %d", cases[i].s, cases[i].want);
}

/* ---- chart values --------------------------------------------------------- */

#define PRODUCER_TAG_LINE                                                                          \
    "          tag: \"0.1\" # {\"$imagepolicy\": \"flux-system:producer-image-policy:tag\"}\n"
#define CONSUMER_TAG_LINE                                                                          \
    "          tag: \"0.1\" # {\"$imagepolicy\": \"flux-system:consumer-image-policy:tag\"}\n"

static void test_values_keep_comments(void **state)
{
    char *out =
        render_ok(PREMIUM_V2BETA1, "acme", "{\"apps\": {\"producer\": {\"enabled\": false}}}");
    char *want = naive(PREMIUM_V2BETA1, "acme", "premium", "0.0.x", "pool-1");
    json_t *docs = load(out);

    (void)state;
    edit_once(&want, "      producer:\n        enabled: true # Silo",
              "      producer:\n        enabled: false # Silo");
    assert_string_equal(out, want);
    assert_true(json_is_false(at(docs, "1.spec.values.apps.producer.enabled")));
    assert_true(json_is_true(at(docs, "1.spec.values.apps.consumer.enabled")));
    expect_comments_kept(want, out);
    json_decref(docs);
    free(out);
    free(want);
}

static void test_values_override_tag_keeps_its_comment(void **state)
{
    static const struct {
        const char *tmpl;
        const char *values;
        const char *from;
        const char *to;
    } cases[] = {
        {PREMIUM_V2BETA1, "{\"apps\": {\"producer\": {\"image\": {\"tag\": \"0.2\"}}}}",
         PRODUCER_TAG_LINE,
         "          tag: \"0.2\" # {\"$imagepolicy\": "
         "\"flux-system:producer-image-policy:tag\"}\n"},
        {PREMIUM_V2BETA1, "{\"apps\": {\"consumer\": {\"image\": {\"tag\": 7}}}}",
         CONSUMER_TAG_LINE,
         "          tag: 7 # {\"$imagepolicy\": \"flux-system:consumer-image-policy:tag\"}\n"},
        {ADVANCED_V2BETA1, "{\"apps\": {\"consumer\": {\"image\": {\"tag\": null}}}}",
         CONSUMER_TAG_LINE,
         "          tag: null # {\"$imagepolicy\": \"flux-system:consumer-image-policy:tag\"}\n"},
        {PREMIUM_V2, "{\"apps\": {\"producer\": {\"image\": {\"tag\": \"1.0\"}}}}",
         PRODUCER_TAG_LINE,
         "          tag: \"1.0\" # {\"$imagepolicy\": "
         "\"flux-system:producer-image-policy:tag\"}\n"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = render_ok(cases[i].tmpl, "acme", cases[i].values);
        char *want = naive(cases[i].tmpl, "acme", "premium", "0.0.x", "pool-1");

        edit_once(&want, cases[i].from, cases[i].to);
        if (strcmp(out, want) != 0)
            fail_msg("case %zu: got\n%s", i, out);
        free(out);
        free(want);
    }
}

static void test_values_add_nested_keys(void **state)
{
    /* "extra" comes first in the object, but its line must follow the lines
     * added deeper at the same place (the end of the file). */
    char *out = render_ok(PREMIUM_V2BETA1, "acme",
                          "{\"extra\": {\"a\": [1, \"x\"]},"
                          " \"apps\": {\"consumer\": {\"image\": {\"pullPolicy\": \"Always\"},"
                          " \"resources\": {\"limits\": {\"cpu\": \"1\"}}},"
                          " \"producer\": {\"ingress\": {\"host\": \"a.example.com\"}}}}");
    char *want = naive(PREMIUM_V2BETA1, "acme", "premium", "0.0.x", "pool-1");
    static const char added[] = "          \"pullPolicy\": \"Always\"\n"
                                "        \"resources\": {\"limits\": {\"cpu\": \"1\"}}\n"
                                "    \"extra\": {\"a\": [1, \"x\"]}\n";
    json_t *docs = load(out);
    char *joined;

    (void)state;
    edit_once(&want, "          enabled: true\n        image:\n" PRODUCER_TAG_LINE,
              "          enabled: true\n          \"host\": \"a.example.com\"\n        "
              "image:\n" PRODUCER_TAG_LINE);
    joined = malloc(strlen(want) + sizeof(added));
    assert_non_null(joined);
    strcpy(joined, want);
    strcat(joined, added);
    assert_string_equal(out, joined);
    expect_str(docs, "1.spec.values.apps.consumer.image.pullPolicy", "Always");
    expect_str(docs, "1.spec.values.apps.consumer.image.tag", "0.1");
    expect_str(docs, "1.spec.values.apps.consumer.resources.limits.cpu", "1");
    expect_str(docs, "1.spec.values.apps.producer.ingress.host", "a.example.com");
    assert_true(json_is_true(at(docs, "1.spec.values.apps.producer.ingress.enabled")));
    assert_int_equal(json_integer_value(json_array_get(at(docs, "1.spec.values.extra.a"), 0)), 1);
    json_decref(docs);
    free(joined);
    free(out);
    free(want);
}

static void test_values_replace_nodes(void **state)
{
    static const struct {
        const char *name;
        const char *values;
        const char *from;
        const char *to;
    } cases[] = {
        {"block mapping by a string", "{\"apps\": {\"producer\": {\"image\": \"nginx\"}}}",
         "        image:\n" PRODUCER_TAG_LINE, "        image: \"nginx\"\n"},
        {"block mapping by a list", "{\"apps\": {\"consumer\": [1, {\"a\": true}]}}",
         "      consumer:\n"
         "        enabled: true # Silo deployment -- premium tier has a dedicated deployment for "
         "each tenant\n"
         "        ingress:\n"
         "          enabled: true\n"
         "        image:\n" CONSUMER_TAG_LINE,
         "      consumer: [1, {\"a\": true}]\n"},
        {"scalar by an object", "{\"tenantId\": {\"x\": 1}}", "    tenantId: acme\n",
         "    tenantId: {\"x\": 1}\n"},
        {"everything", "{\"apps\": null}", NULL, NULL},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = render_ok(PREMIUM_V2BETA1, "acme", cases[i].values);
        char *want = naive(PREMIUM_V2BETA1, "acme", "premium", "0.0.x", "pool-1");
        json_t *docs = load(out), *values = parse_json(cases[i].values);

        if (cases[i].from) {
            edit_once(&want, cases[i].from, cases[i].to);
            if (strcmp(out, want) != 0)
                fail_msg("%s: got\n%s", cases[i].name, out);
        }
        /* Whatever the shape, the values read back as merged. */
        expect_merged(cases[i].name, at(docs, "1.spec.values"), values);
        expect_str(docs, "1.metadata.name", "acme-premium");
        json_decref(values);
        json_decref(docs);
        free(out);
        free(want);
    }
}

/* spec.values in every shape a template may give it. */
static void test_values_shapes(void **state)
{
    static const char head[] = "apiVersion: helm.toolkit.fluxcd.io/v2\n"
                               "kind: HelmRelease\n"
                               "metadata:\n"
                               "  name: {TENANT_ID}\n"
                               "spec:\n"
                               "  interval: 1m # keep me\n";
    static const struct {
        const char *name;
        const char *rest;   /* after head */
        const char *values; /* JSON */
        const char *want;   /* after head, rendered */
    } cases[] = {
        {"no values key", "  chart: x # c\n", "{\"a\": 1}",
         "  chart: x # c\n  \"values\": {\"a\": 1}\n"},
        {"no values key, no final newline", "  chart: x # c", "{\"a\": 1}",
         "  chart: x # c\n  \"values\": {\"a\": 1}"},
        {"empty values", "  values:\n  chart: x\n", "{\"a\": 1}",
         "  values: {\"a\": 1}\n  chart: x\n"},
        {"empty values at the end, no final newline", "  values:", "{\"a\": 1}",
         "  values: {\"a\": 1}"},
        {"null values", "  values: null # n\n", "{\"a\": 1}", "  values: {\"a\": 1} # n\n"},
        {"empty flow values", "  values: {}\n", "{\"a\": 1, \"b\": \"x\"}",
         "  values: {\"a\": 1, \"b\": \"x\"}\n"},
        {"flow values", "  values: {a: 1, c: [1]} # f\n", "{\"b\": 2, \"a\": 3}",
         "  values: {a: 3, c: [1], \"b\": 2} # f\n"},
        {"flow values with a key without value", "  values: {a}\n", "{\"a\": 3, \"b\": 2}",
         "  values: {a: 3, \"b\": 2}\n"},
        {"nested empty value", "  values:\n    a:\n    b: 1\n", "{\"a\": {\"x\": 1}}",
         "  values:\n    a: {\"x\": 1}\n    b: 1\n"},
        {"last value empty", "  values:\n    a: 1\n    b:\n", "{\"b\": 2, \"c\": 3}",
         "  values:\n    a: 1\n    b: 2\n    \"c\": 3\n"},
        {"literal block scalar", "  values:\n    a: |\n      line one\n      line two\n\n  x: 1\n",
         "{\"b\": 2}",
         "  values:\n    a: |\n      line one\n      line two\n    \"b\": 2\n\n  x: 1\n"},
        {"replace a folded block scalar", "  values:\n    a: >-\n      text\n    c: 1\n",
         "{\"a\": \"new\"}", "  values:\n    a: \"new\"\n    c: 1\n"},
        {"kept block scalar", "  values:\n    a: |+\n      text\n\n", "{\"b\": 2}",
         "  values:\n    a: |+\n      text\n\n    \"b\": 2\n"},
        {"indentless sequence replaced", "  values:\n    l:\n    - 1\n    - 2\n    m: 1\n",
         "{\"l\": [\"z\"]}", "  values:\n    l: [\"z\"]\n    m: 1\n"},
        {"comment after the last line stays on it", "  values:\n    a: 1 # last\n", "{\"b\": true}",
         "  values:\n    a: 1 # last\n    \"b\": true\n"},
        {"quoted and odd keys", "  values:\n    \"a b\": 1\n",
         "{\"a b\": 2, \"c: d\": \"#x\", \"q\\\"\": \"\\u2028\"}",
         "  values:\n    \"a b\": 2\n    \"c: d\": \"#x\"\n    \"q\\\"\": \"\\u2028\"\n"},
        {"non-ascii before the edit",
         "  note: \"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"\n  values:\n    a: 1\n",
         "{\"a\": \"\xc3\xa9t\xc3\xa9\"}",
         "  note: \"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"\n  values:\n    a: "
         "\"\xc3\xa9t\xc3\xa9\"\n"},
        {"tagged scalar", "  values:\n    a: !!str 5 # t\n", "{\"a\": 6}",
         "  values:\n    a: 6 # t\n"},
    };
    char tmpl[1024], want[1024];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(tmpl, sizeof(tmpl), "%s%s", head, cases[i].rest);
        char *out = render_ok(tmpl, "acme", cases[i].values);
        char *h = naive(head, "acme", "premium", "0.0.x", "pool-1");
        json_t *docs = load(out), *values = parse_json(cases[i].values);

        snprintf(want, sizeof(want), "%s%s", h, cases[i].want);
        if (strcmp(out, want) != 0)
            fail_msg("%s: got\n%s\nwant\n%s", cases[i].name, out, want);
        expect_merged(cases[i].name, at(docs, "0.spec.values"), values);
        free(h);
        json_decref(values);
        json_decref(docs);
        free(out);
    }
}

static void test_values_crlf(void **state)
{
    static const char tmpl[] = "apiVersion: v1\r\nkind: HelmRelease\r\nmetadata:\r\n"
                               "  name: {TENANT_ID}\r\nspec:\r\n  values:\r\n    a: 1 # c\r\n";
    char *out = render_ok(tmpl, "true", "{\"a\": 2, \"b\": 3}");

    (void)state;
    assert_string_equal(out, "apiVersion: v1\r\nkind: HelmRelease\r\nmetadata:\r\n"
                             "  name: \"true\"\r\nspec:\r\n  values:\r\n    a: 2 # c\r\n"
                             "    \"b\": 3\r\n");
    free(out);
}

static void test_values_only_in_helmreleases(void **state)
{
    static const char tmpl[] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {TENANT_ID}\n"
                               "spec:\n  values:\n    a: 1\n";
    char *out = render_ok(tmpl, "acme", "{\"a\": 2}");

    (void)state;
    assert_string_equal(out, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: acme\n"
                             "spec:\n  values:\n    a: 1\n");
    free(out);
}

static void test_values_refused(void **state)
{
    static const struct {
        const char *name;
        const char *tmpl;
        const char *values;
    } cases[] = {
        {"helmrelease without spec", "apiVersion: v1\nkind: HelmRelease\nmetadata:\n  name: x\n",
         "{\"a\": 1}"},
        {"aliases in the helmrelease",
         "apiVersion: v1\nkind: HelmRelease\nmetadata:\n  name: &n x\nspec:\n  values:\n"
         "    a: *n\n",
         "{\"b\": 1}"},
        {"explicit key",
         "apiVersion: v1\nkind: HelmRelease\nmetadata:\n  name: x\nspec:\n"
         "  values:\n    ? a\n    : - 1\n",
         "{\"a\": 2}"},
    };
    size_t i;
    int rc;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = render(&rc, cases[i].tmpl, strlen(cases[i].tmpl), "acme", "basic", "1.0",
                           cases[i].values);
        if (rc != LL_EINVALID)
            fail_msg("%s: want LL_EINVALID, got %d:\n%s", cases[i].name, rc, out ? out : "");
        free(out);
    }
}

/* ---- structure checks ----------------------------------------------------- */

static void test_structure_failures(void **state)
{
    static const struct {
        const char *name;
        const char *text;
        const char *message; /* a part of it */
    } cases[] = {
        {"empty", "", "no kubernetes objects"},
        {"only separators and comments", "---\n# c\n---\n", "no kubernetes objects"},
        {"a list", "- a\n", "document 1 at line 1 is not a mapping"},
        {"no apiVersion", "kind: x\nmetadata:\n  name: a\n",
         "document 1 at line 1 has no apiVersion"},
        {"null apiVersion", "apiVersion: ~\nkind: x\nmetadata:\n  name: a\n", "no apiVersion"},
        {"no kind", "apiVersion: v1\nmetadata:\n  name: a\n", "has no kind"},
        {"no name",
         "apiVersion: v1\nkind: x\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: "
         "x\nmetadata: {}\n",
         "document 2 at line 6 has no metadata.name"},
        {"empty name", "apiVersion: v1\nkind: x\nmetadata:\n  name: \"\"\n", "no metadata.name"},
        {"name a mapping", "apiVersion: v1\nkind: x\nmetadata:\n  name: {a: b}\n",
         "no metadata.name"},
        {"metadata a string", "apiVersion: v1\nkind: x\nmetadata: a\n", "no metadata.name"},
        {"syntax", "apiVersion: v1\nkind: x\nmetadata:\n  name: a\n b: c\n",
         "rendered template: yaml error at line 5 column"},
        {"tab indentation", "apiVersion: v1\nkind: x\nmetadata:\n\tname: a\n",
         "rendered template: yaml error at line 4"},
        {"duplicate key", "apiVersion: v1\nkind: x\nmetadata:\n  name: a\n  name: b\n",
         "document 1 has a duplicate key at line 5"},
        {"bad utf-8", "apiVersion: v1\nkind: x\nmetadata:\n  name: \xff\n",
         "rendered template: yaml error at line 4 column 9"},
        {"nul byte", "apiVersion: v1\nkind: x\0\n", "yaml error"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].text);
        if (!strcmp(cases[i].name, "nul byte"))
            len = sizeof("apiVersion: v1\nkind: x\0\n") - 1;
        int rc = ll_template_check_objects(cases[i].text, len);
        if (rc != LL_EINVALID)
            fail_msg("%s: want LL_EINVALID, got %d", cases[i].name, rc);
        if (!strstr(ll_error_last()->message, cases[i].message))
            fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].name, ll_error_last()->message,
                     cases[i].message);
    }
}

static void test_structure_ok(void **state)
{
    static const char *const texts[] = {
        "apiVersion: v1\nkind: x\nmetadata:\n  name: a\n",
        "---\napiVersion: v1\nkind: x\nmetadata:\n  name: a\n---\n",
        "apiVersion: v1\nkind: x\nmetadata: {name: a}\n---\n# only a comment\n---\n"
        "apiVersion: v1\nkind: y\nmetadata:\n  name: 1\n",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        if (ll_template_check_objects(texts[i], strlen(texts[i])) != 0)
            fail_msg("case %zu: %s", i, ll_error_last()->message);
}

static void test_render_reports_structure(void **state)
{
    static const char tmpl[] = "apiVersion: v1\nkind: x\nmetadata:\n  labels: {}\n";
    int rc;
    char *out = render(&rc, tmpl, strlen(tmpl), "acme", "basic", "1.0", NULL);

    (void)state;
    assert_null(out);
    assert_int_equal(rc, LL_EINVALID);
    assert_string_equal(ll_error_last()->message,
                        "rendered template: document 1 at line 1 has no metadata.name");
}

/* ---- YAML as JSON ----------------------------------------------------------- */

static void test_load_json_scalars(void **state)
{
    static const struct {
        const char *yaml;
        const char *json;
    } cases[] = {
        {"a: true", "{\"a\": true}"},
        {"a: False", "{\"a\": false}"},
        {"a: yes", "{\"a\": \"yes\"}"},
        {"a: \"true\"", "{\"a\": \"true\"}"},
        {"a: null", "{\"a\": null}"},
        {"a: ~", "{\"a\": null}"},
        {"a:", "{\"a\": null}"},
        {"a: 'null'", "{\"a\": \"null\"}"},
        {"a: 123", "{\"a\": 123}"},
        {"a: -7", "{\"a\": -7}"},
        {"a: 0", "{\"a\": 0}"},
        {"a: 0777", "{\"a\": \"0777\"}"},
        {"a: 1e3", "{\"a\": \"1e3\"}"},
        {"a: 1.5", "{\"a\": \"1.5\"}"},
        {"a: 99999999999999999999", "{\"a\": \"99999999999999999999\"}"},
        {"a: \"123\"", "{\"a\": \"123\"}"},
        {"a: [1, x, {b: c}]", "{\"a\": [1, \"x\", {\"b\": \"c\"}]}"},
        {"1: x", "{\"1\": \"x\"}"},
        {"a: &x [1]\nb: *x", "{\"a\": [1], \"b\": [1]}"},
        {"a: \"\\u00e9\\0\"", "{\"a\": \"\\u00e9\\u0000\"}"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *docs = NULL, *want = parse_json(cases[i].json);
        int rc = ll_yaml_load_json(&docs, cases[i].yaml, strlen(cases[i].yaml));
        if (rc != 0)
            fail_msg("%s: %s", cases[i].yaml, ll_error_last()->message);
        if (json_array_size(docs) != 1 || !json_equal(json_array_get(docs, 0), want)) {
            char *got = json_dumps(docs, JSON_COMPACT);
            fail_msg("%s: got %s", cases[i].yaml, got);
        }
        json_decref(want);
        json_decref(docs);
    }
}

static void test_load_json_documents(void **state)
{
    static const char text[] = "a: 1\n---\n- x\n---\n";
    json_t *docs = NULL;

    (void)state;
    assert_int_equal(ll_yaml_load_json(&docs, text, strlen(text)), 0);
    assert_int_equal(json_array_size(docs), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(docs, 0), "a")), 1);
    assert_string_equal(json_string_value(json_array_get(json_array_get(docs, 1), 0)), "x");
    assert_true(json_is_null(json_array_get(docs, 2)));
    json_decref(docs);
    assert_int_equal(ll_yaml_load_json(&docs, "", 0), 0);
    assert_int_equal(json_array_size(docs), 0);
    json_decref(docs);
}

static void test_load_json_hostile(void **state)
{
    char deep[2 * 200 + 1], laughs[2048];
    json_t *docs = NULL;
    size_t i;
    int k;

    (void)state;
    for (i = 0; i < 200; i++) {
        deep[i] = '[';
        deep[200 + i] = ']';
    }
    deep[400] = '\0';
    assert_int_equal(ll_yaml_load_json(&docs, deep, strlen(deep)), LL_EINVALID);
    assert_null(docs);
    assert_non_null(strstr(ll_error_last()->message, "nested"));

    /* A billion laughs: nine levels of ten aliases each. */
    snprintf(laughs, sizeof(laughs), "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (k = 1; k < 10; k++)
        snprintf(laughs + strlen(laughs), sizeof(laughs) - strlen(laughs),
                 "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", k, k,
                 k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1);
    assert_int_equal(ll_yaml_load_json(&docs, laughs, strlen(laughs)), LL_EINVALID);
    assert_null(docs);

    /* A node that contains itself. */
    assert_int_equal(ll_yaml_load_json(&docs, "a: &x [*x]\n", 11), LL_EINVALID);
    assert_int_equal(ll_yaml_load_json(&docs, "? [a]\n: b\n", 10), LL_EINVALID);
    assert_int_equal(ll_yaml_load_json(&docs, "a: 1\na: 2\n", 10), LL_EINVALID);
    assert_int_equal(ll_yaml_load_json(&docs, "a: [\n", 5), LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->message, "yaml error at line"));
}

/* ---- yamltext ------------------------------------------------------------- */

/* libyaml 0.2.5 counts mark.index in characters; positions must be bytes. */
static void test_positions_are_bytes(void **state)
{
    static const char *const texts[] = {
        "a: \"h\xc3\xa9llo\xe2\x82\xac\" # c\xc3\xa9\nbb: xyz\n",
        "\xef\xbb\xbf"
        "a: 1\nbb: xyz\n",
        "a: \xf0\x9f\x98\x80\r\nbb: xyz\r\n",
        "a: \"x\xe2\x80\xa8y\"\nbb: xyz\n",
        "k: \"a\xc2\x85"
        "b\"\nbb: xyz\n",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        ll_ytext y;
        yaml_node_t *root, *v;
        size_t s, e, want = (size_t)(strstr(texts[i], "xyz") - texts[i]);

        if (ll_ytext_load(&y, texts[i], strlen(texts[i]), "test") != 0)
            fail_msg("case %zu: %s", i, ll_error_last()->message);
        root = ll_ytext_root(&y.docs[0]);
        v = ll_ytext_map_get(&y.docs[0], root, "bb");
        assert_non_null(v);
        s = ll_ytext_start(&y, v);
        e = ll_ytext_end(&y, v);
        if (s != want || e != want + 3)
            fail_msg("case %zu: [%zu, %zu), want [%zu, %zu)", i, s, e, want, want + 3);
        ll_ytext_free(&y);
    }
}

static void test_edits(void **state)
{
    ll_yedits e;
    char *out = NULL;
    size_t len;

    (void)state;
    ll_yedits_init(&e);
    assert_int_equal(ll_yedits_add(&e, 3, 3, 0, "B", 1), 0);
    assert_int_equal(ll_yedits_add(&e, 0, 1, 0, "X", 1), 0);
    assert_int_equal(ll_yedits_add(&e, 3, 3, -1, "A", 1), 0);
    assert_int_equal(ll_yedits_add(&e, 3, 3, 0, "C", 1), 0);
    assert_int_equal(ll_yedits_add(&e, 4, 6, 0, "", 0), 0);
    assert_int_equal(ll_yedits_apply(&out, &len, "abcdefg", 7, &e), 0);
    assert_string_equal(out, "XbcABCdg");
    assert_int_equal(len, 8);
    free(out);

    ll_yedits_init(&e);
    assert_int_equal(ll_yedits_add(&e, 0, 3, 0, "x", 1), 0);
    assert_int_equal(ll_yedits_add(&e, 2, 4, 0, "y", 1), 0);
    assert_int_equal(ll_yedits_apply(&out, &len, "abcdefg", 7, &e), -1);
    assert_null(out);
}

static void test_flow_escapes(void **state)
{
    json_t *v = json_pack("{s:s}", "k",
                          "a\xe2\x80\xa8"
                          "b\xc2\x85"
                          "c\x7f\xef\xbb\xbf/");
    char *flow = NULL;
    size_t len;

    (void)state;
    assert_int_equal(ll_yaml_flow(&flow, &len, v), 0);
    assert_string_equal(flow, "{\"k\": \"a\\u2028b\\u0085c\\u007F\\uFEFF/\"}");
    free(flow);
    json_decref(v);
}

/* A rollout's edit: only each HelmRelease's chart version changes, in place;
 * everything else (comments, a quoted or plain scalar, CRLF, no final
 * newline, other documents) stays byte for byte. */
static void test_set_chart_version(void **state)
{
    static const struct {
        const char *name, *in, *version, *want;
        int changed;
    } cases[] = {
        {"quoted",
         "kind: HelmRelease\nspec:\n  chart:\n    spec:\n      version: \"0.0.1\" # pin\n", "0.0.2",
         "kind: HelmRelease\nspec:\n  chart:\n    spec:\n      version: \"0.0.2\" # pin\n", 1},
        {"plain range, no final newline",
         "kind: HelmRelease\nspec:\n  chart:\n    spec:\n      version: 0.0.x", "1.2.3",
         "kind: HelmRelease\nspec:\n  chart:\n    spec:\n      version: \"1.2.3\"", 1},
        {"crlf",
         "kind: HelmRelease\r\nspec:\r\n  chart:\r\n    spec:\r\n      version: '1.0.0'\r\n  x: "
         "1\r\n",
         "1.0.1",
         "kind: HelmRelease\r\nspec:\r\n  chart:\r\n    spec:\r\n      version: \"1.0.1\"\r\n  x: "
         "1\r\n",
         1},
        {"already there",
         "kind: HelmRelease\nspec:\n  chart:\n    spec:\n      version: \"0.0.2\"\n", "0.0.2",
         "kind: HelmRelease\nspec:\n  chart:\n    spec:\n      version: \"0.0.2\"\n", 0},
        {"namespace first, two releases",
         "kind: Namespace\nmetadata:\n  name: a\n---\nkind: HelmRelease\nspec:\n  chart: {spec: "
         "{version: "
         "\"1.0.0\"}}\n---\n# c\nkind: HelmRelease\nspec:\n  chart:\n    spec:\n      version: "
         "1.0.0\n",
         "2.0.0",
         "kind: Namespace\nmetadata:\n  name: a\n---\nkind: HelmRelease\nspec:\n  chart: {spec: "
         "{version: "
         "\"2.0.0\"}}\n---\n# c\nkind: HelmRelease\nspec:\n  chart:\n    spec:\n      version: "
         "\"2.0.0\"\n",
         2},
        {"chartRef: nothing to edit", "kind: HelmRelease\nspec:\n  chartRef:\n    name: x\n",
         "2.0.0", "kind: HelmRelease\nspec:\n  chartRef:\n    name: x\n", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL;
        size_t len = 0;
        int changed = -1;
        if (ll_template_set_chart_version(&out, &len, &changed, cases[i].in, strlen(cases[i].in),
                                          cases[i].version) != 0)
            fail_msg("%s: %s", cases[i].name, ll_error_last()->message);
        if (strcmp(out, cases[i].want) != 0 || changed != cases[i].changed)
            fail_msg("%s: got (%d) %s", cases[i].name, changed, out);
        assert_int_equal(len, strlen(cases[i].want));
        free(out);
    }
    /* Refused: a version that could change the YAML around it, bad YAML,
     * aliases. */
    const char *bad[][2] = {
        {"kind: HelmRelease\nspec:\n  chart:\n    spec:\n      version: 1.0.0\n", "1.0.0\"\nx: y"},
        {"kind: HelmRelease\nspec: [\n", "1.0.0"},
        {"kind: HelmRelease\nx: &v 1.0.0\nspec:\n  chart:\n    spec:\n      version: *v\n",
         "2.0.0"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *out = NULL;
        size_t len = 0;
        int changed = 0;
        assert_int_equal(ll_template_set_chart_version(&out, &len, &changed, bad[i][0],
                                                       strlen(bad[i][0]), bad[i][1]),
                         LL_EINVALID);
        assert_null(out);
    }
}

/* ---- the tier policy ------------------------------------------------------ */

/* base followed by one more document (new string). */
static char *with_doc(const char *base, const char *doc)
{
    size_t a = strlen(base), b = strlen(doc);
    char *out = malloc(a + b + 6);
    assert_non_null(out);
    memcpy(out, base, a);
    memcpy(out + a, "\n---\n", 5);
    memcpy(out + a + 5, doc, b + 1);
    return out;
}

static void test_policy_accepts(void **state)
{
    (void)state;
    char *pools[] = {"pool-1"};
    ll_tier_policy policy = {NULL, NULL, pools, 1};
    const char *ok[] = {BASIC_V2BETA1, PREMIUM_V2BETA1, ADVANCED_V2BETA1, PREMIUM_V2};
    /* What a siloed tier may add in the tenant's namespace, and a
     * HelmRelease's values in a ConfigMap of flux-system. */
    const char *extras[] = {
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: quota\n  namespace: "
        "{TENANT_ID}\nspec:\n  hard:\n    pods: \"10\"\n",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny\n  "
        "namespace: {TENANT_ID}\nspec:\n  podSelector: {}\n",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: rb\n  "
        "namespace: {TENANT_ID}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  "
        "name: reader\nsubjects:\n  - kind: ServiceAccount\n    name: app\n    namespace: "
        "{TENANT_ID}\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {TENANT_ID}-values\n  namespace: "
        "flux-system\ndata:\n  a: !!str 1\n",
        "apiVersion: infra.contrib.fluxcd.io/v1alpha2\nkind: Terraform\nmetadata:\n  name: tf\n  "
        "namespace: {TENANT_ID}\nspec:\n  path: ./x\n",
    };
    const char *rule = "x";

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (ll_template_check_policy(&rule, ok[i], strlen(ok[i]), &policy) != 0)
            fail_msg("template %zu: %s", i, ll_error_last()->message);
        assert_null(rule);
    }
    for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
        char *t = with_doc(PREMIUM_V2, extras[i]);
        if (ll_template_check_policy(&rule, t, strlen(t), &policy) != 0)
            fail_msg("extra %zu: %s", i, ll_error_last()->message);
        free(t);
    }
    /* Without pools, basic's pool-1 is a namespace like any other. */
    assert_int_equal(ll_template_check_policy(&rule, BASIC_V2BETA1, strlen(BASIC_V2BETA1), NULL),
                     LL_EINVALID);
    assert_string_equal(rule, "helm-target-namespace");
}

static void test_policy_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *name, *doc, *rule;
    } cases[] = {
        {"cluster-admin ClusterRoleBinding",
         "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: "
         "{TENANT_ID}-admin\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: "
         "ClusterRole\n  name: cluster-admin\nsubjects:\n  - kind: ServiceAccount\n    name: "
         "default\n    namespace: {TENANT_ID}\n",
         "cluster-rbac"},
        {"ClusterRole",
         "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: "
         "{TENANT_ID}\nrules: []\n",
         "cluster-rbac"},
        {"kube-system Namespace",
         "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-system\n", "foreign-namespace"},
        {"Namespace named after the tenant, not its id",
         "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-{TENANT_ID}\n",
         "foreign-namespace"},
        {"ConfigMap in kube-system",
         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {TENANT_ID}\n  namespace: "
         "kube-system\n",
         "object-namespace"},
        {"ConfigMap with no namespace",
         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {TENANT_ID}\n", "object-namespace"},
        {"ServiceAccount in flux-system",
         "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {TENANT_ID}\n  namespace: "
         "flux-system\n",
         "object-namespace"},
        {"shared ConfigMap in flux-system",
         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: saas-infra-outputs\n  namespace: "
         "flux-system\n",
         "object-name"},
        {"Kustomization",
         "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: "
         "{TENANT_ID}\n  namespace: flux-system\nspec:\n  path: ./\n  sourceRef:\n    kind: "
         "GitRepository\n    name: evil\n",
         "flux-kustomization"},
        {"GitRepository",
         "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: "
         "{TENANT_ID}\n  namespace: flux-system\nspec:\n  url: https://evil.example/repo\n",
         "flux-source"},
        {"OCIRepository",
         "apiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: OCIRepository\nmetadata:\n  name: "
         "{TENANT_ID}\n  namespace: {TENANT_ID}\n",
         "flux-source"},
        {"Secret in flux-system",
         "apiVersion: v1\nkind: Secret\nmetadata:\n  name: flux-system\n  namespace: "
         "flux-system\nstringData:\n  password: x\n",
         "flux-namespace-secret"},
        {"Secret in the tenant's namespace (not on the list)",
         "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: {TENANT_ID}\n",
         "kind-not-allowed"},
        {"Deployment",
         "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: "
         "{TENANT_ID}\n",
         "kind-not-allowed"},
        {"a Role of another group",
         "apiVersion: evil.example/v1\nkind: Role\nmetadata:\n  name: r\n  namespace: "
         "{TENANT_ID}\n",
         "kind-not-allowed"},
        {"RoleBinding to cluster-admin",
         "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: rb\n  "
         "namespace: {TENANT_ID}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: "
         "ClusterRole\n  name: cluster-admin\n",
         "rolebinding-cluster-role"},
        {"placeholder as a key",
         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {TENANT_ID}\n  namespace: "
         "{TENANT_ID}\ndata:\n  {TENANT_ID}: x\n",
         "placeholder-in-key"},
        {"placeholder as the kind",
         "apiVersion: v1\nkind: {TENANT_ID}\nmetadata:\n  name: x\n  namespace: {TENANT_ID}\n",
         "placeholder-in-type"},
        {"placeholder in the apiVersion",
         "apiVersion: {TIER}/v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: "
         "{TENANT_ID}\n",
         "placeholder-in-type"},
        {"!!python/object tag",
         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {TENANT_ID}\n  namespace: "
         "{TENANT_ID}\ndata:\n  x: !!python/object:os.system \"id\"\n",
         "yaml-tag"},
        {"custom tag", "apiVersion: v1\nkind: ConfigMap\nmetadata: !mine\n  name: {TENANT_ID}\n",
         "yaml-tag"},
        {"a placeholder in a tag",
         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: !{TENANT_ID} x\n", "yaml-tag"},
        {"merge key",
         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  <<: {namespace: kube-system}\n  name: "
         "{TENANT_ID}\n",
         "yaml-merge-key"},
        {"HelmRelease into kube-system",
         "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: "
         "{TENANT_ID}-x\n  namespace: flux-system\nspec:\n  targetNamespace: kube-system\n",
         "helm-target-namespace"},
        {"HelmRelease storing in kube-system",
         "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: "
         "{TENANT_ID}-x\n  namespace: flux-system\nspec:\n  targetNamespace: {TENANT_ID}\n  "
         "storageNamespace: kube-system\n",
         "helm-target-namespace"},
        {"HelmRelease into flux-system",
         "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: "
         "{TENANT_ID}-x\n  namespace: flux-system\nspec:\n  chart: {}\n",
         "helm-target-namespace"},
        {"HelmRelease in kube-system",
         "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: "
         "{TENANT_ID}-x\n  namespace: kube-system\nspec:\n  targetNamespace: {TENANT_ID}\n",
         "object-namespace"},
        {"HelmRelease to another cluster",
         "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: "
         "{TENANT_ID}-x\n  namespace: flux-system\nspec:\n  targetNamespace: {TENANT_ID}\n  "
         "kubeConfig:\n    secretRef:\n      name: other\n",
         "helm-kubeconfig"},
        {"HelmRelease values from a flux-system Secret",
         "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: "
         "{TENANT_ID}-x\n  namespace: flux-system\nspec:\n  targetNamespace: {TENANT_ID}\n  "
         "valuesFrom:\n    - kind: Secret\n      name: flux-system\n",
         "flux-namespace-secret"},
        {"HelmRelease post-renderers",
         "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: "
         "{TENANT_ID}-x\n  namespace: flux-system\nspec:\n  targetNamespace: {TENANT_ID}\n  "
         "postRenderers:\n    - kustomize:\n        patches: []\n",
         "helm-post-renderers"},
        {"HelmRelease as a Flux account",
         "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: "
         "{TENANT_ID}-x\n  namespace: flux-system\nspec:\n  targetNamespace: {TENANT_ID}\n  "
         "serviceAccountName: helm-controller\n",
         "helm-service-account"},
        {"another tenant's HelmRelease",
         "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: victim-"
         "premium\n  namespace: flux-system\nspec:\n  targetNamespace: {TENANT_ID}\n",
         "object-name"},
    };
    char *pools[] = {"pool-1"};
    ll_tier_policy policy = {NULL, "flux-system", pools, 1};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = with_doc(PREMIUM_V2, cases[i].doc);
        const char *rule = NULL;
        int error = ll_template_check_policy(&rule, t, strlen(t), &policy);
        if (error != LL_EINVALID || !rule || strcmp(rule, cases[i].rule) != 0)
            fail_msg("%s: got %d (%s) %s", cases[i].name, error, rule ? rule : "no rule",
                     ll_error_last()->message);
        if (!strstr(ll_error_last()->message, cases[i].rule) ||
            strcmp(ll_error_last()->kind, "tier-policy") != 0)
            fail_msg("%s: the message names no rule: %s", cases[i].name, ll_error_last()->message);
        free(t);
    }
    /* A template without the tenant's Namespace has no namespace of its own. */
    const char *ns_less = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: "
                          "{TENANT_ID}\n";
    char *t = with_doc(BASIC_V2BETA1, ns_less);
    const char *rule = NULL;
    assert_int_equal(ll_template_check_policy(&rule, t, strlen(t), &policy), LL_EINVALID);
    assert_string_equal(rule, "object-namespace");
    free(t);
}

static void test_policy_kinds_setting(void **state)
{
    (void)state;
    const char *deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  "
                         "namespace: {TENANT_ID}\n";
    const char *crb = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"
                      "metadata:\n  name: {TENANT_ID}\n";
    char *t = with_doc(PREMIUM_V2, deploy), *u = with_doc(PREMIUM_V2, crb);
    const char *rule = NULL;
    ll_tier_policy wide = {"Namespace, HelmRelease.helm.toolkit.fluxcd.io , Deployment.apps,"
                           "ClusterRoleBinding.rbac.authorization.k8s.io",
                           NULL, NULL, 0};
    ll_tier_policy narrow = {"HelmRelease.helm.toolkit.fluxcd.io", NULL, NULL, 0};

    assert_int_equal(ll_template_check_policy(&rule, t, strlen(t), &wide), 0);
    /* Listed or not, cluster-scoped RBAC stays out. */
    assert_int_equal(ll_template_check_policy(&rule, u, strlen(u), &wide), LL_EINVALID);
    assert_string_equal(rule, "cluster-rbac");
    assert_int_equal(ll_template_check_policy(&rule, PREMIUM_V2, strlen(PREMIUM_V2), &narrow),
                     LL_EINVALID);
    assert_string_equal(rule, "kind-not-allowed");
    /* Another Flux namespace: flux-system is then a namespace like others. */
    ll_tier_policy other = {NULL, "flux", NULL, 0};
    assert_int_equal(ll_template_check_policy(&rule, PREMIUM_V2, strlen(PREMIUM_V2), &other),
                     LL_EINVALID);
    assert_string_equal(rule, "object-namespace");
    /* Not YAML objects: refused without a rule. */
    assert_int_equal(ll_template_check_policy(&rule, "a: [", 4, NULL), LL_EINVALID);
    assert_null(rule);
    assert_int_equal(ll_template_check_policy(&rule, "- a\n", 4, NULL), LL_EINVALID);
    assert_null(rule);
    free(t);
    free(u);
}

/* The locked values of text, as one comma-separated string (static). */
static const char *locked_of(const char *text, char *const *pools)
{
    static char out[1024];
    json_t *locked = NULL, *p;
    size_t i, n = 0;

    if (ll_template_locked_values(&locked, text, strlen(text), pools, pools ? 1 : 0) != 0)
        fail_msg("%s", ll_error_last()->message);
    out[0] = '\0';
    json_array_foreach(locked, i, p) n +=
        (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", i ? "," : "", json_string_value(p));
    json_decref(locked);
    return out;
}

static void test_locked_values(void **state)
{
    (void)state;
    char *pools[] = {"pool-1"};

    assert_string_equal(locked_of(BASIC_V2BETA1, pools),
                        "/apps/consumer/envId,/apps/producer/envId,/tenantId");
    /* basic's pool is its targetNamespace too: locked without pools. */
    assert_string_equal(locked_of(BASIC_V2BETA1, NULL),
                        "/apps/consumer/envId,/apps/producer/envId,/tenantId");
    assert_string_equal(locked_of(PREMIUM_V2BETA1, pools), "/tenantId");
    /* advanced: producer's pool locks consumer's envId too. */
    assert_string_equal(locked_of(ADVANCED_V2BETA1, pools),
                        "/apps/consumer/envId,/apps/producer/envId,/tenantId");
    assert_string_equal(locked_of(ADVANCED_V2BETA1, NULL), "/tenantId");
    /* Placeholders anywhere in a value, sequences whole, keys escaped, the
     * annotation, and nothing outside HelmReleases' values. */
    const char *t = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {TENANT_ID}\ndata:\n"
                    "  x: {TENANT_ID}\n---\n"
                    "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n"
                    "  name: {TENANT_ID}-x\n  annotations:\n"
                    "    landlord.dev/locked-values: \"/apps/producer/enabled, /a~1b\"\n"
                    "spec:\n  values:\n    host: \"{TENANT_ID}.example.com\"\n"
                    "    tier: t-{TIER}\n    release: \"{RELEASE_VERSION}\"\n"
                    "    list: [a, {TENANT_ID}]\n    plain: [a, b]\n    \"a/b~c\": {TENANT_ID}\n"
                    "    deep: {x: {y: {TENANT_ID}}}\n";
    assert_string_equal(locked_of(t, NULL),
                        "/apps/producer/enabled,/a~1b,/a~1b~0c,/deep/x/y,/host,/list,/tier");
    json_t *locked = NULL;
    const char *bad = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n"
                      "  name: x\n  annotations:\n    landlord.dev/locked-values: apps.x\n";
    assert_int_equal(ll_template_locked_values(&locked, bad, strlen(bad), NULL, 0), LL_EINVALID);
    assert_null(locked);
}

static void test_check_values(void **state)
{
    (void)state;
    json_t *locked = json_pack("[s, s, s, s]", "/apps/consumer/envId", "/apps/producer/envId",
                               "/tenantId", "/a~1b/c");
    static const struct {
        const char *values;
        const char *refused; /* a part of the message, or NULL: accepted */
    } cases[] = {
        {"{}", NULL},
        {"{\"apps\": {\"producer\": {\"image\": {\"tag\": \"1.0\"}}}, \"extra\": 1}", NULL},
        {"{\"apps\": {\"consumer\": {\"ingress\": {\"enabled\": false}}}}", NULL},
        {"{\"tenantid\": \"victim\", \"a\": {\"b\": 1}}", NULL},
        {"{\"tenantId\": \"victim\"}", "may not set /tenantId"},
        {"{\"tenantId\": null}", "may not set /tenantId"},
        {"{\"apps\": {\"producer\": {\"envId\": \"kube-system\"}}}",
         "may not set /apps/producer/envId"},
        {"{\"apps\": {\"consumer\": {\"envId\": {\"x\": 1}}}}", "may not set /apps/consumer/envId"},
        {"{\"apps\": null}", "may not replace /apps with a null"},
        {"{\"apps\": [\"x\"]}", "may not replace /apps with a list"},
        {"{\"apps\": {\"producer\": \"x\"}}", "may not replace /apps/producer with a string"},
        {"{\"a/b\": {\"c\": 1}}", "may not set /a~1b/c"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = json_loads(cases[i].values, 0, NULL);
        int error;
        assert_non_null(v);
        error = ll_template_check_values(locked, v);
        if (!cases[i].refused && error != 0)
            fail_msg("%s: refused: %s", cases[i].values, ll_error_last()->message);
        if (cases[i].refused &&
            (error != LL_EINVALID || !strstr(ll_error_last()->message, cases[i].refused) ||
             strcmp(ll_error_last()->field, "values") != 0))
            fail_msg("%s: got %d %s", cases[i].values, error, ll_error_last()->message);
        json_decref(v);
    }
    json_decref(locked);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_templates),
        cmocka_unit_test(test_env_template_without_final_newline),
        cmocka_unit_test(test_release_expressions),
        cmocka_unit_test(test_missing_values_named),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_other_braces_untouched),
        cmocka_unit_test(test_ambiguous_ids),
        cmocka_unit_test(test_plain_is_ambiguous),
        cmocka_unit_test(test_values_keep_comments),
        cmocka_unit_test(test_values_override_tag_keeps_its_comment),
        cmocka_unit_test(test_values_add_nested_keys),
        cmocka_unit_test(test_values_replace_nodes),
        cmocka_unit_test(test_values_shapes),
        cmocka_unit_test(test_values_crlf),
        cmocka_unit_test(test_values_only_in_helmreleases),
        cmocka_unit_test(test_values_refused),
        cmocka_unit_test(test_structure_failures),
        cmocka_unit_test(test_structure_ok),
        cmocka_unit_test(test_render_reports_structure),
        cmocka_unit_test(test_load_json_scalars),
        cmocka_unit_test(test_load_json_documents),
        cmocka_unit_test(test_load_json_hostile),
        cmocka_unit_test(test_positions_are_bytes),
        cmocka_unit_test(test_edits),
        cmocka_unit_test(test_flow_escapes),
        cmocka_unit_test(test_set_chart_version),
        cmocka_unit_test(test_policy_accepts),
        cmocka_unit_test(test_policy_refuses),
        cmocka_unit_test(test_policy_kinds_setting),
        cmocka_unit_test(test_locked_values),
        cmocka_unit_test(test_check_values),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

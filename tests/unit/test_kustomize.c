/* test_kustomize.c - unit tests of lib/gitops/kustomize.c.
 *
 * The kustomization files of the reference system are reproduced byte for
 * byte: tier files without final newline, pooled-envs with trailing spaces
 * after `resources:`.  Each test walks a table; a failing case names itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "landlord/error.h"
#include "landlord/kustomize.h"

#define HEAD "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"

/* tenants/<tier>/kustomization.yaml in the reference: no final newline. */
static const char TIER_FILE[] = HEAD "resources:\n  - dummy-configmap.yaml";

/* pooled-envs/kustomization.yaml: trailing spaces after resources:, no final
 * newline. */
static const char POOLED_FILE[] = HEAD "resources:  \n  - pool-1.yaml";

/* tenants/kustomization.yaml. */
static const char TENANTS_FILE[] = HEAD "resources:\n  - basic\n  - advanced\n  - premium\n";

typedef struct edit_case {
    const char *name;
    int add; /* 1 add, 0 remove */
    const char *text;
    const char *entry;
    int changed;
    const char *want;
} edit_case;

static void run_edits(const edit_case *cases, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char *out = NULL;
        size_t out_len = 0;
        int changed = -1;
        int rc = cases[i].add ? ll_kustomize_add(&out, &out_len, &changed, cases[i].text,
                                                 strlen(cases[i].text), cases[i].entry)
                              : ll_kustomize_remove(&out, &out_len, &changed, cases[i].text,
                                                    strlen(cases[i].text), cases[i].entry);
        if (rc != 0)
            fail_msg("%s: rc %d: %s", cases[i].name, rc, ll_error_last()->message);
        if (changed != cases[i].changed)
            fail_msg("%s: changed %d, want %d", cases[i].name, changed, cases[i].changed);
        if (strlen(out) != out_len || strcmp(out, cases[i].want) != 0)
            fail_msg("%s: got\n[%s]\nwant\n[%s]", cases[i].name, out, cases[i].want);
        free(out);
    }
}

static void test_reference_files(void **state)
{
    static const edit_case cases[] = {
        {"onboard into a tier", 1, TIER_FILE, "acme.yaml", 1,
         HEAD "resources:\n  - dummy-configmap.yaml\n  - acme.yaml"},
        {"second tenant", 1, HEAD "resources:\n  - dummy-configmap.yaml\n  - acme.yaml",
         "tenant-2.yaml", 1,
         HEAD "resources:\n  - dummy-configmap.yaml\n  - acme.yaml\n  - tenant-2.yaml"},
        {"offboard the last line", 0, HEAD "resources:\n  - dummy-configmap.yaml\n  - acme.yaml",
         "acme.yaml", 1, TIER_FILE},
        {"offboard a middle line", 0,
         HEAD "resources:\n  - dummy-configmap.yaml\n  - acme.yaml\n  - tenant-2.yaml", "acme.yaml",
         1, HEAD "resources:\n  - dummy-configmap.yaml\n  - tenant-2.yaml"},
        {"pooled envs keep their trailing spaces", 1, POOLED_FILE, "pool-2.yaml", 1,
         HEAD "resources:  \n  - pool-1.yaml\n  - pool-2.yaml"},
        {"tier folders", 1, TENANTS_FILE, "enterprise", 1,
         HEAD "resources:\n  - basic\n  - advanced\n  - premium\n  - enterprise\n"},
        {"tier folders, remove", 0, TENANTS_FILE, "advanced", 1,
         HEAD "resources:\n  - basic\n  - premium\n"},
    };

    (void)state;
    run_edits(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_layouts(void **state)
{
    static const edit_case cases[] = {
        {"indentless sequence", 1, HEAD "resources:\n- a.yaml\n- b.yaml\n", "c.yaml", 1,
         HEAD "resources:\n- a.yaml\n- b.yaml\n- c.yaml\n"},
        {"indentless sequence, remove", 0, HEAD "resources:\n- a.yaml\n- b.yaml\n", "a.yaml", 1,
         HEAD "resources:\n- b.yaml\n"},
        {"four-space items", 1, HEAD "resources:\n    - a\n", "b", 1,
         HEAD "resources:\n    - a\n    - b\n"},
        {"more keys after", 1, HEAD "resources:\n  - a\n# c\npatches: []\n", "b", 1,
         HEAD "resources:\n  - a\n  - b\n# c\npatches: []\n"},
        {"comments between entries", 0,
         HEAD "resources:\n  # first\n  - a # tenant a\n  # second\n  - b\n", "a", 1,
         HEAD "resources:\n  # first\n  # second\n  - b\n"},
        {"comment on the last entry", 1, HEAD "resources:\n  - a # keep\n", "b", 1,
         HEAD "resources:\n  - a # keep\n  - b\n"},
        {"flow sequence", 1, HEAD "resources: [a, b] # flow\n", "c", 1,
         HEAD "resources: [\"a\", \"b\", \"c\"] # flow\n"},
        {"flow sequence, remove", 0, HEAD "resources: [a, b]", "a", 1, HEAD "resources: [\"b\"]"},
        {"empty flow sequence", 1, HEAD "resources: []\n", "a", 1, HEAD "resources:\n  - a\n"},
        {"missing key", 1, HEAD, "a.yaml", 1, HEAD "resources:\n  - a.yaml\n"},
        {"missing key, no final newline", 1,
         "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization", "a.yaml", 1,
         HEAD "resources:\n  - a.yaml"},
        {"empty value", 1, HEAD "resources:\n", "a", 1, HEAD "resources:\n  - a\n"},
        {"empty value with spaces and a comment", 1, HEAD "resources:   # none yet\nfoo: 1\n", "a",
         1, HEAD "resources:   # none yet\n  - a\nfoo: 1\n"},
        {"empty value, no final newline", 1, HEAD "resources:", "a", 1, HEAD "resources:\n  - a"},
        {"null", 1, HEAD "resources: null\n", "a", 1, HEAD "resources: [\"a\"]\n"},
        {"flow mapping", 1, "{apiVersion: v1, kind: Kustomization}\n", "a", 1,
         "{apiVersion: v1, kind: Kustomization, \"resources\": [\"a\"]}\n"},
        {"crlf", 1, "kind: Kustomization\r\nresources:\r\n  - a\r\n", "b", 1,
         "kind: Kustomization\r\nresources:\r\n  - a\r\n  - b\r\n"},
        {"dash alone on its line", 1, HEAD "resources:\n  -\n    a\n", "b", 1,
         HEAD "resources: [\"a\", \"b\"]\n"},
        {"entries that need quotes", 1, HEAD "resources:\n  - a\n", "true", 1,
         HEAD "resources:\n  - a\n  - \"true\"\n"},
        {"entries with spaces", 1, HEAD "resources:\n  - a\n", "my file.yaml", 1,
         HEAD "resources:\n  - a\n  - \"my file.yaml\"\n"},
        {"entries with a query are quoted", 1, HEAD "resources:\n  - a\n",
         "https://github.com/org/repo//base?ref=v1", 1,
         HEAD "resources:\n  - a\n  - \"https://github.com/org/repo//base?ref=v1\"\n"},
        {"paths stay plain", 1, HEAD "resources:\n  - a\n", "../base/x_y.yaml", 1,
         HEAD "resources:\n  - a\n  - ../base/x_y.yaml\n"},
        {"quoted entry removed", 0, HEAD "resources:\n  - \"123\"\n  - 'b'\n", "123", 1,
         HEAD "resources:\n  - 'b'\n"},
    };

    (void)state;
    run_edits(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_duplicates(void **state)
{
    static const edit_case cases[] = {
        {"add keeps the first copy", 1, HEAD "resources:\n  - a\n  - b\n  - a\n  - c\n  - a", "a",
         1, HEAD "resources:\n  - a\n  - b\n  - c"},
        {"add removes adjacent copies at the end", 1, HEAD "resources:\n  - a\n  - b\n  - b", "b",
         1, HEAD "resources:\n  - a\n  - b"},
        {"remove takes every copy", 0, HEAD "resources:\n  - a\n  - b\n  - a\n  - a\n", "a", 1,
         HEAD "resources:\n  - b\n"},
        {"remove takes every copy at the end", 0, HEAD "resources:\n  - b\n  - a\n  - a", "a", 1,
         HEAD "resources:\n  - b"},
        {"remove the only entries", 0, HEAD "resources:\n  - a # x\n  - a", "a", 1,
         HEAD "resources: []"},
        {"remove the only entry", 0, HEAD "resources:\n- a\nfoo: 1\n", "a", 1,
         HEAD "resources: []\nfoo: 1\n"},
        {"flow duplicates", 1, HEAD "resources: [a, a, b]\n", "a", 1,
         HEAD "resources: [\"a\", \"b\"]\n"},
    };

    (void)state;
    run_edits(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_idempotence(void **state)
{
    static const edit_case cases[] = {
        {"add present", 1, TIER_FILE, "dummy-configmap.yaml", 0, TIER_FILE},
        {"add present, flow", 1, HEAD "resources: [a, b]", "b", 0, HEAD "resources: [a, b]"},
        {"remove absent", 0, TIER_FILE, "acme.yaml", 0, TIER_FILE},
        {"remove from nothing", 0, HEAD, "acme.yaml", 0, HEAD},
        {"remove from empty", 0, HEAD "resources:", "acme.yaml", 0, HEAD "resources:"},
    };
    size_t i;

    (void)state;
    run_edits(cases, sizeof(cases) / sizeof(cases[0]));

    /* Adding twice is adding once; removing twice is removing once. */
    for (i = 0; i < 2; i++) {
        char *once = NULL, *twice = NULL;
        size_t once_len, twice_len;
        int changed;
        int (*fn)(char **, size_t *, int *, const char *, size_t, const char *) =
            i == 0 ? ll_kustomize_add : ll_kustomize_remove;
        const char *text = i == 0 ? TIER_FILE : HEAD "resources:\n  - x\n  - acme.yaml";

        assert_int_equal(fn(&once, &once_len, &changed, text, strlen(text), "acme.yaml"), 0);
        assert_int_equal(changed, 1);
        assert_int_equal(fn(&twice, &twice_len, &changed, once, once_len, "acme.yaml"), 0);
        assert_int_equal(changed, 0);
        assert_string_equal(once, twice);
        free(once);
        free(twice);
    }
}

static void test_errors(void **state)
{
    static const struct {
        const char *name;
        const char *text;
        const char *entry;
        int want;
    } cases[] = {
        {"not a mapping", "- a\n", "x", LL_EINVALID},
        {"empty file", "", "x", LL_EINVALID},
        {"bad yaml", "resources: [a\n", "x", LL_EINVALID},
        {"resources a mapping", "resources:\n  a: b\n", "x", LL_EINVALID},
        {"resources a string", "resources: a\n", "x", LL_EINVALID},
        {"entry not a string", "resources:\n  - [a]\n", "x", LL_EINVALID},
        {"two documents", "resources: []\n---\nresources: []\n", "x", LL_EINVALID},
        {"resources twice", "resources: []\nresources: [a]\n", "x", LL_EINVALID},
        {"empty entry", "resources: []\n", "", LL_EINVALID},
        {"entry with a newline", "resources: []\n", "a\nb", LL_EINVALID},
        {"entry not utf-8", "resources: []\n", "\xff", LL_EINVALID},
        {"aliases", "x: &a b\nresources:\n  - *a\n", "c", LL_EINVALID},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = (char *)"unset";
        size_t len;
        int changed;
        int rc = ll_kustomize_add(&out, &len, &changed, cases[i].text, strlen(cases[i].text),
                                  cases[i].entry);
        if (rc != cases[i].want)
            fail_msg("%s: rc %d, want %d", cases[i].name, rc, cases[i].want);
        if (out != NULL)
            fail_msg("%s: out is set on failure", cases[i].name);
        if (strncmp(ll_error_last()->message, "kustomization", 13) != 0)
            fail_msg("%s: message \"%s\"", cases[i].name, ll_error_last()->message);
    }
}

static void test_resources(void **state)
{
    static const struct {
        const char *text;
        const char *json; /* NULL: LL_EINVALID */
    } cases[] = {
        {TIER_FILE, "[\"dummy-configmap.yaml\"]"},
        {POOLED_FILE, "[\"pool-1.yaml\"]"},
        {TENANTS_FILE, "[\"basic\", \"advanced\", \"premium\"]"},
        {HEAD, "[]"},
        {HEAD "resources:", "[]"},
        {HEAD "resources: ~", "[]"},
        {HEAD "resources: [a, \"b\", 3]", "[\"a\", \"b\", \"3\"]"},
        {"---\n" HEAD "resources:\n- true\n---\n", "[\"true\"]"},
        {"\xef\xbb\xbf" HEAD "resources:\n  - a", "[\"a\"]"},
        {"- a", NULL},
        {"resources: {a: 1}", NULL},
        {"resources: [[a]]", NULL},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *got = NULL, *want;
        int rc = ll_kustomize_resources(&got, cases[i].text, strlen(cases[i].text));

        if (!cases[i].json) {
            if (rc != LL_EINVALID || got)
                fail_msg("case %zu: want LL_EINVALID, got %d", i, rc);
            continue;
        }
        if (rc != 0)
            fail_msg("case %zu: %s", i, ll_error_last()->message);
        want = json_loads(cases[i].json, 0, NULL);
        assert_non_null(want);
        if (!json_equal(got, want))
            fail_msg("case %zu: resources differ", i);
        json_decref(want);
        json_decref(got);
    }
}

static void test_new(void **state)
{
    static const char *const two[] = {"dummy-configmap.yaml", "acme.yaml"};
    static const char *const dup[] = {"a", "b", "a", "true"};
    static const struct {
        const char *name;
        const char *const *entries;
        size_t n;
        const char *want;
    } cases[] = {
        {"two", two, 2, HEAD "resources:\n  - dummy-configmap.yaml\n  - acme.yaml\n"},
        {"none", NULL, 0, HEAD "resources: []\n"},
        {"duplicates and quoting", dup, 4, HEAD "resources:\n  - a\n  - b\n  - \"true\"\n"},
    };
    static const char *const bad[] = {"a", ""};
    size_t i, len;
    char *out = NULL;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(ll_kustomize_new(&out, &len, cases[i].entries, cases[i].n), 0);
        if (strcmp(out, cases[i].want) != 0 || len != strlen(out))
            fail_msg("%s: got\n%s", cases[i].name, out);
        free(out);
        out = NULL;
    }
    assert_int_equal(ll_kustomize_new(&out, &len, bad, 2), LL_EINVALID);
    assert_null(out);
}

static void test_edit_many(void **state)
{
    static const struct {
        const char *name, *text, *add, *remove, *want;
        int changed;
    } cases[] = {
        {"reference file, no final newline",
         "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - "
         "dummy-configmap.yaml\n  - tenant-1.yaml",
         "[\"a.yaml\", \"b.yaml\"]", "[\"tenant-1.yaml\"]",
         "[\"dummy-configmap.yaml\", \"a.yaml\", \"b.yaml\"]", 1},
        {"middle removals and appends", HEAD "resources:\n  - a\n  - b\n  - c\n  - d\n",
         "[\"e\", \"f\"]", "[\"b\", \"c\"]", "[\"a\", \"d\", \"e\", \"f\"]", 1},
        {"duplicates go", HEAD "resources:\n  - a\n  - b\n  - a\n", "[\"a\"]", "[]",
         "[\"a\", \"b\"]", 1},
        {"nothing to do", HEAD "resources:\n  - a\n", "[\"a\"]", "[\"z\"]", "[\"a\"]", 0},
        {"flow list", HEAD "resources: [a, b]\n", "[\"c\"]", "[\"a\"]", "[\"b\", \"c\"]", 1},
        {"empty flow list", HEAD "resources: []\n", "[\"x\", \"y\"]", "[]", "[\"x\", \"y\"]", 1},
        {"everything removed", HEAD "resources:\n  - a\n  - b\n", "[]", "[\"a\", \"b\"]", "[]", 1},
        {"in both lists: removed", HEAD "resources:\n  - a\n", "[\"b\"]", "[\"b\"]", "[\"a\"]", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *add = json_loads(cases[i].add, 0, NULL),
               *remove = json_loads(cases[i].remove, 0, NULL);
        json_t *want = json_loads(cases[i].want, 0, NULL), *got = NULL;
        char *out = NULL;
        size_t out_len = 0;
        int changed = -1;
        if (ll_kustomize_edit(&out, &out_len, &changed, cases[i].text, strlen(cases[i].text), add,
                              remove) != 0)
            fail_msg("%s: %s", cases[i].name, ll_error_last()->message);
        assert_int_equal(ll_kustomize_resources(&got, out, out_len), 0);
        if (!json_equal(got, want))
            fail_msg("%s: got %s", cases[i].name, json_dumps(got, JSON_COMPACT));
        assert_int_equal(changed, cases[i].changed);
        /* Lines not edited stay byte for byte: the head of the file. */
        assert_memory_equal(out, cases[i].text, 20);
        json_decref(add);
        json_decref(remove);
        json_decref(want);
        json_decref(got);
        free(out);
    }
}

static void test_edit_matches_single_edits(void **state)
{
    /* Adding n entries at once gives the same bytes as adding them one by one. */
    const char *text = HEAD "resources:\n  - dummy.yaml";
    json_t *add = json_pack("[s, s, s]", "x.yaml", "y.yaml", "z.yaml"), *none = json_array();
    char *many = NULL, *one = NULL, *next = NULL;
    size_t many_len = 0, one_len = strlen(text), next_len = 0;
    int changed;
    assert_int_equal(ll_kustomize_edit(&many, &many_len, &changed, text, strlen(text), add, none),
                     0);
    one = strdup(text);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(ll_kustomize_add(&next, &next_len, &changed, one, one_len,
                                          json_string_value(json_array_get(add, i))),
                         0);
        free(one);
        one = next;
        one_len = next_len;
    }
    assert_int_equal(many_len, one_len);
    assert_memory_equal(many, one, one_len);
    free(many);
    free(one);
    json_decref(add);
    json_decref(none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edit_many),
        cmocka_unit_test(test_edit_matches_single_edits),
        cmocka_unit_test(test_reference_files),
        cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_idempotence),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_resources),
        cmocka_unit_test(test_new),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

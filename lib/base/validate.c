/* validate.c - rules for what requests may carry.
 *
 * Ids end up in file paths and YAML, releases in chart version constraints,
 * values in a HelmRelease that Flux post-processes: each is checked here
 * before anything is stored or rendered.  Pure functions, thread-safe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/validate.h"

/* Sets an LL_EINVALID error about field and evaluates to LL_EINVALID. */
#define invalid(field, ...)                                                                        \
    (ll_error_set(LL_EINVALID, __VA_ARGS__), ll_error_field(field), LL_EINVALID)

int ll_validate_label(const char *s, size_t max, const char *field)
{
    size_t n;

    if (!s || !(n = strlen(s))) {
        ll_error_set(LL_EINVALID, "%s must not be empty", field);
        ll_error_field(field);
        return LL_EINVALID;
    }
    if (n > max) {
        ll_error_set(LL_EINVALID, "%s is %zu characters long; at most %zu are allowed", field, n,
                     max);
        ll_error_field(field);
        return LL_EINVALID;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            continue;
        if (c == '-' && i > 0 && i < n - 1)
            continue;
        ll_error_set(LL_EINVALID,
                     "%s '%.64s' is not a DNS-1123 label: lower-case letters, digits and inner "
                     "hyphens only",
                     field, s);
        ll_error_field(field);
        ll_error_hint("use something like 'acme' or 'acme-corp'");
        return LL_EINVALID;
    }
    return 0;
}

int ll_validate_tenant_id(const char *id)
{
    int error;
    if ((error = ll_validate_label(id, LL_TENANT_ID_MAX, "id")) < 0)
        return error;
    if (strcmp(id, "default") == 0 || strcmp(id, "flux-system") == 0 ||
        strncmp(id, "kube-", 5) == 0)
        return invalid(
            "id", "id '%s' is reserved: default, flux-system and kube-* are always reserved", id);
    return 0;
}

/* The next entry of a reserved-namespaces list at *p, trimmed of spaces:
 * its start in *entry and length in *n; advances *p past its comma.  0
 * at the end of the list. */
static int next_entry(const char **p, const char **entry, size_t *n)
{
    const char *s = *p, *end;
    if (!*s)
        return 0;
    end = s + strcspn(s, ",");
    *p = *end ? end + 1 : end;
    while (s < end && *s == ' ')
        s++;
    while (end > s && end[-1] == ' ')
        end--;
    *entry = s;
    *n = (size_t)(end - s);
    return 1;
}

int ll_validate_reserved_list(const char *list)
{
    const char *p = list, *e;
    size_t n;

    if (strspn(list, " ") == strlen(list))
        return 0; /* nothing reserved beyond the names always reserved */
    while (next_entry(&p, &e, &n)) {
        const char *name = e;
        size_t len = n;
        if (len && e[0] == '*') {
            name++;
            len--;
        } else if (len && e[len - 1] == '*') {
            len--;
        }
        int ok = len > 0 && len <= 63;
        for (size_t i = 0; ok && i < len; i++)
            ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
                 name[i] == '-';
        if (!ok)
            return ll_error_set(LL_EINVALID,
                                "reserved namespace entry '%.*s' is not a name, prefix* or "
                                "*suffix of lower-case letters, digits and '-'",
                                (int)(n < 80 ? n : 80), e);
    }
    return 0;
}

int ll_reserved_match(char *match, size_t cap, const char *list, const char *name)
{
    const char *p = list, *e;
    size_t n, len = strlen(name);

    while (next_entry(&p, &e, &n)) {
        int hit;
        if (n && e[0] == '*')
            hit = len >= n - 1 && memcmp(name + len - (n - 1), e + 1, n - 1) == 0;
        else if (n && e[n - 1] == '*')
            hit = len >= n - 1 && memcmp(name, e, n - 1) == 0;
        else
            hit = n && len == n && memcmp(name, e, n) == 0;
        if (hit) {
            if (cap)
                snprintf(match, cap, "%.*s", (int)n, e);
            return 1;
        }
    }
    return 0;
}

/* Digits only, no leading zero unless the number is 0; advances *p. */
static int number(const char **p)
{
    const char *s = *p;
    if (*s < '0' || *s > '9')
        return 0;
    if (*s == '0' && s[1] >= '0' && s[1] <= '9')
        return 0;
    while (*s >= '0' && *s <= '9')
        s++;
    if (s - *p > 9)
        return 0;
    *p = s;
    return 1;
}

/* MAJOR.MINOR, MAJOR.MINOR.x or MAJOR.MINOR.PATCH, nothing after. */
static int release_form(const char *p)
{
    if (!number(&p) || *p++ != '.' || !number(&p))
        return 0;
    if (*p == '\0')
        return 1;
    if (*p++ != '.')
        return 0;
    return (p[0] == 'x' && p[1] == '\0') || (number(&p) && *p == '\0');
}

int ll_validate_release(const char *release)
{
    if (!release || !*release)
        return invalid("release", "release must not be empty");
    if (release_form(release))
        return 0;
    return invalid("release",
                   "release '%.64s' is not a version like 1.2.3 or a range like 1.2 or 1.2.x",
                   release);
}

int ll_release_expr(char *out, size_t cap, const char *release)
{
    int dots = 0, n;
    if (ll_validate_release(release) < 0)
        return LL_EINVALID;
    for (const char *p = release; *p; p++)
        dots += *p == '.';
    n = dots == 1 ? snprintf(out, cap, "%s.x", release) : snprintf(out, cap, "%s", release);
    if (n < 0 || (size_t)n >= cap)
        return ll_error_set(LL_ERROR, "release expression too long");
    return 0;
}

int ll_release_pinned(const char *release)
{
    int dots = 0;
    for (const char *p = release; *p; p++)
        dots += *p == '.';
    return dots == 2 && !strchr(release, 'x');
}

int ll_semver_cmp(const char *a, const char *b)
{
    unsigned long long x[3] = {0}, y[3] = {0};
    const char *pa = a, *pb = b;
    for (int i = 0; i < 3; i++) {
        char *end;
        x[i] = strtoull(pa, &end, 10);
        pa = *end == '.' ? end + 1 : end;
        y[i] = strtoull(pb, &end, 10);
        pb = *end == '.' ? end + 1 : end;
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    }
    size_t la = strcspn(pa, "+"), lb = strcspn(pb, "+");
    int ra = *pa == '-', rb = *pb == '-';
    if (ra != rb)
        return ra ? -1 : 1;
    int c = strncmp(pa, pb, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

static int check_string(const char *s, const char *path)
{
    if (strstr(s, "${")) {
        ll_error_set(LL_EINVALID, "values.%s carries '${', which Flux would substitute", path);
        ll_error_field("values");
        ll_error_hint("remove the ${...} expression; values are written literally");
        return LL_EINVALID;
    }
    return 0;
}

static int check_value(const json_t *v, int depth, char *path, size_t cap)
{
    size_t len = strlen(path);
    int error;

    if (depth > LL_VALUES_DEPTH_MAX) {
        ll_error_set(LL_EINVALID, "values are nested more than %d levels deep",
                     LL_VALUES_DEPTH_MAX);
        ll_error_field("values");
        return LL_EINVALID;
    }
    if (json_is_string(v))
        return check_string(json_string_value(v), path);
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)v, key, child)
        {
            snprintf(path + len, cap - len, "%s%s", len ? "." : "", key);
            if ((error = check_string(key, path)) < 0 ||
                (error = check_value(child, depth + 1, path, cap)) < 0)
                return error;
            path[len] = '\0';
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            snprintf(path + len, cap - len, "[%zu]", i);
            if ((error = check_value(child, depth + 1, path, cap)) < 0)
                return error;
            path[len] = '\0';
        }
    }
    return 0;
}

int ll_validate_values(const json_t *values)
{
    char path[512] = "";
    if (!json_is_object(values)) {
        ll_error_set(LL_EINVALID, "values must be a JSON object of chart value overrides");
        ll_error_field("values");
        return LL_EINVALID;
    }
    return check_value(values, 1, path, sizeof(path));
}

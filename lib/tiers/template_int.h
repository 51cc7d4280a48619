/* template_int.h - what template.c shares with the tier policy
 * (template_policy.c), the locked values (template_locked.c) and the YAML
 * reader (yamlread.c); private to lib/tiers. */
#ifndef LANDLORD_TEMPLATE_INT_H
#define LANDLORD_TEMPLATE_INT_H

#include <stddef.h>
#include <yaml.h>

#include "landlord/util.h"
#include "base/yamltext.h"

/* Alias expansions allowed beyond the nodes of a document (reading YAML
 * as JSON, walking a template's values). */
#define ALIAS_BUDGET 100000

/* Which placeholder a substituted range came from. */
#define PH_RELEASE 1
#define PH_TENANT  2
#define PH_TIER    4
#define PH_ENV     8
/* The placeholders that stand for who and where the tenant is. */
#define PH_IDENTITY (PH_TENANT | PH_TIER | PH_ENV)

/* The value {TENANT_ID} takes in the sample. */
#define SAMPLE_TENANT "sample-tenant"

/* A byte range of the substituted text and the placeholder it came from. */
typedef struct ll_tpl_range {
    size_t start;
    size_t end;
    int ph; /* PH_* */
} ll_tpl_range;

/* The ranges of a substitution, sorted and disjoint. */
typedef struct ll_tpl_ranges {
    ll_tpl_range *v;
    size_t n;
    size_t alloc;
} ll_tpl_ranges;

/* A template with every placeholder replaced by a sample value (letters,
 * digits and '-': the YAML structure is the template's own), parsed. */
typedef struct ll_tpl_sample {
    ll_buf text;
    ll_tpl_ranges subs; /* where each placeholder landed in text */
    ll_ytext y;
} ll_tpl_sample;

/* Substitutes the sample values into tmpl[0..len) and parses the result
 * into *s, which the caller provides and frees with ll_tpl_sample_free()
 * whatever this returns.  LL_EINVALID for no text, one over
 * LL_YAML_TEXT_MAX, or YAML that does not parse. */
int ll_tpl_sample_load(ll_tpl_sample *s, const char *tmpl, size_t len);
void ll_tpl_sample_free(ll_tpl_sample *s);

/* The PH_* bits of the placeholders n's text (with its tag or anchor)
 * holds; 0 for NULL.  n is borrowed from s's documents. */
int ll_tpl_mask(const ll_tpl_sample *s, const yaml_node_t *n);

/* The text of a scalar without NUL bytes inside (borrowed from n), else
 * NULL. */
const char *ll_tpl_scalar(const yaml_node_t *n);

/* The value of key in mapping map (borrowed), or NULL when map is NULL, no
 * mapping, or has no such key. */
yaml_node_t *ll_tpl_get(yaml_document_t *doc, yaml_node_t *map, const char *key);

/* s for a message: at most 63 bytes of printable ASCII (others become
 * '?') into out. */
void ll_tpl_shown(char out[64], const char *s);

#endif

/* yamltext.h - YAML text with the positions of its nodes, and edits at them.
 *
 * Private to lib/: template.c and kustomize.c edit YAML files as text so that
 * comments, indentation and a missing final newline survive.  They load the
 * text with libyaml's document API, find the nodes to change, and collect
 * byte-range edits that are applied back to front in one pass.
 *
 * Positions are byte offsets into the loaded text.  libyaml 0.2.5 counts its
 * mark.index in characters (code points), not bytes; ll_ytext converts.  A
 * UTF-8 byte order mark at the start is skipped (positions still count it);
 * other encodings are refused.
 *
 * yamltext.c loads and finds positions; yamledit.c makes the edits and the
 * YAML of new values.
 */
#ifndef LANDLORD_YAMLTEXT_H
#define LANDLORD_YAMLTEXT_H

#include <stddef.h>
#include <jansson.h>
#include <yaml.h>

/* Deepest nesting any walker here follows (YAML or JSON). */
#define LL_YAML_DEPTH_MAX 64

/* Largest text loaded or produced (16 MiB). */
#define LL_YAML_TEXT_MAX ((size_t)16 << 20)

/* Longest JSON-encoded mapping key written (libyaml and go-yaml refuse
 * implicit keys longer than 1024 characters). */
#define LL_YAML_KEY_MAX 1000

typedef struct ll_ytext {
    const char *text; /* borrowed; must outlive the ll_ytext */
    size_t len;
    size_t base;           /* 3 when text starts with a UTF-8 byte order mark */
    size_t *ckpt;          /* byte offset of every 64th character; NULL for ASCII */
    size_t nchars;         /* characters in text */
    yaml_document_t *docs; /* every document, empty ones included */
    size_t ndocs;
    size_t docs_alloc;
} ll_ytext;

/* Parses every document of text (UTF-8).  what prefixes error messages:
 * "<what>: yaml error at line L column C: <problem>".  Returns 0,
 * LL_EINVALID (bad YAML, too large) or -1.  On failure y is empty and
 * ll_ytext_free() is still safe. */
int ll_ytext_load(ll_ytext *y, const char *text, size_t len, const char *what);

/* Frees the documents and tables of y (not the text).  Accepts a zeroed y. */
void ll_ytext_free(ll_ytext *y);

/* The byte offset of a libyaml mark in y's text. */
size_t ll_ytext_pos(const ll_ytext *y, const yaml_mark_t *mark);

/* Byte offsets of a node's start and end marks.  A node with a tag or an
 * anchor starts at the tag or anchor. */
size_t ll_ytext_start(const ll_ytext *y, const yaml_node_t *n);
size_t ll_ytext_end(const ll_ytext *y, const yaml_node_t *n);

/* The node of doc with this id (borrowed), or NULL. */
yaml_node_t *ll_ytext_node(yaml_document_t *doc, yaml_node_item_t id);

/* The root node of a document, or NULL for an empty document (no content but
 * comments or a bare "---"). */
yaml_node_t *ll_ytext_root(yaml_document_t *doc);

/* 1 when n is a scalar whose value is exactly s (s_len bytes). */
int ll_ytext_scalar_eq(const yaml_node_t *n, const char *s, size_t s_len);

/* 1 when n is a plain scalar with no text at all (libyaml's empty value, its
 * marks pointing to where the value would start). */
int ll_ytext_is_empty(const yaml_node_t *n);

/* 1 when n is a plain scalar that reads as null: "", "~", null, Null, NULL. */
int ll_ytext_is_null(const yaml_node_t *n);

/* 1 for literal (|) and folded (>) block scalars. */
int ll_ytext_is_block_scalar(const yaml_node_t *n);

/* 1 for block (indentation) mappings and sequences. */
int ll_ytext_is_block_collection(const yaml_node_t *n);

/* The pair of mapping map whose scalar key equals key (the first such pair),
 * or NULL.  Borrowed. */
yaml_node_pair_t *ll_ytext_map_pair(yaml_document_t *doc, yaml_node_t *map, const char *key,
                                    size_t key_len);

/* The value of ll_ytext_map_pair(), or NULL.  Borrowed. */
yaml_node_t *ll_ytext_map_get(yaml_document_t *doc, yaml_node_t *map, const char *key);

/* 1 when some node of doc is reached by more than one path (an alias), so
 * its text is not where the edited path expects it. */
int ll_ytext_has_aliases(yaml_document_t *doc);

/* Finds a mapping with two equal scalar keys; sets *line (1-based) of the
 * second key.  Returns 1 when found, 0 when not, -1 on memory failure. */
int ll_ytext_dup_key(size_t *line, yaml_document_t *doc);

/* The byte offset just past the last character of n's text, descending into
 * the last entry of block collections (whose end marks point at the next
 * token) and ignoring the trailing line breaks of block scalars.  For an
 * empty value this is where libyaml placed it (just after its ':' or '-').
 * LL_EINVALID when the nesting is deeper than LL_YAML_DEPTH_MAX. */
int ll_ytext_content_end(size_t *out, const ll_ytext *y, yaml_document_t *doc, yaml_node_t *n);

/* Where a new line after the text of n belongs: the start of the line after
 * the one holding n's content end, or y->len when that is the last line.
 * Trailing blank lines kept by a "|+" / ">+" block scalar stay with it. */
int ll_ytext_after_node(size_t *out, const ll_ytext *y, yaml_document_t *doc, yaml_node_t *n);

/* The offset of the line break (or the end) of the line holding pos; a
 * "\r\n" break is found at its '\r'. */
size_t ll_ytext_line_end(const ll_ytext *y, size_t pos);

/* The offset of the start of the line holding pos. */
size_t ll_ytext_line_start(const ll_ytext *y, size_t pos);

/* The offset just past the ':' that follows a key ending at key_end on the
 * same line (spaces and tabs may come between), or LL_EINVALID. */
int ll_ytext_colon_after(size_t *out, const ll_ytext *y, size_t key_end);

/* The indentation column of a block mapping: the column of its first key. */
size_t ll_ytext_map_indent(yaml_document_t *doc, yaml_node_t *map);

/* The 1-based line of a byte offset. */
size_t ll_ytext_line(const ll_ytext *y, size_t pos);

/* "\r\n" when the text's first line break is one, else "\n". */
const char *ll_ytext_newline(const ll_ytext *y);

/* v as one line of YAML flow text: JSON (which YAML reads as flow style)
 * with the characters libyaml would take for line breaks or refuse
 * (U+007F..U+009F, U+2028, U+2029, U+FEFF, U+FFFE, U+FFFF) escaped as \uXXXX.
 * *out is a new NUL-terminated string (caller frees).  Returns 0 or -1. */
int ll_yaml_flow(char **out, size_t *out_len, const json_t *v);

/* s as a YAML double-quoted scalar (a JSON string), as ll_yaml_flow(). */
int ll_yaml_quote(char **out, size_t *out_len, const char *s, size_t len);

/* One replacement: bytes [start, end) of the original text become text. */
typedef struct ll_yedit {
    size_t start;
    size_t end;
    int order;  /* among edits at the same start, lower goes first */
    size_t seq; /* then in the order they were added */
    char *text; /* owned */
    size_t text_len;
} ll_yedit;

typedef struct ll_yedits {
    ll_yedit *v;
    size_t n;
    size_t alloc;
} ll_yedits;

void ll_yedits_init(ll_yedits *e);

/* Adds an edit replacing [start, end) with a copy of text (text_len bytes).
 * Returns 0 or -1. */
int ll_yedits_add(ll_yedits *e, size_t start, size_t end, int order, const char *text,
                  size_t text_len);

/* Applies every edit to text and empties e.  Edits must not overlap (an
 * insertion may touch a replacement's end).  *out is a new NUL-terminated
 * buffer (caller frees).  Returns 0, LL_EINVALID when the result would pass
 * LL_YAML_TEXT_MAX, or -1 (overlapping edits, memory). */
int ll_yedits_apply(char **out, size_t *out_len, const char *text, size_t len, ll_yedits *e);

void ll_yedits_free(ll_yedits *e);

/* Edit order of replacements: before insertions at the same offset. */
#define LL_YEDIT_ORDER_REPLACE (-1000000)

/* Adds the edit that replaces the value of pair (a pair of mapping map) with
 * flow, one line of YAML flow text (ll_yaml_flow()):
 * - a scalar or flow collection: its span (with its tag or anchor) becomes
 *   flow, so a comment after it on the same line stays;
 * - a block collection or block scalar: from just after the key's ':' to the
 *   end of the line of its last descendant becomes " " + flow (comments on
 *   those lines go with the lines);
 * - an empty value: " " + flow after the ':' (": " + flow after the key of
 *   a flow mapping entry without ':').
 * Returns 0, LL_EINVALID (no ':' to be found after a key) or -1. */
int ll_ytext_replace_value(ll_yedits *e, const ll_ytext *y, yaml_document_t *doc, yaml_node_t *map,
                           yaml_node_pair_t *pair, const char *flow, size_t flow_len);

/* Adds the edit that appends `key: flow` to mapping map, key being YAML text
 * already (a JSON string).  A block mapping gets a new line at its key column
 * after the line of its last descendant (a comment there stays on its line;
 * a text without final newline still has none); a flow mapping gets
 * ", key: flow" after its last value.  order ranks insertions that land at
 * the same offset: give deeper mappings lower numbers so their lines come
 * first.  Returns 0, LL_EINVALID or -1. */
int ll_ytext_insert_pair(ll_yedits *e, const ll_ytext *y, yaml_document_t *doc, yaml_node_t *map,
                         const char *key, size_t key_len, const char *flow, size_t flow_len,
                         int order);

#endif

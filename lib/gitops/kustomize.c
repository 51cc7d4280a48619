/* kustomize.c - editing the `resources` list of kustomization.yaml files.
 *
 * The tier kustomizations of a GitOps repository are written by people, by
 * the reference's shell scripts (which leave no final newline) and by
 * landlord, so they are edited as text: the file is parsed with libyaml
 * (yamltext.h) and only the lines of `resources` entries change.
 *
 * - A block sequence (indented or not) gets a new "- entry" line after its
 *   last entry, at the column of the existing dashes; removed entries lose
 *   their whole line.  A file without final newline still has none after.
 * - A missing or empty `resources` gets a block sequence indented two
 *   spaces more than its key.
 * - An empty flow sequence (`resources: []`) gets its first entry as a block
 *   list on the next line.
 * - Anything else (a flow sequence, `null`, a block sequence whose dashes
 *   are not on their entries' lines) is rewritten as a JSON flow list.
 *
 * Every edit is checked by parsing the result again and comparing its
 * resources with the list intended; a difference is an internal error (-1).
 * Entries are written plain when no YAML reader could misread them, else as
 * double-quoted strings.  Reading a kustomization, the rules of an entry
 * and that check are kustomize_doc.c's.  Reentrant; no global state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/kustomize.h"
#include "landlord/template.h"
#include "landlord/util.h"
#include "base/yamltext.h"
#include "kustomize_int.h"

/* Checks that every entry of the block sequence has its dash on its own
 * line; *out_dash is the last one's offset.  1 when they do not (the
 * caller rewrites the list), 0 when they do, or an error. */
static int block_layout(size_t *out_dash, ll_kz *k)
{
    yaml_node_item_t *item;
    yaml_node_t *node;
    int ok = 1;

    for (item = k->res->data.sequence.items.start; item < k->res->data.sequence.items.top; item++) {
        if (!(node = ll_ytext_node(k->doc, *item)))
            return ll_error_set(LL_ERROR, "yaml document has a dangling node");
        *out_dash = ll_kz_dash_of(&k->y, node, &ok);
        if (!ok)
            return 1;
    }
    return 0;
}

/* Appends "- entry" lines for the entries of append after the sequence's
 * last entry, at the column of its dash (at offset dash). */
static int append_lines(ll_yedits *e, ll_kz *k, const json_t *append, size_t dash)
{
    const ll_ytext *y = &k->y;
    const char *nl = ll_ytext_newline(y);
    char *pad = NULL, *fmt = NULL;
    size_t fmt_len = 0, i, pos;
    json_t *v;
    ll_buf line;
    int error;

    ll_buf_init(&line, LL_YAML_TEXT_MAX);
    if ((error = ll_ytext_after_node(&pos, y, k->doc, k->res)) < 0)
        goto done;
    if (!(pad = ll_kz_spaces(dash - ll_ytext_line_start(y, dash)))) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    int no_final_newline = pos == y->len && (y->len == 0 || y->text[y->len - 1] != '\n');
    json_array_foreach(append, i, v)
    {
        free(fmt);
        fmt = NULL;
        if ((error = ll_kz_format_entry(&fmt, &fmt_len, json_string_value(v))) < 0)
            goto done;
        if (no_final_newline)
            error = ll_buf_printf(&line, "%s%s- %s", nl, pad, fmt);
        else
            error = ll_buf_printf(&line, "%s- %s%s", pad, fmt, nl);
        if (error < 0)
            goto done;
    }
    error = ll_yedits_add(e, pos, pos, 0, line.data, line.len);
done:
    ll_buf_free(&line);
    free(pad);
    free(fmt);
    return error;
}

/* Appends "- entry" after the sequence's last entry, at the column of its
 * dash (at offset dash). */
static int block_append(ll_yedits *e, ll_kz *k, const char *entry, size_t dash)
{
    json_t *one = json_pack("[s]", entry);
    int error = one ? append_lines(e, k, one, dash) : ll_error_set(LL_ERROR, "out of memory");
    json_decref(one);
    return error;
}

/* The whole lines of one sequence entry: from its line's start to past the
 * line break after its content. */
static int entry_lines(size_t *out_start, size_t *out_end, const ll_kz *k, yaml_node_t *node)
{
    const ll_ytext *y = &k->y;
    size_t end;
    int ok = 1, error;

    *out_start = ll_ytext_line_start(y, ll_kz_dash_of(y, node, &ok));
    if ((error = ll_ytext_content_end(&end, y, k->doc, node)) < 0)
        return error;
    end = ll_ytext_line_end(y, end);
    if (end < y->len)
        end += y->text[end] == '\r' ? 2 : 1;
    *out_end = end;
    return 0;
}

/* When the last range ends the text without a line break, it takes the
 * line break before it instead. */
static void take_break_before(size_t (*ranges)[2], size_t nrange, const ll_ytext *y)
{
    if (!nrange || ranges[nrange - 1][1] != y->len || y->len == 0 || y->text[y->len - 1] == '\n')
        return;
    size_t start = ranges[nrange - 1][0];
    if (start > 0 && y->text[start - 1] == '\n')
        start--;
    if (start > 0 && y->text[start - 1] == '\r')
        start--;
    ranges[nrange - 1][0] = start;
    if (nrange > 1 && ranges[nrange - 2][1] > start)
        ranges[nrange - 2][1] = start;
}

/* Removes the whole lines of entry: every copy, or (adding) every copy
 * after the first. */
static int block_remove(ll_yedits *e, ll_kz *k, const char *entry, int adding)
{
    const ll_ytext *y = &k->y;
    size_t n = (size_t)(k->res->data.sequence.items.top - k->res->data.sequence.items.start);
    size_t(*ranges)[2] = NULL;
    size_t start, end, seen = 0, nrange = 0, i;
    yaml_node_item_t *item;
    int error = 0;

    if (!(ranges = calloc(n ? n : 1, sizeof(*ranges))))
        return ll_error_set(LL_ERROR, "out of memory");
    for (item = k->res->data.sequence.items.start; item < k->res->data.sequence.items.top; item++) {
        yaml_node_t *node = ll_ytext_node(k->doc, *item);
        if (!ll_ytext_scalar_eq(node, entry, strlen(entry)))
            continue;
        if (adding && seen++ == 0)
            continue;
        if ((error = entry_lines(&start, &end, k, node)) < 0)
            goto done;
        if (nrange && ranges[nrange - 1][1] >= start) {
            ranges[nrange - 1][1] = end;
        } else {
            ranges[nrange][0] = start;
            ranges[nrange][1] = end;
            nrange++;
        }
    }
    take_break_before(ranges, nrange, y);
    for (i = 0; i < nrange; i++)
        if (ranges[i][1] > ranges[i][0] &&
            (error = ll_yedits_add(e, ranges[i][0], ranges[i][1], 0, "", 0)) < 0)
            goto done;
done:
    free(ranges);
    return error;
}

/* Line edits on a block sequence.  Returns 1 when the sequence is not laid
 * out one entry per line (the caller rewrites it), 0 when the edits are
 * added, or an error. */
static int block_edits(ll_yedits *e, ll_kz *k, const char *entry, int adding)
{
    size_t n = (size_t)(k->res->data.sequence.items.top - k->res->data.sequence.items.start);
    size_t dash = 0;
    int error;

    if ((error = block_layout(&dash, k)) != 0)
        return error;
    if (!adding && ll_kz_count_of(k->entries, entry) == n)
        return 1; /* nothing left: the caller writes [] */
    if (adding && ll_kz_count_of(k->entries, entry) == 0)
        return block_append(e, k, entry, dash);
    return block_remove(e, k, entry, adding);
}

/* No resources key in a block mapping: a new key after the mapping's last
 * line, with the entry (fmt) in a block list. */
static int add_key_block(ll_yedits *e, ll_kz *k, const char *fmt)
{
    const ll_ytext *y = &k->y;
    const char *nl = ll_ytext_newline(y);
    size_t pos, indent = ll_ytext_map_indent(k->doc, k->root);
    char *pad = NULL;
    ll_buf line;
    int error;

    ll_buf_init(&line, LL_YAML_TEXT_MAX);
    if ((error = ll_ytext_after_node(&pos, y, k->doc, k->root)) < 0)
        goto done;
    if (!(pad = ll_kz_spaces(indent))) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    if (pos == y->len && (y->len == 0 || y->text[y->len - 1] != '\n'))
        error = ll_buf_printf(&line, "%s%sresources:%s%s  - %s", nl, pad, nl, pad, fmt);
    else
        error = ll_buf_printf(&line, "%sresources:%s%s  - %s%s", pad, nl, pad, fmt, nl);
    if (error == 0)
        error = ll_yedits_add(e, pos, pos, 0, line.data, line.len);
done:
    ll_buf_free(&line);
    free(pad);
    return error;
}

/* Replaces [start, end) with the entry (fmt) as a block list item on a
 * line of its own, indented two spaces more than the resources key. */
static int entry_line(ll_yedits *e, ll_kz *k, size_t start, size_t end, const char *fmt)
{
    const ll_ytext *y = &k->y;
    yaml_node_t *key = ll_ytext_node(k->doc, k->pair->key);
    char *pad = NULL;
    ll_buf line;
    int error;

    ll_buf_init(&line, LL_YAML_TEXT_MAX);
    if (!(pad = ll_kz_spaces(key->start_mark.column + 2))) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    if ((error = ll_buf_printf(&line, "%s%s- %s", ll_ytext_newline(y), pad, fmt)) == 0)
        error = ll_yedits_add(e, start, end, 0, line.data, line.len);
done:
    ll_buf_free(&line);
    free(pad);
    return error;
}

/* `resources:` with nothing after it: the entry (fmt) on the next line. */
static int fill_empty_key(ll_yedits *e, ll_kz *k, const char *fmt)
{
    const ll_ytext *y = &k->y;
    yaml_node_t *key = ll_ytext_node(k->doc, k->pair->key);
    size_t pos;
    int error;

    if ((error = ll_ytext_colon_after(&pos, y, ll_ytext_end(y, key))) < 0)
        return error;
    pos = ll_ytext_line_end(y, pos);
    return entry_line(e, k, pos, pos, fmt);
}

/* `resources: []` (how landlord seeds an empty tier) becomes a block list
 * holding the entry (fmt), as people write kustomizations. */
static int fill_empty_flow(ll_yedits *e, ll_kz *k, const char *fmt)
{
    const ll_ytext *y = &k->y;
    size_t start = ll_ytext_start(y, k->res), end = ll_ytext_end(y, k->res);

    while (start > 0 && y->text[start - 1] == ' ')
        start--;
    return entry_line(e, k, start, end, fmt);
}

/* Edits that turn k's resources into want. */
static int plan_edits(ll_yedits *e, ll_kz *k, const json_t *want, const char *entry, int adding)
{
    const ll_ytext *y = &k->y;
    char *flow = NULL, *fmt = NULL;
    size_t flow_len = 0, fmt_len = 0;
    int block_root = k->root->data.mapping.style != YAML_FLOW_MAPPING_STYLE;
    int error;

    if (ll_ytext_has_aliases(k->doc)) {
        error = ll_error_set(LL_EINVALID, WHAT ": files with yaml aliases cannot be edited");
        goto done;
    }
    if (k->res && ll_ytext_is_block_collection(k->res) &&
        (error = block_edits(e, k, entry, adding)) <= 0)
        goto done;
    if ((error = ll_yaml_flow(&flow, &flow_len, want)) < 0)
        goto done;
    if ((error = ll_kz_format_entry(&fmt, &fmt_len, entry)) < 0)
        goto done;
    if (!k->pair && block_root)
        error = add_key_block(e, k, fmt);
    else if (!k->pair)
        error = ll_ytext_insert_pair(e, y, k->doc, k->root, "\"resources\"", 11, flow, flow_len, 0);
    else if (block_root && ll_ytext_is_empty(k->res) && adding)
        error = fill_empty_key(e, k, fmt);
    else if (block_root && adding && k->res->type == YAML_SEQUENCE_NODE &&
             k->res->data.sequence.items.top == k->res->data.sequence.items.start)
        error = fill_empty_flow(e, k, fmt);
    else
        error = ll_ytext_replace_value(e, y, k->doc, k->root, k->pair, flow, flow_len);
done:
    free(flow);
    free(fmt);
    return error;
}

/* What the list must become (a new array): entries without entry
 * (removing), or with entry once, at its first place or appended (adding);
 * count is how often entries holds it. */
static int want_of(json_t **out, const json_t *entries, const char *entry, int adding, size_t count)
{
    json_t *want = json_array(), *v;
    size_t i, seen = 0;

    if (!want)
        return ll_error_set(LL_ERROR, "out of memory");
    json_array_foreach(entries, i, v)
    {
        if (!strcmp(json_string_value(v), entry) && (!adding || seen++ > 0))
            continue;
        if (json_array_append(want, v) < 0)
            goto done;
    }
    if (adding && count == 0 && json_array_append_new(want, json_string(entry)) < 0)
        goto done;
    *out = want;
    return 0;
done:
    json_decref(want);
    return ll_error_set(LL_ERROR, "out of memory");
}

/* Shared body of add and remove. */
static int edit(char **out, size_t *out_len, int *changed, const char *text, size_t len,
                const char *entry, int adding)
{
    ll_yedits edits;
    json_t *want = NULL;
    size_t count;
    ll_kz k;
    int error;

    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (changed)
        *changed = 0;
    ll_yedits_init(&edits);
    memset(&k, 0, sizeof(k));
    if ((error = ll_kz_check_entry(entry)) < 0)
        goto done;
    if ((error = ll_kz_load(&k, text, len)) < 0)
        goto done;
    count = ll_kz_count_of(k.entries, entry);
    if ((adding && count == 1) || (!adding && count == 0)) {
        error = ll_kz_copy_text(out, out_len, text, len);
        goto done;
    }
    if ((error = want_of(&want, k.entries, entry, adding, count)) < 0)
        goto done;
    if ((error = plan_edits(&edits, &k, want, entry, adding)) < 0)
        goto done;
    if ((error = ll_kz_finish(out, out_len, text, len, &edits, want)) < 0)
        goto done;
    if (changed)
        *changed = 1;

done:
    ll_yedits_free(&edits);
    json_decref(want);
    ll_kz_free(&k);
    return error;
}

int ll_kustomize_add(char **out, size_t *out_len, int *changed, const char *text, size_t len,
                     const char *entry)
{
    return edit(out, out_len, changed, text, len, entry, 1);
}

int ll_kustomize_remove(char **out, size_t *out_len, int *changed, const char *text, size_t len,
                        const char *entry)
{
    return edit(out, out_len, changed, text, len, entry, 0);
}

/* One line-based edit of a block sequence for many entries: every copy of a
 * removed entry and every extra copy of a kept one goes, the new entries are
 * appended after the last line.  1 when the layout does not allow it. */
static int block_multi(ll_yedits *e, ll_kz *k, const json_t *remove, const json_t *append)
{
    const ll_ytext *y = &k->y;
    yaml_node_item_t *item;
    yaml_node_t *node;
    json_t *seen = json_object();
    size_t dash = 0, start, end, kept = 0;
    int ok = 1, error = 0, last_goes = 0;

    for (item = k->res->data.sequence.items.start; item < k->res->data.sequence.items.top; item++) {
        char key[ENTRY_MAX + 1];
        node = ll_ytext_node(k->doc, *item);
        dash = ll_kz_dash_of(y, node, &ok);
        if (!ok) {
            error = 1;
            goto done;
        }
        snprintf(key, sizeof(key), "%.*s", (int)node->data.scalar.length,
                 (const char *)node->data.scalar.value);
        if (!json_object_get(remove, key) && !json_object_get(seen, key)) {
            json_object_set_new(seen, key, json_true());
            kept++;
            last_goes = 0;
            continue;
        }
        start = ll_ytext_line_start(y, dash);
        if ((error = ll_ytext_content_end(&end, y, k->doc, node)) < 0)
            goto done;
        end = ll_ytext_line_end(y, end);
        if (end < y->len)
            end += y->text[end] == '\r' ? 2 : 1;
        else {
            error = 1; /* the last line goes and has no line break: rewrite */
            goto done;
        }
        if ((error = ll_yedits_add(e, start, end, 0, "", 0)) < 0)
            goto done;
        last_goes = 1;
    }
    if (kept + json_array_size(append) == 0 || (last_goes && json_array_size(append))) {
        error = 1; /* empty result, or appending where the last line goes: rewrite */
        goto done;
    }
    if (json_array_size(append))
        error = append_lines(e, k, append, dash);
done:
    json_decref(seen);
    return error;
}

/* The edits of ll_kustomize_edit made one entry at a time (removals, then
 * the additions not also removed), for layouts block_multi cannot edit.
 * *out is new. */
static int edit_each(char **out, size_t *out_len, const char *text, size_t len, const json_t *add,
                     const json_t *remove, const json_t *drop)
{
    char *cur = NULL, *next = NULL;
    size_t cur_len = 0, next_len = 0, i;
    json_t *v;
    int ch, error;

    if ((error = ll_kz_copy_text(&cur, &cur_len, text, len)) < 0)
        return error;
    json_array_foreach(remove, i, v)
    {
        if ((error = ll_kustomize_remove(&next, &next_len, &ch, cur, cur_len,
                                         json_string_value(v))) < 0) {
            free(cur);
            return error;
        }
        free(cur);
        cur = next, cur_len = next_len;
    }
    json_array_foreach(add, i, v)
    {
        if (json_object_get(drop, json_string_value(v)))
            continue;
        if ((error = ll_kustomize_add(&next, &next_len, &ch, cur, cur_len, json_string_value(v))) <
            0) {
            free(cur);
            return error;
        }
        free(cur);
        cur = next, cur_len = next_len;
    }
    *out = cur;
    if (out_len)
        *out_len = cur_len;
    return 0;
}

int ll_kustomize_edit(char **out, size_t *out_len, int *changed, const char *text, size_t len,
                      const json_t *add, const json_t *remove)
{
    ll_yedits edits;
    json_t *want = json_array(), *present = json_object(), *append = json_array(),
           *drop = json_object(), *v;
    size_t i;
    ll_kz k;
    int error;

    *out = NULL;
    if (out_len)
        *out_len = 0;
    *changed = 0;
    ll_yedits_init(&edits);
    memset(&k, 0, sizeof(k));
    json_array_foreach(add, i,
                       v) if ((error = ll_kz_check_entry(json_string_value(v))) < 0) goto done;
    json_array_foreach(remove, i, v)
    {
        if ((error = ll_kz_check_entry(json_string_value(v))) < 0)
            goto done;
        json_object_set_new(drop, json_string_value(v), json_true());
    }
    if ((error = ll_kz_load(&k, text, len)) < 0)
        goto done;
    /* What the list must become: kept entries once each, in order, then the
     * new ones. */
    json_array_foreach(k.entries, i, v)
    {
        const char *s = json_string_value(v);
        if (json_object_get(drop, s))
            continue;
        if (json_object_get(present, s))
            continue;
        json_object_set_new(present, s, json_true());
        json_array_append(want, v);
    }
    json_array_foreach(add, i, v)
    {
        const char *s = json_string_value(v);
        if (json_object_get(present, s) || json_object_get(drop, s))
            continue;
        json_object_set_new(present, s, json_true());
        json_array_append(want, v);
        json_array_append(append, v);
    }
    if (json_equal(want, k.entries)) {
        error = ll_kz_copy_text(out, out_len, text, len);
        goto done;
    }
    error = 1;
    if (k.res && ll_ytext_is_block_collection(k.res) && !ll_ytext_has_aliases(k.doc) &&
        (error = block_multi(&edits, &k, drop, append)) < 0)
        goto done;
    if (error == 1) {
        /* Any other layout: one entry at a time through the general path. */
        ll_yedits_free(&edits);
        if ((error = edit_each(out, out_len, text, len, add, remove, drop)) < 0)
            goto done;
        *changed = 1;
        goto done;
    }
    if ((error = ll_kz_finish(out, out_len, text, len, &edits, want)) < 0)
        goto done;
    *changed = 1;
done:
    ll_yedits_free(&edits);
    json_decref(want);
    json_decref(present);
    json_decref(append);
    json_decref(drop);
    ll_kz_free(&k);
    return error;
}

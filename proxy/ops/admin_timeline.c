/*
 * A stored timeline as JSON, see admin_timeline.h.
 */
#include "admin_timeline.h"

#include <math.h>
#include <stdlib.h>

/* Milliseconds to the microsecond; null for "did not happen". */
static json_t *ms(double v)
{
    return v < 0 ? json_null() : json_real(round(v * 1000.0) / 1000.0);
}

static void set(json_t *o, const char *k, json_t *v)
{
    if (v == NULL || json_object_set_new(o, k, v) != 0)
        abort();
}

json_t *admin_timeline_json(const timeline_t *t)
{
    json_t *o = json_object();
    if (o == NULL)
        abort();
    set(o, "page", json_string(t->page));
    set(o, "at", json_integer(t->wall_ms));
    set(o, "status", json_integer(t->status));
    set(o, "hints_ms", ms(t->hints_ms));
    set(o, "head_ms", ms(t->head_ms));
    set(o, "html_end_ms", ms(t->html_end_ms));
    set(o, "think_ms", ms(t->head_ms));
    set(o, "dropped", json_integer((json_int_t)t->dropped));
    json_t *items = json_array();
    if (items == NULL)
        abort();
    for (size_t i = 0; i < t->n; i++) {
        const timeline_item_t *it = &t->v[i];
        json_t *j = json_object();
        if (j == NULL)
            abort();
        set(j, "url", json_string(it->url));
        set(j, "via", json_string(timeline_via_name(it->via)));
        set(j, "at_ms", ms(it->at_ms));
        if (it->via == TIMELINE_PUSH) {
            set(j, "outcome", json_string(timeline_outcome_name(it->outcome)));
            set(j, "fetch_ms", ms(it->fetch_ms));
            set(j, "first_byte_ms", ms(it->first_byte_ms));
            set(j, "fetched_ms", ms(it->fetched_ms));
            set(j, "end_ms", ms(it->end_ms));
            set(j, "bytes", json_integer((json_int_t)it->bytes));
        }
        if (json_array_append_new(items, j) != 0)
            abort();
    }
    set(o, "items", items);
    return o;
}

/*
 * The asset list: growth, dedupe and disposal. Kept apart from html.c so the
 * CSS path of herald-scan and the proxy can fill the same list.
 */
#include "asset.h"

#include "herald/error.h"

#include <stdlib.h>
#include <string.h>

const char *asset_kind_name(asset_kind_t kind)
{
    switch (kind) {
    case ASSET_STYLE:
        return "style";
    case ASSET_SCRIPT:
        return "script";
    case ASSET_MODULE:
        return "module";
    case ASSET_FONT:
        return "font";
    case ASSET_IMAGE:
        return "image";
    case ASSET_ICON:
        return "icon";
    case ASSET_MANIFEST:
        return "manifest";
    case ASSET_OTHER:
        return "other";
    case ASSET_PRECONNECT:
        return "preconnect";
    }
    return "other";
}

static void asset_free_strings(asset_t *a)
{
    free(a->url);
    free(a->media);
    free(a->type);
}

void asset_list_dispose(asset_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        asset_free_strings(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
    l->speculation_rules = false;
}

asset_t *asset_list_find(const asset_list_t *l, const char *url, asset_kind_t kind)
{
    /* Linear: a page has tens to hundreds of assets, and the lookup happens
     * once per reference, well below gumbo's own cost. */
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].kind == kind && strcmp(l->v[i].url, url) == 0)
            return &l->v[i];
    return NULL;
}

int asset_list_add(asset_list_t *l, asset_t *a)
{
    asset_t *old = asset_list_find(l, a->url, a->kind);
    if (old) {
        /* A browser fetches a URL once per destination; the first mention
         * decides the position, any mention that is fetched or blocking
         * makes the one entry so. */
        old->pick = old->pick || a->pick;
        old->blocking = old->blocking || a->blocking;
        old->strong = old->strong || a->strong;
        if (a->group == 0)
            old->group = 0;
        if (old->crossorigin == ASSET_CORS_NONE)
            old->crossorigin = a->crossorigin;
        asset_free_strings(a);
        memset(a, 0, sizeof(*a));
        return 0;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        asset_t *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            asset_free_strings(a);
            memset(a, 0, sizeof(*a));
            return HERALD_ENOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    a->order = (unsigned)l->n;
    l->v[l->n++] = *a;
    memset(a, 0, sizeof(*a));
    return 0;
}

const char *asset_kind_as(asset_kind_t kind)
{
    switch (kind) {
    case ASSET_STYLE:
        return "style";
    case ASSET_SCRIPT:
    case ASSET_MODULE:
        return "script";
    case ASSET_FONT:
        return "font";
    case ASSET_IMAGE:
    case ASSET_ICON:
        return "image";
    case ASSET_MANIFEST:
        return "manifest";
    case ASSET_OTHER:
        return "fetch";
    case ASSET_PRECONNECT:
        return NULL;
    }
    return NULL;
}

/*
 * Intrusive doubly-linked lists (a ring: an empty list's head points to
 * itself) and container_of, for structs that sit on lists without an
 * allocation of their own. Header-only; no locking.
 */
#ifndef HERALD_LIST_H
#define HERALD_LIST_H

#include <stdbool.h>
#include <stddef.h>

/** The struct of type `type` whose member `member` is at `ptr`. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/** A list head, or a node embedded in a struct on a list. */
typedef struct list {
    struct list *prev, *next;
} list_t;

/** An empty list (or a node on none). */
static inline void list_init(list_t *l)
{
    l->prev = l->next = l;
}

static inline bool list_empty(const list_t *head)
{
    return head->next == head;
}

/** Put l right after `at` (at a head: first; at head->prev: last). */
static inline void list_insert(list_t *at, list_t *l)
{
    l->next = at->next;
    l->prev = at;
    at->next->prev = l;
    at->next = l;
}

/** Take l off its list; it is then on none (list_remove again is harmless). */
static inline void list_remove(list_t *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

#endif

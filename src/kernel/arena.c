#include "arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 8192
#define ARENA_ALIGN 16

struct block {
    struct block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct px_arena {
    struct block *head;  /* current block; older ones follow */
    struct block *first; /* kept across resets */
    size_t cap;
    size_t total; /* bytes of blocks allocated, counted against cap */
    size_t used;
};

static struct block *block_new(size_t size)
{
    struct block *b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

struct px_arena *px_arena_new(size_t cap)
{
    struct px_arena *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->first = block_new(ARENA_BLOCK);
    if (!a->first) {
        free(a);
        return NULL;
    }
    a->head = a->first;
    a->cap = cap;
    a->total = ARENA_BLOCK;
    return a;
}

static void free_chain(struct block *b, struct block *stop)
{
    while (b && b != stop) {
        struct block *n = b->next;
        free(b);
        b = n;
    }
}

void px_arena_reset(struct px_arena *a)
{
    if (!a)
        return;
    free_chain(a->head, a->first);
    a->head = a->first;
    a->first->used = 0;
    a->first->next = NULL;
    a->total = a->first->size;
    a->used = 0;
}

void px_arena_free(struct px_arena *a)
{
    if (!a)
        return;
    free_chain(a->head, NULL);
    free(a);
}

void *px_arena_alloc(struct px_arena *a, size_t n)
{
    if (!a)
        return NULL;
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n)
        return NULL;
    struct block *b = a->head;
    if (b->size - b->used < need) {
        size_t size = need > ARENA_BLOCK ? need : ARENA_BLOCK;
        if (a->total + size > a->cap || a->total + size < a->total)
            return NULL;
        b = block_new(size);
        if (!b)
            return NULL;
        b->next = a->head;
        a->head = b;
        a->total += size;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->used += n;
    return p;
}

void *px_arena_calloc(struct px_arena *a, size_t n)
{
    void *p = px_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *px_arena_strndup(struct px_arena *a, const char *s, size_t n)
{
    if (!s || n == SIZE_MAX)
        return NULL;
    char *p = px_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *px_arena_strdup(struct px_arena *a, const char *s)
{
    return s ? px_arena_strndup(a, s, strlen(s)) : NULL;
}

char *px_arena_printf(struct px_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = px_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

size_t px_arena_used(const struct px_arena *a)
{
    return a ? a->used : 0;
}

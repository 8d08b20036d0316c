/* arena.h: per-request bump allocator.
 *
 * One arena per HTTP request or Lambda event. Everything a handler allocates
 * comes from it and is released at once by px_arena_reset() or px_arena_free():
 * handlers never free individual fields. The arena owns its memory; pointers
 * it hands out are valid until the next reset. A cap bounds the total size. */
#ifndef PX_ARENA_H
#define PX_ARENA_H

#include "px.h"

struct px_arena;

/* New arena that will refuse to grow past `cap` bytes in total. NULL on OOM. */
struct px_arena *px_arena_new(size_t cap);
/* Frees the arena and all it handed out. Accepts NULL. */
void px_arena_free(struct px_arena *a);
/* Releases everything allocated since creation; keeps the first block for reuse. */
void px_arena_reset(struct px_arena *a);
/* n bytes aligned for any type, or NULL when the cap or memory runs out. */
void *px_arena_alloc(struct px_arena *a, size_t n);
/* Zeroed n bytes, or NULL. */
void *px_arena_calloc(struct px_arena *a, size_t n);
/* NUL-terminated copy of s[0..n), or NULL. */
char *px_arena_strndup(struct px_arena *a, const char *s, size_t n);
/* NUL-terminated copy of s, or NULL (also when s is NULL). */
char *px_arena_strdup(struct px_arena *a, const char *s);
/* printf into the arena, or NULL. */
char *px_arena_printf(struct px_arena *a, const char *fmt, ...) PX_PRINTF(2, 3);
/* Bytes handed out since the last reset (for tests and metrics). */
size_t px_arena_used(const struct px_arena *a);

#endif

/* arena.h: a region allocator for one request. Everything a request handler
 * builds (decoded messages, the response) is allocated here and released at
 * once when the reply has been sent, so handlers have no free paths. */
#ifndef QUORUM_ARENA_H
#define QUORUM_ARENA_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct arena;

struct arena *arena_new(void);
void arena_free(struct arena *arena);

/* Zeroed memory that lives until arena_free; NULL when out of memory. */
void *arena_alloc(struct arena *arena, size_t size_bytes);
void *arena_memdup(struct arena *arena, const void *data, size_t size_bytes);

/* A protobuf-c allocator that allocates in the arena (free is a no-op). */
ProtobufCAllocator *arena_protobuf_allocator(struct arena *arena);

#endif

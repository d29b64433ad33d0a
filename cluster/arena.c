/* arena.c: a list of blocks; large requests get a block of their own. */
#include "cluster/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK_BYTES 16384

struct arena_block {
	struct arena_block *next;
	size_t used_bytes;
	size_t size_bytes;
	_Alignas(max_align_t) unsigned char data[];
};

struct arena {
	struct arena_block *blocks;
	ProtobufCAllocator allocator;
};

static void *arena_protobuf_alloc(void *data, size_t size_bytes)
{
	return arena_alloc(data, size_bytes);
}

static void arena_protobuf_free(void *data, void *pointer)
{
	(void)data;
	(void)pointer;
}

struct arena *arena_new(void)
{
	struct arena *arena = calloc(1, sizeof(*arena));
	if (!arena)
		return NULL;
	arena->allocator.alloc = arena_protobuf_alloc;
	arena->allocator.free = arena_protobuf_free;
	arena->allocator.allocator_data = arena;
	return arena;
}

void arena_free(struct arena *arena)
{
	if (!arena)
		return;
	while (arena->blocks) {
		struct arena_block *next = arena->blocks->next;
		free(arena->blocks);
		arena->blocks = next;
	}
	free(arena);
}

void *arena_alloc(struct arena *arena, size_t size_bytes)
{
	const size_t align = _Alignof(max_align_t);
	struct arena_block *block = arena->blocks;
	size_t rounded = (size_bytes + align - 1) & ~(align - 1);
	void *p;

	if (rounded < size_bytes)
		return NULL;
	if (!block || block->size_bytes - block->used_bytes < rounded) {
		size_t block_bytes = rounded > ARENA_BLOCK_BYTES ? rounded : ARENA_BLOCK_BYTES;
		block = malloc(sizeof(*block) + block_bytes);
		if (!block)
			return NULL;
		block->used_bytes = 0;
		block->size_bytes = block_bytes;
		/* A big allocation goes behind the current block so the
		 * current one keeps serving small ones. */
		if (arena->blocks && rounded > ARENA_BLOCK_BYTES) {
			block->next = arena->blocks->next;
			arena->blocks->next = block;
		} else {
			block->next = arena->blocks;
			arena->blocks = block;
		}
	}
	p = block->data + block->used_bytes;
	block->used_bytes += rounded;
	memset(p, 0, size_bytes);
	return p;
}

void *arena_memdup(struct arena *arena, const void *data, size_t size_bytes)
{
	void *p = arena_alloc(arena, size_bytes ? size_bytes : 1);
	if (p && size_bytes)
		memcpy(p, data, size_bytes);
	return p;
}

ProtobufCAllocator *arena_protobuf_allocator(struct arena *arena)
{
	return &arena->allocator;
}

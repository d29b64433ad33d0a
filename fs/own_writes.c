/* own_writes.c: recent writes of a router, for read-your-writes; see own_writes.h. */
#include "fs/own_writes.h"

#include <stdatomic.h>
#include <stdlib.h>

/* 4096 slots of 8 bytes: a mount rarely writes more keys than that within the window, and
 * a fuller table only sends more reads to the leader. */
#define OWN_WRITES_SLOTS 4096

struct own_writes {
	_Atomic int64_t written_ms[OWN_WRITES_SLOTS];	/* 0: never */
};

struct own_writes *own_writes_new(void)
{
	struct own_writes *w = malloc(sizeof(*w));

	if (!w)
		return NULL;
	for (size_t i = 0; i < OWN_WRITES_SLOTS; i++)
		atomic_init(&w->written_ms[i], 0);
	return w;
}

void own_writes_free(struct own_writes *w)
{
	free(w);
}

static size_t own_writes_slot(uint64_t table_id, uint64_t key_hash)
{
	uint64_t mixed = (key_hash ^ (table_id * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;

	return (size_t)(mixed >> 52) % OWN_WRITES_SLOTS;
}

void own_writes_note(struct own_writes *w, uint64_t table_id, uint64_t key_hash,
		     int64_t now_ms)
{
	atomic_store_explicit(&w->written_ms[own_writes_slot(table_id, key_hash)],
			      now_ms ? now_ms : 1, memory_order_release);
}

bool own_writes_recent(const struct own_writes *w, uint64_t table_id, uint64_t key_hash,
		       int64_t now_ms)
{
	int64_t written_ms = atomic_load_explicit(
		&w->written_ms[own_writes_slot(table_id, key_hash)], memory_order_acquire);

	return written_ms && now_ms - written_ms < OWN_WRITES_RECENT_MS;
}

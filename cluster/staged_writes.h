/* staged_writes.h: a LevelDB write batch whose writes can be read back before it is written.
 *
 * A replication group applies every entry committed in one cycle in one synced batch (one
 * fsync however many entries), but a later entry must see what an earlier one of the same
 * batch did to an item or a client session (a version, a condition, a reply). The batch keeps
 * a copy of every staged key and value, and staged_writes_get answers from them; callers
 * read the store only for keys it does not know.
 *
 * Lookups are linear, newest first: a batch holds the writes of one apply cycle (a few
 * hundred at most, bounded by the consensus window) and is cleared after each write.
 * Not thread-safe: one apply thread owns a batch. */
#ifndef QUORUM_STAGED_WRITES_H
#define QUORUM_STAGED_WRITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <leveldb/c.h>

struct staged_write;

struct staged_writes {
	leveldb_writebatch_t *batch;	/* what leveldb_write takes */
	struct staged_write *writes;
	size_t count, capacity;
	size_t size_bytes;		/* keys and values staged, for callers that cap a batch */
};

/* An empty batch. -ENOMEM. */
int staged_writes_init(struct staged_writes *s);
void staged_writes_destroy(struct staged_writes *s);

/* Stages value at key (value NULL: deletes key). -ENOMEM, with nothing staged. */
int staged_writes_put(struct staged_writes *s, const uint8_t *key, size_t key_bytes,
		      const uint8_t *value, size_t value_bytes);

/* True when key is staged: *value and *value_bytes are its newest value (NULL: deleted),
 * valid until the next put or clear. False when the store has the answer. */
bool staged_writes_get(const struct staged_writes *s, const uint8_t *key, size_t key_bytes,
		       const uint8_t **value, size_t *value_bytes);

/* Forgets everything staged (after the batch was written, or to abandon it). */
void staged_writes_clear(struct staged_writes *s);

#endif

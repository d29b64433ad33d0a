/* own_writes.h: read-your-writes for a router whose reads are eventual.
 *
 * With consistency=eventual a get may be served by any replica, and a follower applies a
 * commit a round trip or so after the leader answered the write: a process that writes an
 * item and reads it back at once could get the old version. The router notes each key it
 * sends a write for (before sending: a write whose answer is lost may still land), and a
 * get of a key noted in the last OWN_WRITES_RECENT_MS goes to the leader.
 *
 * The table holds only times, in slots picked by a hash of (table id, key hash): two keys
 * in one slot send a read to the leader needlessly, never a stale read. Fixed size, no
 * allocation per write, lock-free. Thread-safe. */
#ifndef QUORUM_FS_OWN_WRITES_H
#define QUORUM_FS_OWN_WRITES_H

#include <stdbool.h>
#include <stdint.h>

/* Far longer than a healthy follower lags; a follower further behind is not helped. */
#define OWN_WRITES_RECENT_MS 5000

struct own_writes;

/* NULL when out of memory. */
struct own_writes *own_writes_new(void);
void own_writes_free(struct own_writes *w);

/* A write of the key (key_hash, as keys.h hashes it) in table_id is about to be sent. */
void own_writes_note(struct own_writes *w, uint64_t table_id, uint64_t key_hash,
		     int64_t now_ms);

/* Whether a write of that key may have been sent within OWN_WRITES_RECENT_MS of now_ms. */
bool own_writes_recent(const struct own_writes *w, uint64_t table_id, uint64_t key_hash,
		       int64_t now_ms);

#endif

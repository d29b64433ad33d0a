/* session.h: at-most-once writes through client sessions.
 *
 * A router may send a write again when an answer is lost or a leader dies,
 * and the first try may already be in the log. Every write carries a
 * RequestId (client id, seq, floor; quorum.proto) that stays the same across
 * retries, and the replication group keeps, in its state and in the same
 * LevelDB batch as the data, a ClientSession per client: the outcomes of its
 * recent writes. Applying a command whose seq has an outcome returns that
 * outcome and changes nothing; a seq below the session's floor (the client
 * said it will not ask again) is refused. This is the client table of Raft
 * (Ongaro's thesis, 6.3), with the floor as the "acknowledged" mark.
 *
 * Everything here is a function of the command and the stored session, so
 * every replica decides the same; sessions go with snapshots.
 *
 * Stored form: key 's' | table_id | partition_id | client_id (big-endian,
 * 25 bytes); value crc32c frame (crc32c.h) around a ClientSession. */
#ifndef QUORUM_SESSION_H
#define QUORUM_SESSION_H

#include "cluster/arena.h"
#include "quorum.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SESSION_KEY_PREFIX 's'
#define SESSION_KEY_BYTES 25
#define SESSION_GROUP_PREFIX_BYTES 17	/* 's' | table_id | partition_id */

/* A client with more outcomes than this in one group (its floor stuck
 * behind a write that never ends) loses its oldest: that seq then counts
 * as below the floor, refused rather than applied twice. */
#define SESSION_REPLIES_MAX 1024

/* A session idle this long (command time) is dropped by session sweeps:
 * far past any router's deadline, so no retry of its writes is possible. */
#define SESSION_IDLE_NS (3600LL * 1000000000LL)

void session_key(uint8_t out[SESSION_KEY_BYTES], uint64_t table_id, uint64_t partition_id,
		 uint64_t client_id);

enum session_verdict {
	SESSION_NEW,		/* apply it, then session_record */
	SESSION_ANSWERED,	/* applied before: answer *reply again */
	SESSION_FORGOTTEN,	/* below the floor: refuse, never apply */
};

/* What the command with id means for session (NULL: the client has none
 * in this group yet). */
enum session_verdict session_check(const Quorum__ClientSession *session,
				   const Quorum__RequestId *id,
				   const Quorum__SessionReply **reply);

/* Records the outcome of id's write: *session (NULL: a new one) is
 * replaced by one in arena with the reply added, the replies below the
 * client's floor forgotten, and last_ns = now_ns. -ENOMEM. */
int session_record(struct arena *arena, Quorum__ClientSession **session,
		   const Quorum__RequestId *id, int64_t now_ns, int status,
		   const uint8_t *result, size_t result_bytes);

/* True when the session saw no command for SESSION_IDLE_NS before now_ns. */
bool session_idle(const Quorum__ClientSession *session, int64_t now_ns);

/* The stored value of session, malloc'd. -ENOMEM. */
int session_encode(const Quorum__ClientSession *session, uint8_t **value, size_t *value_bytes);

/* Decodes a stored value into arena. -EBADMSG when damaged, -ENOMEM. */
int session_decode(const uint8_t *value, size_t value_bytes, struct arena *arena,
		   Quorum__ClientSession **out);

#endif

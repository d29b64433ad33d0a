/* session.c: see session.h. */
#include "cluster/session.h"

#include "cluster/crc32c.h"
#include "cluster/keys.h"

#include <errno.h>
#include <stdlib.h>

void session_key(uint8_t out[SESSION_KEY_BYTES], uint64_t table_id, uint64_t partition_id,
		 uint64_t client_id)
{
	out[0] = SESSION_KEY_PREFIX;
	key_put_u64(out + 1, table_id);
	key_put_u64(out + 9, partition_id);
	key_put_u64(out + 17, client_id);
}

enum session_verdict session_check(const Quorum__ClientSession *session,
				   const Quorum__RequestId *id,
				   const Quorum__SessionReply **reply)
{
	*reply = NULL;
	if (!session)
		return SESSION_NEW;
	if (id->seq < session->floor)
		return SESSION_FORGOTTEN;
	for (size_t i = 0; i < session->n_replies; i++) {
		if (session->replies[i]->seq == id->seq) {
			*reply = session->replies[i];
			return SESSION_ANSWERED;
		}
	}
	return SESSION_NEW;
}

int session_record(struct arena *arena, Quorum__ClientSession **session,
		   const Quorum__RequestId *id, int64_t now_ns, int status,
		   const uint8_t *result, size_t result_bytes)
{
	const Quorum__ClientSession *old = *session;
	size_t old_count = old ? old->n_replies : 0;
	Quorum__ClientSession *s = arena_alloc(arena, sizeof(*s));
	Quorum__SessionReply *added = arena_alloc(arena, sizeof(*added));
	Quorum__SessionReply **replies = arena_alloc(arena, (old_count + 1) * sizeof(*replies));
	size_t count = 0, first = 0;
	bool placed = false;

	if (!s || !added || !replies)
		return -ENOMEM;
	quorum__client_session__init(s);
	quorum__session_reply__init(added);
	added->seq = id->seq;
	added->status = status;
	if (result_bytes > 0) {
		added->has_result = true;
		added->result.data = arena_memdup(arena, result, result_bytes);
		if (!added->result.data)
			return -ENOMEM;
		added->result.len = result_bytes;
	}
	s->floor = old ? old->floor : 0;
	if (id->floor > s->floor)
		s->floor = id->floor;
	s->last_ns = old && old->last_ns > now_ns ? old->last_ns : now_ns;
	/* Merge in seq order, leaving out what the floor forgets. */
	for (size_t i = 0; i <= old_count; i++) {
		Quorum__SessionReply *next = i < old_count ? old->replies[i] : NULL;

		if (!placed && (!next || next->seq > added->seq)) {
			replies[count++] = added;
			placed = true;
		}
		if (next && next->seq >= s->floor)
			replies[count++] = next;
	}
	if (count > SESSION_REPLIES_MAX) {
		first = count - SESSION_REPLIES_MAX;
		s->floor = replies[first - 1]->seq + 1;
	}
	s->n_replies = count - first;
	s->replies = replies + first;
	*session = s;
	return 0;
}

bool session_idle(const Quorum__ClientSession *session, int64_t now_ns)
{
	return now_ns - session->last_ns > SESSION_IDLE_NS;
}

int session_encode(const Quorum__ClientSession *session, uint8_t **value, size_t *value_bytes)
{
	size_t packed_bytes = quorum__client_session__get_packed_size(session);
	uint8_t *out = malloc(CRC32C_FRAME_BYTES + packed_bytes);

	if (!out)
		return -ENOMEM;
	quorum__client_session__pack(session, out + CRC32C_FRAME_BYTES);
	crc32c_frame_seal(out, packed_bytes);
	*value = out;
	*value_bytes = CRC32C_FRAME_BYTES + packed_bytes;
	return 0;
}

int session_decode(const uint8_t *value, size_t value_bytes, struct arena *arena,
		   Quorum__ClientSession **out)
{
	Quorum__ClientSession *session;

	if (!crc32c_frame_check(value, value_bytes))
		return -EBADMSG;
	session = quorum__client_session__unpack(arena_protobuf_allocator(arena),
						 value_bytes - CRC32C_FRAME_BYTES,
						 value + CRC32C_FRAME_BYTES);
	if (!session)
		return -EBADMSG;
	for (size_t i = 1; i < session->n_replies; i++) {
		if (session->replies[i]->seq <= session->replies[i - 1]->seq)
			return -EBADMSG;
	}
	*out = session;
	return 0;
}

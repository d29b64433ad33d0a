/* paxos_envelope.h: the Request that carries Paxos messages between peers, packed around
 * paxos_wire's bytes without decoding them again: one message as Request.paxos (field 60),
 * several as Request.paxos_batch (field 61, a PaxosBatch whose field 1 repeats), exactly as
 * protobuf packs them (quorum.proto). */
#ifndef QUORUM_PAXOS_ENVELOPE_H
#define QUORUM_PAXOS_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#define PAXOS_ENVELOPE_HEAD_MAX 32

/* The bytes that come before one message of message_bytes in its Request (the version field,
 * then field 60's tag and length), in out; returns how many. */
size_t paxos_envelope_head(uint8_t out[PAXOS_ENVELOPE_HEAD_MAX], size_t message_bytes);

/* One Request carrying the count (at least 1) messages, messages[i] of sizes[i] bytes, in
 * order; malloc'd, *size_bytes long. NULL when out of memory. */
uint8_t *paxos_envelope_pack(const uint8_t *const *messages, const size_t *sizes, size_t count,
			     size_t *size_bytes);

#endif

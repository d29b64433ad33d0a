/* paxos_envelope.c: Requests around Paxos messages; see paxos_envelope.h. */
#include "cluster/paxos_envelope.h"

#include "cluster/rpc.h"
#include "quorum.pb-c.h"

#include <stdlib.h>
#include <string.h>

/* Length-delimited tags: Request.paxos, Request.paxos_batch, PaxosBatch.messages. */
#define REQUEST_PAXOS_TAG ((60u << 3) | 2u)
#define REQUEST_PAXOS_BATCH_TAG ((61u << 3) | 2u)
#define PAXOS_BATCH_MESSAGE_TAG ((1u << 3) | 2u)

static size_t varint_put(uint8_t *out, uint64_t value)
{
	size_t n = 0;

	while (value >= 0x80) {
		out[n++] = (uint8_t)(value | 0x80);
		value >>= 7;
	}
	out[n++] = (uint8_t)value;
	return n;
}

static size_t varint_bytes(uint64_t value)
{
	size_t n = 1;

	while (value >= 0x80) {
		value >>= 7;
		n++;
	}
	return n;
}

/* The packed version field of a Request. */
static size_t envelope_version(uint8_t *out)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;

	request.version = RPC_PROTOCOL_VERSION;
	return quorum__request__pack(&request, out);
}

size_t paxos_envelope_head(uint8_t out[PAXOS_ENVELOPE_HEAD_MAX], size_t message_bytes)
{
	size_t n = envelope_version(out);

	n += varint_put(out + n, REQUEST_PAXOS_TAG);
	n += varint_put(out + n, message_bytes);
	return n;
}

uint8_t *paxos_envelope_pack(const uint8_t *const *messages, const size_t *sizes, size_t count,
			     size_t *size_bytes)
{
	uint8_t head[PAXOS_ENVELOPE_HEAD_MAX], *out;
	size_t inner_bytes = 0, n;

	if (count == 1) {
		n = paxos_envelope_head(head, sizes[0]);
		out = malloc(n + sizes[0]);
		if (!out)
			return NULL;
		memcpy(out, head, n);
		memcpy(out + n, messages[0], sizes[0]);
		*size_bytes = n + sizes[0];
		return out;
	}
	for (size_t i = 0; i < count; i++)
		inner_bytes += varint_bytes(PAXOS_BATCH_MESSAGE_TAG) + varint_bytes(sizes[i]) +
			       sizes[i];
	n = envelope_version(head);
	out = malloc(n + varint_bytes(REQUEST_PAXOS_BATCH_TAG) + varint_bytes(inner_bytes) +
		     inner_bytes);
	if (!out)
		return NULL;
	memcpy(out, head, n);
	n += varint_put(out + n, REQUEST_PAXOS_BATCH_TAG);
	n += varint_put(out + n, inner_bytes);
	for (size_t i = 0; i < count; i++) {
		n += varint_put(out + n, PAXOS_BATCH_MESSAGE_TAG);
		n += varint_put(out + n, sizes[i]);
		memcpy(out + n, messages[i], sizes[i]);
		n += sizes[i];
	}
	*size_bytes = n;
	return out;
}

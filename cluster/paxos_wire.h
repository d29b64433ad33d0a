/* paxos_wire.h: the wire codec of the Multi-Paxos messages (struct paxos_msg of paxos.h) as
 * PaxosMessage of quorum.proto, between the storage nodes of a replication group.
 *
 * A wire message also names its group (table id, partition id), so a node that holds many
 * replicas routes it to the right one; the sender's node id is msg->from. Every message carries
 * PAXOS_WIRE_VERSION; a decoder accepts any version >= 1 (fields it does not know are skipped
 * by protobuf), so a node of version N talks to one of version N-1.
 *
 * Decoding is input from a peer: it never crashes and never trusts a count. A message is
 * refused with -EINVAL when it does not parse, names an unknown type, a zero node id, more
 * entries than the core takes in that message type (PAXOS_BATCH_MAX, or
 * PAXOS_PROMISE_ENTRIES_MAX in a PROMISE), entries in a type that has none, an entry with
 * slot 0, no ballot, an unknown entry type or a value over PAXOS_VALUE_BYTES_MAX, more than
 * PAXOS_BATCH_MAX slots, more than PAXOS_MEMBERS_MAX members, or a snapshot over
 * PAXOS_WIRE_SNAPSHOT_BYTES_MAX. The core checks the rest (membership, ballots).
 *
 * Memory: encode and decode allocate everything in the caller's arena (the encoded bytes; the
 * decoded entries and their values), valid until arena_free. */
#ifndef QUORUM_PAXOS_WIRE_H
#define QUORUM_PAXOS_WIRE_H

#include "cluster/arena.h"
#include "cluster/paxos.h"

#include <stddef.h>
#include <stdint.h>

#define PAXOS_WIRE_VERSION 1
#define PAXOS_WIRE_SNAPSHOT_BYTES_MAX (256u << 20)

/* Which replication group a message belongs to. */
struct paxos_wire_group {
	uint64_t table_id;
	uint64_t partition_id;
};

/* Encodes msg of group into *out (size_bytes long, in arena). Returns 0, -EINVAL when msg
 * breaks the bounds the decoder enforces (so a peer would refuse it), -ENOMEM. */
int paxos_wire_encode(const struct paxos_wire_group *group, const struct paxos_msg *msg,
		      struct arena *arena, uint8_t **out, size_t *size_bytes);

/* Decodes size_bytes of data into *group and *msg (pointers into arena). Returns 0,
 * -EINVAL (malformed: see above), -ENOMEM. */
int paxos_wire_decode(const uint8_t *data, size_t size_bytes, struct arena *arena,
		      struct paxos_wire_group *group, struct paxos_msg *msg);

#endif

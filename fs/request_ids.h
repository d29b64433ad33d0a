/* request_ids.h: the ids of one router's writes (RequestId, quorum.proto).
 *
 * A router process draws a random 64-bit client id; each write takes the
 * next seq and keeps it across every retry, so the replication group that
 * applies it can tell a retry from a new write (cluster/session.h). The
 * floor sent with a write is the lowest seq still in flight: every write
 * below it has had its answer or been given up at its deadline, so the
 * group may forget their outcomes and refuse late copies of them.
 *
 * Thread-safe. */
#ifndef QUORUM_FS_REQUEST_IDS_H
#define QUORUM_FS_REQUEST_IDS_H

#include "quorum.pb-c.h"

#include <stdint.h>

struct request_ids;

/* -ENOMEM, or -EIO when no random client id could be drawn. */
int request_ids_new(struct request_ids **out);
void request_ids_free(struct request_ids *ids);

/* Starts a write: fills *id (client id, a new seq, the floor). Every
 * successful call must be followed by request_ids_end(id->seq). -ENOMEM. */
int request_ids_begin(struct request_ids *ids, Quorum__RequestId *id);

/* The write of seq is over (answered, or given up): it no longer holds the
 * floor down. */
void request_ids_end(struct request_ids *ids, uint64_t seq);

#endif

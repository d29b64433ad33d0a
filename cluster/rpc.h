/* rpc.h: typed requests over net.h. A request is a quorum.Request envelope,
 * a reply a quorum.Response; both carry the protocol version. */
#ifndef QUORUM_RPC_H
#define QUORUM_RPC_H

#include "cluster/arena.h"
#include "cluster/net.h"
#include "quorum.pb-c.h"

#include <stdbool.h>
#include <stdint.h>

/* The version this build speaks. A peer reads every older version; fields
 * it does not know are skipped by the codec. */
#define RPC_PROTOCOL_VERSION 1

#define RPC_WHY_BYTES 256

/* Why a call failed. transport: no valid answer came back (no reply by the
 * deadline, a socket failure, a reply that does not decode or answers
 * another operation), so the request may or may not have been applied and
 * a retry is the caller's decision; otherwise the status is the peer's. */
struct rpc_error {
	bool transport;
	char why[RPC_WHY_BYTES];   /* the peer's explanation or the transport's */
	uint64_t leader_id;        /* -EREMOTE: the replica that leads, 0 if unknown */
	/* -EREMCHG: the partition that holds the key now, when the node named it (same
	 * replicas: a split; a move changes them, and meta knows the new ones). */
	bool has_route;
	uint64_t route_partition_id, route_hash_first, route_hash_last, route_epoch;
};

/* Sends request (its version is set here) and waits until deadline_ms.
 * Returns the response's status: 0 with *response set (free it with
 * quorum__response__free_unpacked(*response, NULL)), or a negative errno
 * with *response NULL and *error (may be NULL) filled. Transport errors are
 * -ETIMEDOUT, -EIO, -ENOMEM, and -EPROTO. */
int rpc_call(struct net_client *client, Quorum__Request *request, int64_t deadline_ms,
	     Quorum__Response **response, struct rpc_error *error);

/* Handles one decoded request: fills response (version and status 0 are
 * preset) with memory from arena, which lives until the reply is sent. */
typedef void (*rpc_handler_fn)(void *ctx, const Quorum__Request *request,
			       Quorum__Response *response, struct arena *arena);

struct rpc_server;

int rpc_server_start(const char *url, int worker_count, rpc_handler_fn handler, void *ctx,
		     struct rpc_server **out);
void rpc_server_stop(struct rpc_server *server);

/* Sets response's status to the negative errno status with an explanation. */
void rpc_fail(Quorum__Response *response, struct arena *arena, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif

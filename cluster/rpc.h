/* rpc.h: typed requests over net.h. A request is a quorum.Request envelope,
 * a reply a quorum.Response; both carry the protocol version. */
#ifndef QUORUM_RPC_H
#define QUORUM_RPC_H

#include "cluster/arena.h"
#include "cluster/net.h"
#include "quorum.pb-c.h"

#include <stdint.h>

/* The version this build speaks. A peer reads every older version; fields
 * it does not know are skipped by the codec. */
#define RPC_PROTOCOL_VERSION 1

#define RPC_WHY_BYTES 256

/* Sends request (its version is set here) and waits until deadline_ms.
 * Returns the response's status: 0 with *response set (free it with
 * quorum__response__free_unpacked(*response, NULL)), or a negative errno
 * with *response NULL; then why (when not NULL, RPC_WHY_BYTES long) holds
 * the peer's explanation or the transport's. Transport errors are
 * -ETIMEDOUT, -EIO, -ENOMEM, and -EPROTO for a reply that does not decode
 * or answers another operation. */
int rpc_call(struct net_client *client, Quorum__Request *request, int64_t deadline_ms,
	     Quorum__Response **response, char *why);

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

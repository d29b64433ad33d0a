/* rpc.c: packing, unpacking and dispatch of the envelope. A request that
 * does not decode is dropped with a log line: the sender times out. */
#include "cluster/rpc.h"

#include "cluster/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The result each operation answers with; a reply with another is refused. */
static Quorum__Response__ResultCase rpc_expected_result(Quorum__Request__OpCase op)
{
	switch (op) {
	case QUORUM__REQUEST__OP_PING: return QUORUM__RESPONSE__RESULT_PING;
	case QUORUM__REQUEST__OP_GET_ITEM: return QUORUM__RESPONSE__RESULT_GET_ITEM;
	case QUORUM__REQUEST__OP_PUT_ITEM: return QUORUM__RESPONSE__RESULT_PUT_ITEM;
	case QUORUM__REQUEST__OP_UPDATE_ITEM: return QUORUM__RESPONSE__RESULT_UPDATE_ITEM;
	case QUORUM__REQUEST__OP_SCAN: return QUORUM__RESPONSE__RESULT_SCAN;
	case QUORUM__REQUEST__OP_SPLIT_PARTITION: return QUORUM__RESPONSE__RESULT_SPLIT_PARTITION;
	case QUORUM__REQUEST__OP_SPLIT_TABLE:
	case QUORUM__REQUEST__OP_CREATE_TABLE:
	case QUORUM__REQUEST__OP_DESCRIBE_TABLE:
	case QUORUM__REQUEST__OP_UPDATE_TABLE: return QUORUM__RESPONSE__RESULT_TABLE;
	case QUORUM__REQUEST__OP_LIST_TABLES: return QUORUM__RESPONSE__RESULT_LIST_TABLES;
	case QUORUM__REQUEST__OP_REGISTER_NODE: return QUORUM__RESPONSE__RESULT_REGISTER_NODE;
	case QUORUM__REQUEST__OP_HEARTBEAT: return QUORUM__RESPONSE__RESULT_HEARTBEAT;
	case QUORUM__REQUEST__OP_CHANGE_MEMBERS: return QUORUM__RESPONSE__RESULT_CHANGE_MEMBERS;
	case QUORUM__REQUEST__OP_DRAIN_NODE:
	case QUORUM__REQUEST__OP_LIST_NODES: return QUORUM__RESPONSE__RESULT_LIST_NODES;
	case QUORUM__REQUEST__OP_CLUSTER_INFO: return QUORUM__RESPONSE__RESULT_CLUSTER_INFO;
	case QUORUM__REQUEST__OP_GET_SETTINGS:
	case QUORUM__REQUEST__OP_SET_SETTING: return QUORUM__RESPONSE__RESULT_SETTINGS;
	default: return QUORUM__RESPONSE__RESULT__NOT_SET;   /* status only */
	}
}

static void rpc_set_error(struct rpc_error *error, bool transport, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void rpc_set_error(struct rpc_error *error, bool transport, const char *fmt, ...)
{
	va_list ap;
	if (!error)
		return;
	error->transport = transport;
	va_start(ap, fmt);
	vsnprintf(error->why, sizeof(error->why), fmt, ap);
	va_end(ap);
}

int rpc_call(struct net_client *client, Quorum__Request *request, int64_t deadline_ms,
	     Quorum__Response **response, struct rpc_error *error)
{
	size_t request_bytes, reply_bytes = 0;
	uint8_t *packed;
	void *reply = NULL;
	Quorum__Response *decoded;
	int err;

	*response = NULL;
	if (error) {
		error->leader_id = 0;
		error->has_route = false;
	}
	request->version = RPC_PROTOCOL_VERSION;
	request_bytes = quorum__request__get_packed_size(request);
	packed = malloc(request_bytes ? request_bytes : 1);
	if (!packed) {
		rpc_set_error(error, true, "out of memory");
		return -ENOMEM;
	}
	quorum__request__pack(request, packed);
	err = net_client_call(client, packed, request_bytes, deadline_ms, &reply, &reply_bytes);
	free(packed);
	if (err < 0) {
		rpc_set_error(error, true, "%s: %s", net_client_url(client),
			    err == -ETIMEDOUT ? "no answer before the deadline" : strerror(-err));
		return err;
	}
	decoded = quorum__response__unpack(NULL, reply_bytes, reply);
	net_message_free(reply);
	if (!decoded) {
		log_warn("malformed reply from %s dropped", net_client_url(client));
		rpc_set_error(error, true, "%s: malformed reply", net_client_url(client));
		return -EPROTO;
	}
	if (decoded->status < 0) {
		err = decoded->status;
		rpc_set_error(error, false, "%s",
			      decoded->message ? decoded->message : strerror(-err));
		if (error && err == -EREMOTE && decoded->has_leader_id)
			error->leader_id = decoded->leader_id;
		if (error && err == -EREMCHG && decoded->route && decoded->route->partition) {
			const Quorum__PartitionInfo *p = decoded->route->partition;

			error->has_route = true;
			error->route_partition_id = p->id;
			error->route_hash_first = p->hash_first;
			error->route_hash_last = p->hash_last;
			error->route_epoch = p->epoch;
		}
		quorum__response__free_unpacked(decoded, NULL);
		return err;
	}
	if (decoded->result_case != rpc_expected_result(request->op_case)) {
		log_warn("reply from %s answers another operation", net_client_url(client));
		rpc_set_error(error, true, "%s: reply answers another operation",
			      net_client_url(client));
		quorum__response__free_unpacked(decoded, NULL);
		return -EPROTO;
	}
	*response = decoded;
	return 0;
}

void rpc_fail(Quorum__Response *response, struct arena *arena, int status, const char *fmt, ...)
{
	char message[RPC_WHY_BYTES];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	response->status = status;
	response->result_case = QUORUM__RESPONSE__RESULT__NOT_SET;
	response->message = arena_memdup(arena, message, strlen(message) + 1);
}

struct rpc_server {
	struct net_server *net;
	rpc_handler_fn handler;
	void *ctx;
};

static void rpc_server_handle(void *ctx, const void *request_bytes, size_t size_bytes,
			      void **reply, size_t *reply_bytes)
{
	struct rpc_server *server = ctx;
	Quorum__Response response = QUORUM__RESPONSE__INIT;
	Quorum__Request *request;
	struct arena *arena = arena_new();

	if (!arena) {
		log_error("out of memory: request dropped");
		return;
	}
	request = quorum__request__unpack(arena_protobuf_allocator(arena), size_bytes,
					  request_bytes);
	if (!request) {
		log_warn("malformed request of %zu bytes dropped", size_bytes);
		goto out;
	}
	response.version = RPC_PROTOCOL_VERSION;
	response.status = 0;
	if (request->op_case == QUORUM__REQUEST__OP__NOT_SET)
		rpc_fail(&response, arena, -EOPNOTSUPP,
			 "operation unknown to this version (%u)", RPC_PROTOCOL_VERSION);
	else
		server->handler(server->ctx, request, &response, arena);
	*reply_bytes = quorum__response__get_packed_size(&response);
	*reply = malloc(*reply_bytes ? *reply_bytes : 1);
	if (!*reply) {
		log_error("out of memory: reply dropped");
		goto out;
	}
	quorum__response__pack(&response, *reply);
out:
	arena_free(arena);
}

int rpc_server_start(const char *url, int worker_count, rpc_handler_fn handler, void *ctx,
		     struct rpc_server **out)
{
	struct rpc_server *server = calloc(1, sizeof(*server));
	int err;

	if (!server)
		return -ENOMEM;
	server->handler = handler;
	server->ctx = ctx;
	err = net_server_start(url, worker_count, rpc_server_handle, server, &server->net);
	if (err < 0) {
		free(server);
		return err;
	}
	*out = server;
	return 0;
}

void rpc_server_stop(struct rpc_server *server)
{
	if (!server)
		return;
	net_server_stop(server->net);
	free(server);
}

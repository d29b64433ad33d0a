/* net.h: request/reply transport over nanomsg.
 *
 * Client: a net_client is a pool of REQ sockets connected to one URL. A call
 * takes an idle socket (or opens one), so any number of threads can have a
 * request in flight to the same peer at once. Every call has a deadline;
 * past it the call returns -ETIMEDOUT, never later.
 *
 * Server: one raw REP socket and a set of worker threads that all receive
 * from it. Each reply is routed back with the header nanomsg gave the
 * request, so replies may leave in any order. */
#ifndef QUORUM_NET_H
#define QUORUM_NET_H

#include <stddef.h>
#include <stdint.h>

/* The largest message either side accepts: an item of the largest allowed
 * size plus its key and metadata, with room to spare. */
#define NET_MESSAGE_MAX_BYTES (64u * 1024 * 1024)

struct net_client;

int net_client_new(const char *url, struct net_client **out);
void net_client_free(struct net_client *client);
const char *net_client_url(const struct net_client *client);

/* Sends request and waits for the reply until deadline_ms (monotonic).
 * On 0, *reply (freed with net_message_free) holds *reply_bytes bytes.
 * Errors: -ETIMEDOUT (no reply in time), -ENOMEM, -EIO (socket failure). */
int net_client_call(struct net_client *client, const void *request, size_t request_bytes,
		    int64_t deadline_ms, void **reply, size_t *reply_bytes);

void net_message_free(void *message);

/* A set of clients by URL, shared by threads; clients live until the pool
 * is freed. */
struct net_pool;

struct net_pool *net_pool_new(void);
void net_pool_free(struct net_pool *pool);
/* The client for url, made on first use; NULL when out of memory. */
struct net_client *net_pool_get(struct net_pool *pool, const char *url);

/* Handles one request: sets *reply (malloc'd; the server frees it) and
 * *reply_bytes, or leaves *reply NULL to send nothing back. */
typedef void (*net_handler_fn)(void *ctx, const void *request, size_t request_bytes,
			       void **reply, size_t *reply_bytes);

struct net_server;

/* Workers of one server at most: see net_server_start. */
#define NET_SERVER_WORKERS_MAX 1024

/* Binds url and starts worker_count threads (1 to NET_SERVER_WORKERS_MAX); while every worker
 * is busy with a request, it starts one more, up to NET_SERVER_WORKERS_MAX, so a handler may
 * wait for a later request without stalling the server. Returns 0 or a negative errno
 * (-EADDRINUSE when the address is taken, -EINVAL). */
int net_server_start(const char *url, int worker_count, net_handler_fn handler, void *ctx,
		     struct net_server **out);
/* Stops the workers (each finishes the request it holds) and closes. */
void net_server_stop(struct net_server *server);

/* A TCP port on 127.0.0.1 that was free a moment ago, or a negative errno. */
int net_find_free_port(void);

#endif

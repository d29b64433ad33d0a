/* net.c: nanomsg REQ pools on the client side, raw REP with workers on the
 * server side. See net.h for the contract. */
#define _GNU_SOURCE   /* pthread_setname_np */
#include "cluster/net.h"

#include "cluster/clock.h"
#include "cluster/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

/* Idle sockets kept per peer; beyond this, sockets are closed after use. */
#define NET_CLIENT_IDLE_MAX 32
/* How often a blocked server worker looks at the stop flag. */
#define NET_SERVER_POLL_MS 200

struct net_client {
	char *url;
	pthread_mutex_t lock;
	int idle[NET_CLIENT_IDLE_MAX];
	size_t idle_count;
};

int net_client_new(const char *url, struct net_client **out)
{
	struct net_client *client = calloc(1, sizeof(*client));
	if (!client)
		return -ENOMEM;
	client->url = strdup(url);
	if (!client->url) {
		free(client);
		return -ENOMEM;
	}
	pthread_mutex_init(&client->lock, NULL);
	*out = client;
	return 0;
}

void net_client_free(struct net_client *client)
{
	if (!client)
		return;
	for (size_t i = 0; i < client->idle_count; i++)
		nn_close(client->idle[i]);
	pthread_mutex_destroy(&client->lock);
	free(client->url);
	free(client);
}

const char *net_client_url(const struct net_client *client)
{
	return client->url;
}

static int net_socket_open_req(const char *url)
{
	/* Requests are never resent by nanomsg: a retry is the caller's
	 * decision, made with its own deadline and idempotence in mind. */
	int resend_ms = 24 * 3600 * 1000;
	int reconnect_ms = 50, reconnect_max_ms = 1000;
	int max_bytes = (int)NET_MESSAGE_MAX_BYTES;
	int sock = nn_socket(AF_SP, NN_REQ);

	if (sock < 0)
		return -nn_errno();
	if (nn_setsockopt(sock, NN_REQ, NN_REQ_RESEND_IVL, &resend_ms, sizeof(resend_ms)) < 0 ||
	    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RECONNECT_IVL, &reconnect_ms,
			  sizeof(reconnect_ms)) < 0 ||
	    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RECONNECT_IVL_MAX, &reconnect_max_ms,
			  sizeof(reconnect_max_ms)) < 0 ||
	    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &max_bytes, sizeof(max_bytes)) < 0 ||
	    nn_connect(sock, url) < 0) {
		int err = -nn_errno();
		nn_close(sock);
		return err;
	}
	return sock;
}

static int net_client_take_socket(struct net_client *client)
{
	int sock = -1;

	pthread_mutex_lock(&client->lock);
	if (client->idle_count > 0)
		sock = client->idle[--client->idle_count];
	pthread_mutex_unlock(&client->lock);
	return sock >= 0 ? sock : net_socket_open_req(client->url);
}

static void net_client_return_socket(struct net_client *client, int sock)
{
	pthread_mutex_lock(&client->lock);
	if (client->idle_count < NET_CLIENT_IDLE_MAX) {
		client->idle[client->idle_count++] = sock;
		sock = -1;
	}
	pthread_mutex_unlock(&client->lock);
	if (sock >= 0)
		nn_close(sock);
}

static int net_set_timeout(int sock, int option, int64_t deadline_ms)
{
	int64_t left_ms = clock_remaining_ms(deadline_ms);
	int timeout_ms = left_ms > 0 ? (int)(left_ms > INT32_MAX ? INT32_MAX : left_ms) : 1;
	return nn_setsockopt(sock, NN_SOL_SOCKET, option, &timeout_ms, sizeof(timeout_ms));
}

int net_client_call(struct net_client *client, const void *request, size_t request_bytes,
		    int64_t deadline_ms, void **reply, size_t *reply_bytes)
{
	void *message = NULL;
	int sock, received;

	if (clock_remaining_ms(deadline_ms) <= 0)
		return -ETIMEDOUT;
	sock = net_client_take_socket(client);
	if (sock < 0)
		return sock == -ENOMEM ? -ENOMEM : -EIO;
	if (net_set_timeout(sock, NN_SNDTIMEO, deadline_ms) < 0 ||
	    nn_send(sock, request, request_bytes, 0) < 0)
		goto failed;
	/* A reply to an earlier request that timed out on this socket is
	 * discarded by the REQ protocol: it matches only the latest id. */
	if (net_set_timeout(sock, NN_RCVTIMEO, deadline_ms) < 0)
		goto failed;
	received = nn_recv(sock, &message, NN_MSG, 0);
	if (received < 0)
		goto failed;
	net_client_return_socket(client, sock);
	*reply = message;
	*reply_bytes = (size_t)received;
	return 0;

failed:;
	int err = nn_errno();
	/* A socket that failed or timed out is closed, so that the next
	 * call does not start on top of a request still in flight. */
	nn_close(sock);
	if (err == ETIMEDOUT || err == EAGAIN)
		return -ETIMEDOUT;
	return err == ENOMEM ? -ENOMEM : -EIO;
}

void net_message_free(void *message)
{
	if (message)
		nn_freemsg(message);
}

struct net_pool_entry {
	struct net_pool_entry *next;
	struct net_client *client;
};

struct net_pool {
	pthread_mutex_t lock;
	struct net_pool_entry *entries;
};

struct net_pool *net_pool_new(void)
{
	struct net_pool *pool = calloc(1, sizeof(*pool));
	if (pool)
		pthread_mutex_init(&pool->lock, NULL);
	return pool;
}

void net_pool_free(struct net_pool *pool)
{
	if (!pool)
		return;
	while (pool->entries) {
		struct net_pool_entry *next = pool->entries->next;
		net_client_free(pool->entries->client);
		free(pool->entries);
		pool->entries = next;
	}
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

struct net_client *net_pool_get(struct net_pool *pool, const char *url)
{
	struct net_client *client = NULL;
	struct net_pool_entry *entry;

	pthread_mutex_lock(&pool->lock);
	for (entry = pool->entries; entry; entry = entry->next) {
		if (strcmp(entry->client->url, url) == 0) {
			client = entry->client;
			goto out;
		}
	}
	entry = calloc(1, sizeof(*entry));
	if (!entry)
		goto out;
	if (net_client_new(url, &entry->client) != 0) {
		free(entry);
		goto out;
	}
	entry->next = pool->entries;
	pool->entries = entry;
	client = entry->client;
out:
	pthread_mutex_unlock(&pool->lock);
	return client;
}

struct net_server {
	int sock;
	atomic_bool stopping;
	/* Held by the one worker that waits in nn_recvmsg. nanomsg wakes every thread blocked
	 * in a receive on a socket for each message that arrives (they all poll one eventfd),
	 * and all but one find nothing: with 32 workers that is 31 useless context switches
	 * per request. Idle workers wait on this lock instead, which wakes one at a time. */
	pthread_mutex_t recv_lock;
	net_handler_fn handler;
	void *ctx;
	/* A handler may wait (a write waits for its replication group to commit it), and the
	 * requests that end the wait (a peer's Paxos messages) come through the same socket:
	 * when no worker is left to receive, one more is started, up to NET_SERVER_WORKERS_MAX,
	 * so a full pool never holds back the messages its requests wait for. */
	atomic_int idle;		/* workers between requests */
	pthread_mutex_t workers_lock;	/* guards workers and worker_count */
	int worker_count;
	pthread_t *workers;		/* NET_SERVER_WORKERS_MAX slots */
};

static void *net_server_worker(void *arg);

/* Starts one more worker unless the server stops or has the most it may. */
static void net_server_grow(struct net_server *server)
{
	pthread_mutex_lock(&server->workers_lock);
	if (!atomic_load(&server->stopping) && server->worker_count < NET_SERVER_WORKERS_MAX &&
	    pthread_create(&server->workers[server->worker_count], NULL, net_server_worker,
			   server) == 0)
		server->worker_count++;
	pthread_mutex_unlock(&server->workers_lock);
}

static void *net_server_worker(void *arg)
{
	struct net_server *server = arg;

	pthread_setname_np(pthread_self(), "rpc");	/* for top -H and perf */

	while (!atomic_load(&server->stopping)) {
		void *body = NULL, *control = NULL, *reply = NULL;
		size_t reply_bytes = 0;
		struct nn_iovec iov = { .iov_base = &body, .iov_len = NN_MSG };
		struct nn_msghdr header = { .msg_iov = &iov, .msg_iovlen = 1,
					    .msg_control = &control,
					    .msg_controllen = NN_MSG };
		int received;

		atomic_fetch_add(&server->idle, 1);
		pthread_mutex_lock(&server->recv_lock);
		if (atomic_load(&server->stopping)) {
			pthread_mutex_unlock(&server->recv_lock);
			break;
		}
		received = nn_recvmsg(server->sock, &header, 0);
		pthread_mutex_unlock(&server->recv_lock);
		/* The last idle worker took a request: start another to receive. */
		if (atomic_fetch_sub(&server->idle, 1) == 1 && received >= 0)
			net_server_grow(server);
		if (received < 0) {
			int err = nn_errno();
			if (err == ETIMEDOUT || err == EAGAIN || err == EINTR)
				continue;
			if (err == EBADF || err == ETERM)
				break;
			log_warn("receive failed: %s", nn_strerror(err));
			continue;
		}
		server->handler(server->ctx, body, (size_t)received, &reply, &reply_bytes);
		nn_freemsg(body);
		if (reply) {
			struct nn_iovec out_iov = { .iov_base = reply, .iov_len = reply_bytes };
			struct nn_msghdr out = { .msg_iov = &out_iov, .msg_iovlen = 1,
						 .msg_control = &control,
						 .msg_controllen = NN_MSG };
			/* On success nanomsg takes the control buffer. */
			if (nn_sendmsg(server->sock, &out, 0) < 0) {
				log_warn("reply not sent: %s", nn_strerror(nn_errno()));
				nn_freemsg(control);
			}
			free(reply);
		} else if (control) {
			nn_freemsg(control);
		}
	}
	return NULL;
}

int net_server_start(const char *url, int worker_count, net_handler_fn handler, void *ctx,
		     struct net_server **out)
{
	struct net_server *server;
	int timeout_ms = NET_SERVER_POLL_MS, send_timeout_ms = 5000;
	int max_bytes = (int)NET_MESSAGE_MAX_BYTES;
	int err;

	server = calloc(1, sizeof(*server));
	if (!server)
		return -ENOMEM;
	if (worker_count < 1 || worker_count > NET_SERVER_WORKERS_MAX) {
		free(server);
		return -EINVAL;
	}
	server->handler = handler;
	server->ctx = ctx;
	if (pthread_mutex_init(&server->recv_lock, NULL) != 0) {
		free(server);
		return -ENOMEM;
	}
	if (pthread_mutex_init(&server->workers_lock, NULL) != 0) {
		pthread_mutex_destroy(&server->recv_lock);
		free(server);
		return -ENOMEM;
	}
	server->sock = nn_socket(AF_SP_RAW, NN_REP);
	if (server->sock < 0) {
		err = -nn_errno();
		pthread_mutex_destroy(&server->workers_lock);
		pthread_mutex_destroy(&server->recv_lock);
		free(server);
		return err;
	}
	if (nn_setsockopt(server->sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms,
			  sizeof(timeout_ms)) < 0 ||
	    nn_setsockopt(server->sock, NN_SOL_SOCKET, NN_SNDTIMEO, &send_timeout_ms,
			  sizeof(send_timeout_ms)) < 0 ||
	    nn_setsockopt(server->sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &max_bytes,
			  sizeof(max_bytes)) < 0 ||
	    nn_bind(server->sock, url) < 0) {
		err = -nn_errno();
		nn_close(server->sock);
		pthread_mutex_destroy(&server->workers_lock);
		pthread_mutex_destroy(&server->workers_lock);
		pthread_mutex_destroy(&server->recv_lock);
		free(server);
		return err;
	}
	server->workers = calloc(NET_SERVER_WORKERS_MAX, sizeof(*server->workers));
	if (!server->workers) {
		nn_close(server->sock);
		pthread_mutex_destroy(&server->workers_lock);
		pthread_mutex_destroy(&server->recv_lock);
		free(server);
		return -ENOMEM;
	}
	pthread_mutex_lock(&server->workers_lock);
	for (int i = 0; i < worker_count; i++) {
		if (pthread_create(&server->workers[i], NULL, net_server_worker, server) != 0) {
			pthread_mutex_unlock(&server->workers_lock);
			net_server_stop(server);
			return -EAGAIN;
		}
		server->worker_count = i + 1;
	}
	pthread_mutex_unlock(&server->workers_lock);
	*out = server;
	return 0;
}

void net_server_stop(struct net_server *server)
{
	int count;

	if (!server)
		return;
	atomic_store(&server->stopping, true);
	/* No worker starts once stopping is seen under the lock: the count is final. */
	pthread_mutex_lock(&server->workers_lock);
	count = server->worker_count;
	pthread_mutex_unlock(&server->workers_lock);
	for (int i = 0; i < count; i++)
		pthread_join(server->workers[i], NULL);
	nn_close(server->sock);
	pthread_mutex_destroy(&server->workers_lock);
	pthread_mutex_destroy(&server->recv_lock);
	free(server->workers);
	free(server);
}

int net_find_free_port(void)
{
	struct sockaddr_in address = { .sin_family = AF_INET };
	socklen_t length = sizeof(address);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;

	if (fd < 0)
		return -errno;
	address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&address, &length) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	port = ntohs(address.sin_port);
	close(fd);
	return port;
}

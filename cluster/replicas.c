/* replicas.c: the node's hosted replication groups, their threads and inboxes, and the peer
 * transport of Paxos messages. See replicas.h for the design.
 *
 * Locks: replicas->lock guards the list of hosted groups, their reference counts and the list
 * of peers; a hosted group's own lock guards its inbox, waiters, status copy and member
 * addresses; a peer's lock guards its queue. No lock is held while calling into the group
 * (group_process runs the callbacks, which take the hosted lock) or the network. A group is
 * freed only when it left the list and its reference count fell to zero, so an rpc worker
 * that found it may keep using it. */
#define _GNU_SOURCE   /* pthread_setname_np */
#include "cluster/replicas.h"

#include "cluster/clock.h"
#include "cluster/disk_space.h"
#include "cluster/group.h"
#include "cluster/io.h"
#include "cluster/keys.h"
#include "cluster/log.h"
#include "cluster/net.h"
#include "cluster/paxos_envelope.h"
#include "cluster/paxos_wire.h"
#include "cluster/rpc.h"
#include "cluster/store_group.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Messages waiting in a group's inbox at most; more are dropped (the peer retransmits). */
#define INBOX_MSGS_MAX 4096
/* Messages queued to one peer at most. */
#define PEER_QUEUE_MAX 4096
/* Calls in flight to one peer at once (one sender thread and one REQ socket each): a call
 * waits for the peer's reply, so a single sender would put every message one round trip
 * behind the one before it (ACCEPTs of concurrent proposals, LEARNs, heartbeats of every
 * group of the peer). Paxos tolerates the reordering this allows, as it tolerates loss. */
#define PEER_SENDERS 4
/* Deadline of one call to a peer, and how long a peer that failed one is skipped. */
#define PEER_CALL_MS 300
#define PEER_CALL_BYTES_PER_MS 1024
#define PEER_BACKOFF_MS 200
/* A log line about a peer or a dropped message at most this often. */
#define LOG_EVERY_MS 10000
/* Ticks caught up at once after the thread was held up (an fsync, a snapshot), at least:
 * past election_ticks every timer of the core has run out, so more change nothing. */
#define TICK_CATCH_UP_MIN 100
/* A failed group is reopened after this pause. */
#define REOPEN_PAUSE_MS 1000
/* While no leader is known or it is not ready, a client request retries this long, once per
 * tick, before it answers -EAGAIN: an election usually ends within it. */
#define NOT_READY_WAIT_MS 1500
/* One call to a peer carries the messages queued for it, up to these bounds (a larger
 * message goes alone): under load the ACCEPTs, ACCEPTEDs and LEARNs of many proposals and
 * groups share a round trip instead of taking one each. */
#define PEER_BATCH_MSGS_MAX 64
#define PEER_BATCH_BYTES_MAX (1u << 20)

struct peer {
	struct peer *next;
	struct replicas *owner;
	char *url;
	struct net_client *client;
	pthread_t threads[PEER_SENDERS];
	int started;			/* sender threads running */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	struct peer_msg *head, *tail;
	size_t queued;
	int64_t down_until_ms;
	int64_t last_ok_ms;		/* 0: never answered */
	int64_t last_log_ms;
	uint64_t dropped;
	/* How short of space the peer said it is in its last reply, and when (0: never). */
	enum disk_space_level space_level;
	int64_t space_level_ms;
};

struct peer_msg {
	struct peer_msg *next;
	size_t size_bytes;
	uint8_t bytes[];
};

enum inbox_kind {
	INBOX_MESSAGE,
	INBOX_PROPOSE,
	INBOX_READ,
	INBOX_CANCEL,
	INBOX_TRANSFER,
	INBOX_MEMBERS,			/* command: the members wanted, uint32 each */
};

struct inbox_item {
	struct inbox_item *next;
	enum inbox_kind kind;
	uint64_t token;
	struct arena *arena;		/* MESSAGE: owns the decoded message */
	struct paxos_msg msg;
	uint32_t transfer_to;
	size_t command_bytes;
	uint8_t command[];		/* PROPOSE */
};

struct waiter {
	struct waiter *next;
	uint64_t token;
	pthread_cond_t done_cond;
	bool done;
	int status;
	int apply_status;
	uint32_t leader_hint;
	uint8_t result[GROUP_RESULT_BYTES_MAX];
	size_t result_bytes;
};

struct member {
	uint32_t id;
	char address[REPLICAS_ADDRESS_BYTES];
	struct peer *peer;		/* NULL for self or an address too long */
};

struct hosted {
	struct replicas *owner;
	uint64_t table_id;
	uint64_t partition_id;
	uint32_t self_id;
	char wal_dir[PATH_MAX];
	struct store_group sg;		/* its range and epoch: the replicated ones */
	bool sg_ready;			/* sg initialised */
	struct group_sm sm;
	struct group_config config;
	struct group *group;		/* the thread's; NULL while failed and not reopened */
	pthread_t thread;
	bool started;
	int refs;			/* under owner->lock */
	bool seen;			/* replicas_assign: still assigned */
	bool orphan_warned;		/* logged once: neither assigned nor retired */
	bool handing_off;		/* under lock: replicas_hand_off asked it to step down */
	int64_t space_hand_off_ms;	/* under lock: last hand-off for want of space; 0: none */

	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	struct inbox_item *head, *tail;
	size_t inbox_msgs;
	struct waiter *waiters;
	uint64_t next_token;
	struct member members[PAXOS_MEMBERS_MAX];
	size_t member_count;
	struct group_status status;
	bool has_status;
	int64_t last_log_ms;
};

struct replicas {
	struct store *store;
	struct replicas_options options;
	char groups_dir[PATH_MAX];
	pthread_mutex_t lock;
	pthread_cond_t released;	/* a hosted group's reference was dropped */
	struct hosted **hosted;
	size_t hosted_count;
	size_t hosted_capacity;
	struct peer *peers;
	uint32_t self_id;
	int waiting;			/* client requests in replicas_submit, under lock */
};

/* ------------------------------------------------------------------ helpers */

static int cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	int err = pthread_condattr_init(&attr);

	if (err)
		return -err;
	err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return -err;
}

/* Waits on cond until deadline_ms (monotonic) at most. */
static void cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms)
{
	struct timespec until;

	until.tv_sec = deadline_ms / 1000;
	until.tv_nsec = (deadline_ms % 1000) * 1000000L;
	pthread_cond_timedwait(cond, lock, &until);
}

/* mkdir that also makes the new name durable (fsync of the parent). */
static int make_dir_synced(const char *path, const char *parent)
{
	int fd, err = 0;

	if (mkdir(path, 0755) < 0) {
		if (errno == EEXIST)
			return 0;
		return -errno;
	}
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

/* Removes a WAL directory: its files, itself, then syncs the parent. */
static int remove_dir_synced(const char *path, const char *parent)
{
	const struct io *io = io_posix();
	char **names = NULL, file[PATH_MAX];
	size_t count = 0;
	int err;

	err = io->dir_list(io->ctx, path, &names, &count);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	for (size_t i = 0; i < count && !err; i++) {
		if (snprintf(file, sizeof(file), "%s/%s", path, names[i]) >= (int)sizeof(file))
			err = -ENAMETOOLONG;
		else
			err = io->path_unlink(io->ctx, file);
	}
	io_names_free(names, count);
	if (err)
		return err;
	if (rmdir(path) < 0)
		return -errno;
	return io->dir_sync(io->ctx, parent);
}

/* ------------------------------------------------------------------- peers */

static void peer_drop_queue(struct peer *peer)
{
	while (peer->head) {
		struct peer_msg *m = peer->head;

		peer->head = m->next;
		free(m);
		peer->dropped++;
	}
	peer->tail = NULL;
	peer->queued = 0;
}

static void peer_log(struct peer *peer, const char *what, const char *why)
{
	int64_t now_ms = clock_monotonic_ms();

	pthread_mutex_lock(&peer->lock);
	if (peer->last_log_ms && now_ms - peer->last_log_ms < LOG_EVERY_MS) {
		pthread_mutex_unlock(&peer->lock);
		return;
	}
	peer->last_log_ms = now_ms;
	pthread_mutex_unlock(&peer->lock);
	log_warn("peer %s: %s: %s", peer->url, what, why);
}

/* Detaches the head of the queue and what may share its call. Called with peer->lock
 * held and the queue not empty. */
static struct peer_msg *peer_take_batch_locked(struct peer *peer, size_t *count)
{
	struct peer_msg *first = peer->head, *last = first;
	size_t n = 1, total_bytes = first->size_bytes;

	while (last->next && n < PEER_BATCH_MSGS_MAX &&
	       total_bytes + last->next->size_bytes <= PEER_BATCH_BYTES_MAX) {
		last = last->next;
		total_bytes += last->size_bytes;
		n++;
	}
	peer->head = last->next;
	if (!peer->head)
		peer->tail = NULL;
	last->next = NULL;
	peer->queued -= n;
	*count = n;
	return first;
}

/* The Request carrying the count messages of msgs (paxos_envelope.h). Frees msgs; NULL
 * when out of memory. */
static uint8_t *peer_envelope(struct peer_msg *msgs, size_t count, size_t *size_bytes)
{
	const uint8_t *messages[PEER_BATCH_MSGS_MAX] = { NULL };
	size_t sizes[PEER_BATCH_MSGS_MAX] = { 0 }, n = 0;
	uint8_t *out;

	for (struct peer_msg *m = msgs; m && n < count; m = m->next, n++) {
		messages[n] = m->bytes;
		sizes[n] = m->size_bytes;
	}
	out = paxos_envelope_pack(messages, sizes, n, size_bytes);
	while (msgs) {
		struct peer_msg *next = msgs->next;

		free(msgs);
		msgs = next;
	}
	return out;
}

/* The deadline of a call carrying size_bytes: PEER_CALL_MS, and a millisecond more per
 * PEER_CALL_BYTES_PER_MS. A 1 MiB ACCEPT must not time out, be dropped and be resent for
 * ever on a slow peer (a busy machine, a sanitizer build); small calls still find a dead
 * peer fast. */
static int64_t peer_call_ms(size_t size_bytes)
{
	return PEER_CALL_MS + (int64_t)(size_bytes / PEER_CALL_BYTES_PER_MS);
}

static void *peer_main(void *arg)
{
	struct peer *peer = arg;

	pthread_setname_np(pthread_self(), "peer");	/* for top -H and perf */

	for (;;) {
		struct peer_msg *msgs;
		void *reply = NULL;
		size_t reply_bytes = 0, count, request_bytes = 0;
		Quorum__Response *response;
		uint8_t *request;
		int err;

		pthread_mutex_lock(&peer->lock);
		while (!peer->stop && !peer->head)
			pthread_cond_wait(&peer->wake, &peer->lock);
		if (peer->stop) {
			pthread_mutex_unlock(&peer->lock);
			break;
		}
		msgs = peer_take_batch_locked(peer, &count);
		pthread_mutex_unlock(&peer->lock);

		request = peer_envelope(msgs, count, &request_bytes);
		if (!request) {
			pthread_mutex_lock(&peer->lock);
			peer->dropped += count;
			pthread_mutex_unlock(&peer->lock);
			continue;
		}
		err = net_client_call(peer->client, request, request_bytes,
				      clock_monotonic_ms() + peer_call_ms(request_bytes), &reply,
				      &reply_bytes);
		free(request);
		if (err < 0) {
			/* Unreachable: skip it for a moment rather than queue behind a timeout. */
			pthread_mutex_lock(&peer->lock);
			peer->down_until_ms = clock_monotonic_ms() + PEER_BACKOFF_MS;
			peer_drop_queue(peer);
			pthread_mutex_unlock(&peer->lock);
			peer_log(peer, "dropping its Paxos messages while it does not answer",
				 err == -ETIMEDOUT ? "no answer" : strerror(-err));
			continue;
		}
		response = quorum__response__unpack(NULL, reply_bytes, reply);
		net_message_free(reply);
		pthread_mutex_lock(&peer->lock);
		peer->last_ok_ms = clock_monotonic_ms();
		if (response) {
			peer->space_level = response->has_disk_space_level &&
					    response->disk_space_level <= DISK_SPACE_NO_LOG ?
					    (enum disk_space_level)response->disk_space_level :
					    DISK_SPACE_OK;
			peer->space_level_ms = peer->last_ok_ms;
		}
		pthread_mutex_unlock(&peer->lock);
		if (!response) {
			peer_log(peer, "Paxos message", "malformed reply");
			continue;
		}
		if (response->status < 0 && response->status != -ENOENT &&
		    response->status != -ENOSPC)
			/* -ENOENT: the peer did not open the group yet (its heartbeat comes);
			 * -ENOSPC: it is short of space and logs that itself. */
			peer_log(peer, "refused a Paxos message",
				 response->message ? response->message : strerror(-response->status));
		quorum__response__free_unpacked(response, NULL);
	}
	return NULL;
}

/* The sender of url, made on first use. Called with replicas->lock held. */
static struct peer *peer_get_locked(struct replicas *r, const char *url)
{
	struct peer *peer;

	for (peer = r->peers; peer; peer = peer->next)
		if (strcmp(peer->url, url) == 0)
			return peer;
	peer = calloc(1, sizeof(*peer));
	if (!peer)
		return NULL;
	peer->owner = r;
	peer->url = strdup(url);
	if (!peer->url || net_client_new(url, &peer->client) < 0)
		goto fail;
	if (pthread_mutex_init(&peer->lock, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&peer->wake, NULL) != 0) {
		pthread_mutex_destroy(&peer->lock);
		goto fail;
	}
	for (int i = 0; i < PEER_SENDERS; i++) {
		if (pthread_create(&peer->threads[i], NULL, peer_main, peer) != 0)
			break;
		peer->started++;
	}
	if (!peer->started) {
		pthread_cond_destroy(&peer->wake);
		pthread_mutex_destroy(&peer->lock);
		goto fail;
	}
	peer->next = r->peers;
	r->peers = peer;
	return peer;
fail:
	if (peer->client)
		net_client_free(peer->client);
	free(peer->url);
	free(peer);
	return NULL;
}

/* Queues a PaxosMessage's bytes for the peer, or drops them (full queue, peer just
 * failed). */
static void peer_send(struct peer *peer, const uint8_t *body, size_t body_bytes)
{
	struct peer_msg *m;

	pthread_mutex_lock(&peer->lock);
	if (peer->queued >= PEER_QUEUE_MAX || clock_monotonic_ms() < peer->down_until_ms) {
		peer->dropped++;
		pthread_mutex_unlock(&peer->lock);
		return;
	}
	pthread_mutex_unlock(&peer->lock);
	m = malloc(sizeof(*m) + body_bytes);
	if (!m)
		return;
	m->next = NULL;
	m->size_bytes = body_bytes;
	memcpy(m->bytes, body, body_bytes);
	pthread_mutex_lock(&peer->lock);
	if (peer->tail)
		peer->tail->next = m;
	else
		peer->head = m;
	peer->tail = m;
	peer->queued++;
	pthread_cond_signal(&peer->wake);
	pthread_mutex_unlock(&peer->lock);
}

static void peer_free(struct peer *peer)
{
	pthread_mutex_lock(&peer->lock);
	peer->stop = true;
	pthread_cond_broadcast(&peer->wake);
	pthread_mutex_unlock(&peer->lock);
	for (int i = 0; i < peer->started; i++)
		pthread_join(peer->threads[i], NULL);
	peer_drop_queue(peer);
	net_client_free(peer->client);
	pthread_cond_destroy(&peer->wake);
	pthread_mutex_destroy(&peer->lock);
	free(peer->url);
	free(peer);
}

/* ---------------------------------------------------------- group callbacks */

/* Queues msg, encoded by paxos_wire, for its peer (peer_envelope wraps it in a Request). */
static void hosted_send(void *ctx, const struct paxos_msg *msg)
{
	struct hosted *h = ctx;
	struct paxos_wire_group id = { h->table_id, h->partition_id };
	struct peer *peer = NULL;
	uint8_t *body;
	size_t body_bytes;
	struct arena *arena;

	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->member_count; i++)
		if (h->members[i].id == msg->to)
			peer = h->members[i].peer;
	pthread_mutex_unlock(&h->lock);
	if (!peer)
		return;		/* a member we have no address for: dropped */
	arena = arena_new();
	if (!arena)
		return;
	if (paxos_wire_encode(&id, msg, arena, &body, &body_bytes) == 0)
		peer_send(peer, body, body_bytes);
	arena_free(arena);
}

/* Completes the waiter of token, if it still waits. Called with h->lock held. */
static void waiter_complete_locked(struct hosted *h, uint64_t token, int status,
				   int apply_status, uint32_t leader_hint, const uint8_t *result,
				   size_t result_bytes)
{
	for (struct waiter **p = &h->waiters; *p; p = &(*p)->next) {
		struct waiter *w = *p;

		if (w->token != token)
			continue;
		*p = w->next;
		w->done = true;
		w->status = status;
		w->apply_status = apply_status;
		w->leader_hint = leader_hint;
		if (result_bytes > sizeof(w->result))
			result_bytes = 0;
		if (result_bytes)
			memcpy(w->result, result, result_bytes);
		w->result_bytes = result_bytes;
		pthread_cond_signal(&w->done_cond);
		return;
	}
}

static void hosted_proposal_done(void *ctx, uint64_t token, int status, int apply_status,
				 const uint8_t *result, size_t result_bytes)
{
	struct hosted *h = ctx;

	pthread_mutex_lock(&h->lock);
	waiter_complete_locked(h, token, status, apply_status, 0, result, result_bytes);
	pthread_mutex_unlock(&h->lock);
}

static void hosted_read_ready(void *ctx, uint64_t token)
{
	struct hosted *h = ctx;

	pthread_mutex_lock(&h->lock);
	waiter_complete_locked(h, token, 0, 0, 0, NULL, 0);
	pthread_mutex_unlock(&h->lock);
}

/* ------------------------------------------------------------- group thread */

static void inbox_item_free(struct inbox_item *item)
{
	if (item->arena)
		arena_free(item->arena);
	free(item);
}

/* Fails every waiter: the group is closing or failed. A proposal's outcome is unknown. */
static void waiters_fail_locked(struct hosted *h)
{
	while (h->waiters) {
		struct waiter *w = h->waiters;

		waiter_complete_locked(h, w->token, -ETIMEDOUT, 0, 0, NULL, 0);
	}
}

static int hosted_open_group(struct hosted *h)
{
	struct group_callbacks callbacks = {
		.ctx = h,
		.send = hosted_send,
		.proposal_done = hosted_proposal_done,
		.read_ready = hosted_read_ready,
	};

	h->config.incarnation = (uint32_t)(clock_realtime_ns() / 1000000);
	h->config.seed = ((uint64_t)h->self_id << 32) ^ (uint64_t)clock_realtime_ns() ^
			 h->partition_id;
	return group_open(io_posix(), h->wal_dir, &h->config, &h->sm, &callbacks, &h->group);
}

/* One step of a replica move; the waiter gets the outcome and the members in force. */
static void hosted_change_members(struct hosted *h, struct inbox_item *item)
{
	uint32_t wanted[PAXOS_MEMBERS_MAX], hint = 0;
	size_t count = item->command_bytes / sizeof(wanted[0]);
	struct group_status status;
	int rc = -EINVAL;

	if (count <= PAXOS_MEMBERS_MAX && item->command_bytes % sizeof(wanted[0]) == 0) {
		memcpy(wanted, item->command, item->command_bytes);
		rc = group_change_members(h->group, wanted, count, &hint);
	}
	group_status(h->group, &status);
	pthread_mutex_lock(&h->lock);
	waiter_complete_locked(h, item->token, rc, 0, hint, (const uint8_t *)status.paxos.members,
			       status.paxos.member_count * sizeof(status.paxos.members[0]));
	pthread_mutex_unlock(&h->lock);
}

static void hosted_handle_item(struct hosted *h, struct inbox_item *item)
{
	uint32_t hint = 0;
	int rc;

	if (!h->group) {
		if (item->kind == INBOX_PROPOSE || item->kind == INBOX_READ ||
		    item->kind == INBOX_MEMBERS) {
			pthread_mutex_lock(&h->lock);
			waiter_complete_locked(h, item->token, -EAGAIN, 0, 0, NULL, 0);
			pthread_mutex_unlock(&h->lock);
		}
		return;
	}
	switch (item->kind) {
	case INBOX_MESSAGE:
		group_step(h->group, &item->msg);
		break;
	case INBOX_PROPOSE:
		rc = group_propose(h->group, item->command, item->command_bytes, item->token,
				   &hint);
		if (rc) {
			pthread_mutex_lock(&h->lock);
			waiter_complete_locked(h, item->token, rc, 0, hint, NULL, 0);
			pthread_mutex_unlock(&h->lock);
		}
		break;
	case INBOX_READ:
		rc = group_read(h->group, item->token, &hint);
		if (rc) {
			pthread_mutex_lock(&h->lock);
			waiter_complete_locked(h, item->token, rc, 0, hint, NULL, 0);
			pthread_mutex_unlock(&h->lock);
		}
		break;
	case INBOX_CANCEL:
		group_cancel(h->group, item->token);
		break;
	case INBOX_MEMBERS:
		hosted_change_members(h, item);
		break;
	case INBOX_TRANSFER:
		rc = group_transfer_leadership(h->group, item->transfer_to);
		if (rc && rc != -EREMOTE)
			log_warn("group %" PRIu64 "/%" PRIu64 ": hand-off to %" PRIu32 ": %s",
				 h->table_id, h->partition_id, item->transfer_to, strerror(-rc));
		break;
	}
}

static void *hosted_main(void *arg)
{
	struct hosted *h = arg;
	char name[16];

	snprintf(name, sizeof(name), "g%" PRIu64 "/%" PRIu64, h->table_id % 100000,
		 h->partition_id % 100000);
	pthread_setname_np(pthread_self(), name);	/* for top -H and perf */
	int64_t tick_ms = h->owner->options.tick_ms;
	int64_t next_tick_ms = clock_monotonic_ms() + tick_ms, reopen_ms = 0;
	int64_t catch_up_max = 2 * (int64_t)h->owner->options.election_ticks;

	if (catch_up_max < TICK_CATCH_UP_MIN)
		catch_up_max = TICK_CATCH_UP_MIN;

	/* With nothing in the inbox the thread sleeps a heartbeat interval, not a tick, and
	 * then runs the ticks due: timers are never early, at most a heartbeat late, and an
	 * idle group wakes a third as often. Work wakes it at once, and catches the ticks up
	 * first (below). */
	int64_t idle_wait_ms = tick_ms * (h->config.heartbeat_ticks ? h->config.heartbeat_ticks : 1);

	for (;;) {
		struct inbox_item *items;
		int64_t now_ms, wake_ms = next_tick_ms - tick_ms + idle_wait_ms;

		pthread_mutex_lock(&h->lock);
		while (!h->stop && !h->head && clock_monotonic_ms() < wake_ms)
			cond_wait_until(&h->wake, &h->lock, wake_ms);
		if (h->stop) {
			pthread_mutex_unlock(&h->lock);
			break;
		}
		items = h->head;
		h->head = h->tail = NULL;
		h->inbox_msgs = 0;
		pthread_mutex_unlock(&h->lock);

		/* The core's clock first, then the requests: a strong read checks the lease
		 * against it, and a clock held back by the last cycle's fsyncs would let a
		 * lease that ran out in real time still serve a read. */
		now_ms = clock_monotonic_ms();
		if (now_ms >= next_tick_ms) {
			int64_t due = (now_ms - next_tick_ms) / tick_ms + 1;

			for (int64_t i = 0; h->group && i < due && i < catch_up_max; i++)
				group_tick(h->group);
			next_tick_ms += due * tick_ms;
		}
		while (items) {
			struct inbox_item *next = items->next;

			hosted_handle_item(h, items);
			inbox_item_free(items);
			items = next;
		}
		if (h->group && group_process(h->group) < 0) {
			/* The group failed (WAL or store): close, fail the waiters, reopen. */
			group_close(h->group);
			h->group = NULL;
			reopen_ms = now_ms + REOPEN_PAUSE_MS;
			pthread_mutex_lock(&h->lock);
			waiters_fail_locked(h);
			h->status.failed = true;
			pthread_mutex_unlock(&h->lock);
		}
		if (!h->group && now_ms >= reopen_ms) {
			int err = hosted_open_group(h);

			if (err) {
				h->group = NULL;
				reopen_ms = now_ms + REOPEN_PAUSE_MS;
				log_error("group %" PRIu64 "/%" PRIu64 ": reopening failed: %s",
					  h->table_id, h->partition_id, strerror(-err));
			} else {
				log_info("group %" PRIu64 "/%" PRIu64 " reopened", h->table_id,
					 h->partition_id);
			}
		}
		if (h->group) {
			struct group_status status;

			group_status(h->group, &status);
			/* Leader changes are rare and explain latency spikes: worth a line. */
			if (status.paxos.role == PAXOS_LEADER &&
			    (!h->has_status || h->status.paxos.role != PAXOS_LEADER))
				log_info("group %" PRIu64 "/%" PRIu64 ": leading (round %" PRIu64
					 ", elections started here %" PRIu64 ")", h->table_id,
					 h->partition_id, status.paxos.ballot.round,
					 status.paxos.counters.elections);
			pthread_mutex_lock(&h->lock);
			h->status = status;
			h->has_status = true;
			pthread_mutex_unlock(&h->lock);
		}
	}
	return NULL;
}

/* ------------------------------------------------------------ hosted groups */

static void hosted_free(struct hosted *h)
{
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->lock);
	if (h->started)
		pthread_join(h->thread, NULL);
	pthread_mutex_lock(&h->lock);
	while (h->head) {
		struct inbox_item *item = h->head;

		h->head = item->next;
		inbox_item_free(item);
	}
	waiters_fail_locked(h);
	pthread_mutex_unlock(&h->lock);
	group_close(h->group);
	if (h->sg_ready)
		store_group_destroy(&h->sg);
	pthread_cond_destroy(&h->wake);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Sets the members' addresses and senders from an assignment, adding the members it names
 * that the group does not know yet (a move's new member). Called with r->lock held. */
static void hosted_set_members_locked(struct replicas *r, struct hosted *h,
				      const Quorum__PartitionAssignment *a)
{
	pthread_mutex_lock(&h->lock);
	for (size_t j = 0; j < a->n_replicas; j++) {
		uint64_t id = a->replicas[j]->node_id;
		bool known = false;

		for (size_t i = 0; i < h->member_count; i++)
			known = known || h->members[i].id == id;
		if (!known && id != 0 && id <= UINT32_MAX && h->member_count < PAXOS_MEMBERS_MAX)
			h->members[h->member_count++] = (struct member){ .id = (uint32_t)id };
	}
	for (size_t i = 0; i < h->member_count; i++) {
		struct member *m = &h->members[i];

		for (size_t j = 0; j < a->n_replicas; j++) {
			const Quorum__ReplicaAddress *ra = a->replicas[j];

			if (ra->node_id != m->id || !ra->address ||
			    strlen(ra->address) >= sizeof(m->address) ||
			    strcmp(ra->address, m->address) == 0)
				continue;
			snprintf(m->address, sizeof(m->address), "%s", ra->address);
			m->peer = m->id == h->self_id ? NULL : peer_get_locked(r, ra->address);
		}
	}
	pthread_mutex_unlock(&h->lock);
}

/* Checks an assignment and fills the members; -EINVAL with a log line when it makes no
 * sense for this node. */
static int assignment_members(uint64_t self_id, const Quorum__PartitionAssignment *a,
			      uint32_t *members, size_t *count)
{
	const Quorum__PartitionInfo *p = a->partition;
	bool self = false;

	*count = 0;
	if (!p || a->table_id == 0 || p->n_replicas == 0 || p->n_replicas > PAXOS_MEMBERS_MAX ||
	    p->hash_first > p->hash_last)
		return -EINVAL;
	for (size_t i = 0; i < p->n_replicas; i++) {
		if (p->replicas[i] == 0 || p->replicas[i] > UINT32_MAX)
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (p->replicas[j] == p->replicas[i])
				return -EINVAL;
		members[i] = (uint32_t)p->replicas[i];
		self = self || p->replicas[i] == self_id;
	}
	*count = p->n_replicas;
	return self ? 0 : -EINVAL;
}

static int hosted_new(struct replicas *r, uint32_t self_id, const Quorum__PartitionAssignment *a,
		      struct hosted **out)
{
	const Quorum__PartitionInfo *p = a->partition;
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count;
	struct hosted *h;
	uint32_t election = r->options.election_ticks;
	int err;

	*out = NULL;
	err = assignment_members(self_id, a, members, &member_count);
	if (err)
		return err;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->owner = r;
	h->table_id = a->table_id;
	h->partition_id = p->id;
	h->self_id = self_id;
	h->next_token = 1;
	if (snprintf(h->wal_dir, sizeof(h->wal_dir), "%s/%" PRIu64 "-%" PRIu64, r->groups_dir,
		     h->table_id, h->partition_id) >= (int)sizeof(h->wal_dir)) {
		free(h);
		return -ENAMETOOLONG;
	}
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h);
		return -ENOMEM;
	}
	err = cond_init_monotonic(&h->wake);
	if (err) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		return err;
	}
	for (size_t i = 0; i < member_count; i++)
		h->members[i].id = members[i];
	h->member_count = member_count;

	if (store_group_init(&h->sg, r->store, h->table_id, h->partition_id, p->hash_first,
			     p->hash_last, p->epoch) < 0) {
		pthread_cond_destroy(&h->wake);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return -ENOMEM;
	}
	h->sg_ready = true;
	h->sg.joining = a->has_joining && a->joining;
	store_group_sm(&h->sg, &h->sm);
	group_config_init(&h->config);
	h->config.id.table_id = h->table_id;
	h->config.id.partition_id = h->partition_id;
	h->config.self_id = self_id;
	memcpy(h->config.members, members, member_count * sizeof(members[0]));
	h->config.member_count = member_count;
	/* The lease ends well before another node may elect (lease < election), heartbeats
	 * renew it several times per lease. */
	h->config.election_ticks = election;
	h->config.lease_ticks = election * 3 / 5 ? election * 3 / 5 : 1;
	h->config.heartbeat_ticks = election / 6 ? election / 6 : 1;

	err = make_dir_synced(r->groups_dir, r->options.data_dir);
	if (!err)
		err = make_dir_synced(h->wal_dir, r->groups_dir);
	if (!err)
		err = hosted_open_group(h);
	if (err) {
		log_error("group %" PRIu64 "/%" PRIu64 ": cannot open in %s: %s", h->table_id,
			  h->partition_id, h->wal_dir, strerror(-err));
		hosted_free(h);
		return err;
	}
	if (pthread_create(&h->thread, NULL, hosted_main, h) != 0) {
		hosted_free(h);
		return -ENOMEM;
	}
	h->started = true;
	*out = h;
	return 0;
}

/* Deletes the group's items, sessions and state (a deleted table is empty, so this is
 * short), then its WAL. */
static int hosted_remove_data(struct replicas *r, uint64_t table_id, uint64_t partition_id,
			      uint64_t hash_first, uint64_t hash_last, const char *wal_dir)
{
	int err = store_group_remove(r->store, table_id, partition_id, hash_first, hash_last);

	return err ? err : remove_dir_synced(wal_dir, r->groups_dir);
}

/* Takes a reference on the hosted group of (table, hash) or (table, partition). */
static struct hosted *hosted_find(struct replicas *r, uint64_t table_id, bool by_partition,
				  uint64_t value)
{
	struct hosted *found = NULL;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->hosted_count && !found; i++) {
		struct hosted *h = r->hosted[i];

		if (h->table_id != table_id)
			continue;
		if (by_partition) {
			if (h->partition_id == value)
				found = h;
		} else {
			struct store_group_route route;

			store_group_route(&h->sg, &route);
			if (value >= route.hash_first && value <= route.hash_last)
				found = h;
		}
	}
	if (found)
		found->refs++;
	pthread_mutex_unlock(&r->lock);
	return found;
}

static void hosted_release(struct replicas *r, struct hosted *h)
{
	pthread_mutex_lock(&r->lock);
	h->refs--;
	if (h->refs == 0)
		pthread_cond_broadcast(&r->released);
	pthread_mutex_unlock(&r->lock);
}

/* Takes h out of the list (r->lock held), waits for its users and frees it. */
static void hosted_retire_locked(struct replicas *r, size_t index)
{
	struct hosted *h = r->hosted[index];

	memmove(&r->hosted[index], &r->hosted[index + 1],
		(r->hosted_count - index - 1) * sizeof(r->hosted[0]));
	r->hosted_count--;
	/* Users wake from their waits once the thread stops and fails the waiters. */
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	waiters_fail_locked(h);
	pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->lock);
	while (h->refs > 0)
		pthread_cond_wait(&r->released, &r->lock);
	pthread_mutex_unlock(&r->lock);
	hosted_free(h);
	pthread_mutex_lock(&r->lock);
}

/* ------------------------------------------------------------------- public */

int replicas_new(struct store *store, const struct replicas_options *options,
		 struct replicas **out)
{
	struct replicas *r;
	int err;

	*out = NULL;
	if (!store || !options->data_dir || options->tick_ms < 1 || options->election_ticks < 2 ||
	    options->waiting_max < 1)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->store = store;
	r->options = *options;
	if (snprintf(r->groups_dir, sizeof(r->groups_dir), "%s/groups", options->data_dir) >=
	    (int)sizeof(r->groups_dir)) {
		free(r);
		return -ENAMETOOLONG;
	}
	if (pthread_mutex_init(&r->lock, NULL) != 0) {
		free(r);
		return -ENOMEM;
	}
	err = pthread_cond_init(&r->released, NULL);
	if (err) {
		pthread_mutex_destroy(&r->lock);
		free(r);
		return -err;
	}
	*out = r;
	return 0;
}

void replicas_close_all(struct replicas *r)
{
	pthread_mutex_lock(&r->lock);
	while (r->hosted_count)
		hosted_retire_locked(r, r->hosted_count - 1);
	pthread_mutex_unlock(&r->lock);
}

void replicas_free(struct replicas *r)
{
	if (!r)
		return;
	replicas_close_all(r);
	while (r->peers) {
		struct peer *peer = r->peers;

		r->peers = peer->next;
		peer_free(peer);
	}
	free(r->hosted);
	pthread_cond_destroy(&r->released);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Whether a hosted group of the assignment's table covers part of its range while the
 * store holds no state of the assigned group yet. Called with r->lock held. */
static bool hosted_overlap_locked(struct replicas *r, const Quorum__PartitionAssignment *as)
{
	bool exists = false;

	for (size_t i = 0; i < r->hosted_count; i++) {
		struct hosted *h = r->hosted[i];
		struct store_group_route route;

		if (h->table_id != as->table_id)
			continue;
		store_group_route(&h->sg, &route);
		if (route.hash_first <= as->partition->hash_last &&
		    as->partition->hash_first <= route.hash_last)
			return store_group_exists(r->store, as->table_id, as->partition->id,
						  &exists) < 0 || !exists;
	}
	return false;
}

/* Whether retired names h. */
static bool hosted_retired(const struct hosted *h, Quorum__GroupRef *const *retired,
			   size_t retired_count)
{
	for (size_t i = 0; i < retired_count; i++)
		if (retired[i]->table_id == h->table_id &&
		    retired[i]->partition_id == h->partition_id)
			return true;
	return false;
}

int replicas_assign(struct replicas *r, uint64_t self_id,
		    Quorum__PartitionAssignment *const *assignments, size_t count,
		    Quorum__GroupRef *const *retired, size_t retired_count)
{
	const Quorum__PartitionAssignment **opening;
	size_t opening_count = 0;
	int first_err = 0;

	if (self_id == 0 || self_id > UINT32_MAX) {
		log_error("node id %" PRIu64 " cannot be a Paxos member id (32 bits)", self_id);
		return -EINVAL;
	}
	opening = calloc(count ? count : 1, sizeof(*opening));
	if (!opening)
		return -ENOMEM;
	pthread_mutex_lock(&r->lock);
	r->self_id = (uint32_t)self_id;
	for (size_t i = 0; i < r->hosted_count; i++)
		r->hosted[i]->seen = false;
	for (size_t a = 0; a < count; a++) {
		const Quorum__PartitionAssignment *as = assignments[a];
		struct hosted *h = NULL;

		if (!as->partition)
			continue;
		for (size_t i = 0; i < r->hosted_count && !h; i++)
			if (r->hosted[i]->table_id == as->table_id &&
			    r->hosted[i]->partition_id == as->partition->id)
				h = r->hosted[i];
		if (h) {
			h->seen = true;
			hosted_set_members_locked(r, h, as);
		} else if (!hosted_overlap_locked(r, as)) {
			opening[opening_count++] = as;
		}
		/* Else a child of a split this node's replica of the parent has not applied
		 * yet: it opens once the parent's range no longer covers it. */
	}
	pthread_mutex_unlock(&r->lock);

	/* Opening a group creates its WAL (fsyncs): without r->lock, which every request
	 * and every Paxos message of the node's other groups takes to find its group. */
	for (size_t a = 0; a < opening_count; a++) {
		const Quorum__PartitionAssignment *as = opening[a];
		struct hosted *h;
		int err = hosted_new(r, (uint32_t)self_id, as, &h);

		if (err) {
			if (err == -EINVAL)
				log_warn("assignment of table %" PRIu64 " partition %" PRIu64
					 " makes no sense for node %" PRIu64 "; skipped",
					 as->table_id, as->partition->id, self_id);
			first_err = first_err ? first_err : err;
			continue;
		}
		pthread_mutex_lock(&r->lock);
		if (r->hosted_count == r->hosted_capacity) {
			size_t cap = r->hosted_capacity ? 2 * r->hosted_capacity : 16;
			struct hosted **grown = realloc(r->hosted, cap * sizeof(*grown));

			if (!grown) {
				pthread_mutex_unlock(&r->lock);
				hosted_free(h);
				first_err = first_err ? first_err : -ENOMEM;
				continue;
			}
			r->hosted = grown;
			r->hosted_capacity = cap;
		}
		r->hosted[r->hosted_count++] = h;
		h->seen = true;
		hosted_set_members_locked(r, h, as);
		pthread_mutex_unlock(&r->lock);
		log_info("hosting group %" PRIu64 "/%" PRIu64 " (%zu members%s)", h->table_id,
			 h->partition_id, h->member_count, h->sg.joining ? ", joining" : "");
	}
	free(opening);

	pthread_mutex_lock(&r->lock);
	for (size_t i = r->hosted_count; i-- > 0;) {
		struct hosted *h = r->hosted[i];
		uint64_t table_id = h->table_id, partition_id = h->partition_id;
		struct store_group_route route;
		char wal_dir[PATH_MAX];
		int err;

		if (h->seen)
			continue;
		store_group_route(&h->sg, &route);
		if (!hosted_retired(h, retired, retired_count)) {
			if (!h->orphan_warned)
				log_warn("group %" PRIu64 "/%" PRIu64 " is hosted here but meta "
					 "neither assigns nor retires it: kept", table_id,
					 partition_id);
			h->orphan_warned = true;
			continue;
		}
		memcpy(wal_dir, h->wal_dir, sizeof(wal_dir));
		hosted_retire_locked(r, i);
		pthread_mutex_unlock(&r->lock);
		err = hosted_remove_data(r, table_id, partition_id, route.hash_first,
					 route.hash_last, wal_dir);
		pthread_mutex_lock(&r->lock);
		if (err) {
			log_error("group %" PRIu64 "/%" PRIu64 " closed, but removing its data "
				  "failed: %s", table_id, partition_id, strerror(-err));
			first_err = first_err ? first_err : err;
		} else {
			log_info("group %" PRIu64 "/%" PRIu64 " no longer assigned: closed and "
				 "removed", table_id, partition_id);
		}
		if (i > r->hosted_count)
			i = r->hosted_count;
	}
	pthread_mutex_unlock(&r->lock);
	return first_err;
}

/* The group's replicated range, epoch and children, for meta to follow splits. */
static int report_route(struct hosted *h, Quorum__GroupReport *g, struct arena *arena)
{
	struct store_group_route route;

	store_group_route(&h->sg, &route);
	g->has_hash_first = g->has_hash_last = g->has_epoch = true;
	g->hash_first = route.hash_first;
	g->hash_last = route.hash_last;
	g->epoch = route.epoch;
	if (route.child_count == 0)
		return 0;
	g->children = arena_alloc(arena, route.child_count * sizeof(*g->children));
	if (!g->children)
		return -ENOMEM;
	for (size_t i = 0; i < route.child_count; i++) {
		Quorum__SplitChild *c = arena_alloc(arena, sizeof(*c));

		if (!c)
			return -ENOMEM;
		quorum__split_child__init(c);
		c->partition_id = route.children[i].partition_id;
		c->hash_first = route.children[i].hash_first;
		c->hash_last = route.children[i].hash_last;
		c->epoch = route.children[i].epoch;
		g->children[g->n_children++] = c;
	}
	return 0;
}

int replicas_report(struct replicas *r, struct arena *arena, Quorum__GroupReport ***reports,
		    size_t *count)
{
	Quorum__GroupReport **out;
	size_t n = 0;
	int err = 0;

	*reports = NULL;
	*count = 0;
	pthread_mutex_lock(&r->lock);
	out = arena_alloc(arena, (r->hosted_count ? r->hosted_count : 1) * sizeof(*out));
	if (!out) {
		pthread_mutex_unlock(&r->lock);
		return -ENOMEM;
	}
	for (size_t i = 0; i < r->hosted_count; i++) {
		struct hosted *h = r->hosted[i];
		Quorum__GroupReport *g = arena_alloc(arena, sizeof(*g));
		struct group_status s;
		bool has;

		if (!g) {
			err = -ENOMEM;
			break;
		}
		pthread_mutex_lock(&h->lock);
		s = h->status;
		has = h->has_status;
		pthread_mutex_unlock(&h->lock);
		quorum__group_report__init(g);
		g->table_id = h->table_id;
		g->partition_id = h->partition_id;
		err = report_route(h, g, arena);
		if (err)
			break;
		if (has && !s.failed) {
			g->role = s.paxos.role;
			g->has_leader_id = true;
			g->leader_id = s.paxos.leader_id;
			g->has_ballot_round = true;
			g->ballot_round = s.paxos.promised.round;
			g->has_ballot_node_id = true;
			g->ballot_node_id = s.paxos.promised.node_id;
			g->has_commit_slot = true;
			g->commit_slot = s.paxos.commit_slot;
			g->has_applied_slot = true;
			g->applied_slot = s.paxos.applied_slot;
			g->has_lease_valid = true;
			g->lease_valid = s.paxos.lease_valid;
		}
		out[n++] = g;
	}
	pthread_mutex_unlock(&r->lock);
	*reports = out;
	*count = n;
	return err;
}

/* Whether stepping msg makes this replica write log entries or a snapshot to disk. */
static bool paxos_msg_needs_space(const struct paxos_msg *msg)
{
	return ((msg->type == PAXOS_MSG_ACCEPT || msg->type == PAXOS_MSG_LEARN) &&
		msg->entry_count > 0) || msg->type == PAXOS_MSG_SNAPSHOT;
}

void replicas_handle_paxos(struct replicas *r, const Quorum__PaxosMessage *message,
			   Quorum__Response *response, struct arena *arena)
{
	enum disk_space_level level = DISK_SPACE_OK;
	struct inbox_item *item;
	struct hosted *h;
	size_t packed_bytes;
	uint8_t *packed;
	struct paxos_wire_group id;
	int err;

	/* Every reply tells the sender how short of space this node is (its leader's
	 * replicas_check_space reads it). */
	if (r->options.disk_space) {
		level = disk_space_level(r->options.disk_space, clock_monotonic_ms());
		response->has_disk_space_level = true;
		response->disk_space_level = level;
	}
	h = hosted_find(r, message->table_id, true, message->partition_id);
	if (!h) {
		rpc_fail(response, arena, -ENOENT, "group %" PRIu64 "/%" PRIu64
			 " is not hosted on this node", message->table_id, message->partition_id);
		return;
	}
	item = calloc(1, sizeof(*item));
	if (item)
		item->arena = arena_new();
	if (!item || !item->arena) {
		free(item);
		hosted_release(r, h);
		rpc_fail(response, arena, -ENOMEM, "out of memory");
		return;
	}
	/* Packed again and decoded by paxos_wire, which checks every bound, into an arena the
	 * group thread owns until it stepped the message. */
	packed_bytes = quorum__paxos_message__get_packed_size(message);
	packed = arena_alloc(item->arena, packed_bytes ? packed_bytes : 1);
	err = packed ? 0 : -ENOMEM;
	if (!err) {
		quorum__paxos_message__pack(message, packed);
		err = paxos_wire_decode(packed, packed_bytes, item->arena, &id, &item->msg);
	}
	if (!err && item->msg.to != h->self_id)
		err = -EINVAL;
	/* Below the last reserve, entries are not persisted at all (disk_space.h): the
	 * replica falls behind instead of failing its WAL, and catches up later. */
	if (!err && disk_space_refuses(level, DISK_SPACE_USE_LOG) &&
	    paxos_msg_needs_space(&item->msg))
		err = -ENOSPC;
	if (err) {
		int64_t now_ms = clock_monotonic_ms();
		bool log_it;

		pthread_mutex_lock(&h->lock);
		log_it = !h->last_log_ms || now_ms - h->last_log_ms >= LOG_EVERY_MS;
		if (log_it)
			h->last_log_ms = now_ms;
		pthread_mutex_unlock(&h->lock);
		if (log_it)
			log_warn("group %" PRIu64 "/%" PRIu64 ": Paxos message from node %" PRIu32
				 " refused: %s", h->table_id, h->partition_id, message->from,
				 err == -EINVAL ? "malformed" : strerror(-err));
		inbox_item_free(item);
		hosted_release(r, h);
		rpc_fail(response, arena, err, "group %" PRIu64 "/%" PRIu64 ": %s", h->table_id,
			 h->partition_id, err == -EINVAL ? "malformed Paxos message"
							 : strerror(-err));
		return;
	}
	item->kind = INBOX_MESSAGE;
	pthread_mutex_lock(&h->lock);
	if (h->stop || h->inbox_msgs >= INBOX_MSGS_MAX) {
		pthread_mutex_unlock(&h->lock);
		inbox_item_free(item);
		hosted_release(r, h);
		rpc_fail(response, arena, -EAGAIN, "group inbox full: message dropped");
		return;
	}
	if (h->tail)
		h->tail->next = item;
	else
		h->head = item;
	h->tail = item;
	h->inbox_msgs++;
	pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->lock);
	hosted_release(r, h);
}

/* Queues item (taken over) to h's thread. Called with h->lock held. */
void replicas_handle_paxos_batch(struct replicas *r, const Quorum__PaxosBatch *batch,
				 Quorum__Response *response, struct arena *arena)
{
	for (size_t i = 0; i < batch->n_messages; i++) {
		Quorum__Response one = QUORUM__RESPONSE__INIT;

		replicas_handle_paxos(r, batch->messages[i], &one, arena);
		if (one.status < 0 && response->status == 0) {
			response->status = one.status;
			response->message = one.message;
		}
		response->has_disk_space_level = one.has_disk_space_level;
		response->disk_space_level = one.disk_space_level;
	}
}

static void inbox_push_locked(struct hosted *h, struct inbox_item *item)
{
	item->next = NULL;
	if (h->tail)
		h->tail->next = item;
	else
		h->head = item;
	h->tail = item;
	pthread_cond_signal(&h->wake);
}

/* Fills the leader hint of an -EREMOTE outcome from the assignment's addresses. */
static void outcome_leader(struct hosted *h, uint32_t leader, struct replicas_outcome *outcome)
{
	outcome->leader_id = leader;
	outcome->leader_address[0] = '\0';
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->member_count; i++)
		if (h->members[i].id == leader)
			snprintf(outcome->leader_address, sizeof(outcome->leader_address), "%s",
				 h->members[i].address);
	pthread_mutex_unlock(&h->lock);
}

/* One proposal or read through the group thread; waits until deadline_ms. */
static int hosted_submit(struct hosted *h, enum inbox_kind kind, const uint8_t *command,
			 size_t command_bytes, int64_t deadline_ms,
			 struct replicas_outcome *outcome)
{
	struct inbox_item *item, *cancel;
	struct waiter w;
	int status;

	item = calloc(1, sizeof(*item) + command_bytes);
	cancel = calloc(1, sizeof(*cancel));
	if (!item || !cancel) {
		free(item);
		free(cancel);
		return -ENOMEM;
	}
	memset(&w, 0, sizeof(w));
	if (cond_init_monotonic(&w.done_cond)) {
		free(item);
		free(cancel);
		return -ENOMEM;
	}
	item->kind = kind;
	item->command_bytes = command_bytes;
	if (command_bytes)
		memcpy(item->command, command, command_bytes);
	pthread_mutex_lock(&h->lock);
	if (h->stop) {
		pthread_mutex_unlock(&h->lock);
		pthread_cond_destroy(&w.done_cond);
		free(item);
		free(cancel);
		return -ESHUTDOWN;	/* closing: no use retrying on this group */
	}
	w.token = h->next_token++;
	item->token = w.token;
	w.next = h->waiters;
	h->waiters = &w;
	inbox_push_locked(h, item);
	while (!w.done && clock_monotonic_ms() < deadline_ms)
		cond_wait_until(&w.done_cond, &h->lock, deadline_ms);
	if (!w.done) {
		/* Past the deadline: forget the waiter here and in the group. */
		for (struct waiter **p = &h->waiters; *p; p = &(*p)->next)
			if (*p == &w) {
				*p = w.next;
				break;
			}
		if (!h->stop) {
			cancel->kind = INBOX_CANCEL;
			cancel->token = w.token;
			inbox_push_locked(h, cancel);
			cancel = NULL;
		}
		w.status = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&h->lock);
	free(cancel);
	pthread_cond_destroy(&w.done_cond);
	status = w.status;
	outcome->apply_status = w.apply_status;
	outcome->result_bytes = w.result_bytes;
	if (w.result_bytes)
		memcpy(outcome->result, w.result, w.result_bytes);
	if (status == -EREMOTE)
		outcome_leader(h, w.leader_hint, outcome);
	return status;
}

/* A proposal or strong read, retried while the group has no ready leader (an election),
 * once per tick for NOT_READY_WAIT_MS at most. */
static int replicas_submit(struct replicas *r, uint64_t table_id, bool by_partition,
			   uint64_t value, enum inbox_kind kind, const uint8_t *command,
			   size_t command_bytes, int64_t timeout_ms,
			   struct replicas_outcome *outcome)
{
	int64_t now_ms = clock_monotonic_ms(), deadline_ms = now_ms + timeout_ms;
	int64_t not_ready_until_ms = now_ms + NOT_READY_WAIT_MS;
	struct hosted *h;
	int status;

	memset(outcome, 0, sizeof(*outcome));
	pthread_mutex_lock(&r->lock);
	if (r->waiting >= r->options.waiting_max) {
		pthread_mutex_unlock(&r->lock);
		snprintf(outcome->why, sizeof(outcome->why),
			 "node busy: %d requests wait for their groups; retry", r->waiting);
		return -EAGAIN;
	}
	r->waiting++;
	pthread_mutex_unlock(&r->lock);
	h = hosted_find(r, table_id, by_partition, value);
	if (!h) {
		snprintf(outcome->why, sizeof(outcome->why),
			 "partition not hosted here yet (table %" PRIu64 ")", table_id);
		pthread_mutex_lock(&r->lock);
		r->waiting--;
		pthread_mutex_unlock(&r->lock);
		return -EAGAIN;
	}
	for (;;) {
		status = hosted_submit(h, kind, command, command_bytes, deadline_ms, outcome);
		if (status == -EREMOTE && outcome->leader_id == 0)
			status = -EAGAIN;	/* no leader known: an election runs */
		if (status == -ESHUTDOWN) {
			status = -EAGAIN;
			break;
		}
		if (status != -EAGAIN || clock_monotonic_ms() >= not_ready_until_ms ||
		    clock_monotonic_ms() >= deadline_ms)
			break;
		clock_sleep_ms(r->options.tick_ms);
	}
	switch (status) {
	case 0:
		break;
	case -EAGAIN:
		snprintf(outcome->why, sizeof(outcome->why),
			 "group %" PRIu64 "/%" PRIu64 " has no ready leader yet", h->table_id,
			 h->partition_id);
		break;
	case -ECANCELED:
		/* Another value took the slot after a leader change: not applied, retry. */
		snprintf(outcome->why, sizeof(outcome->why),
			 "group %" PRIu64 "/%" PRIu64 " changed leader; not applied, retry",
			 h->table_id, h->partition_id);
		status = -EAGAIN;
		break;
	case -EREMOTE:
		snprintf(outcome->why, sizeof(outcome->why),
			 "group %" PRIu64 "/%" PRIu64 " is led by node %" PRIu64 " (%s)",
			 h->table_id, h->partition_id, outcome->leader_id,
			 outcome->leader_address[0] ? outcome->leader_address : "address unknown");
		break;
	case -ETIMEDOUT:
		snprintf(outcome->why, sizeof(outcome->why),
			 "group %" PRIu64 "/%" PRIu64 ": no outcome within %" PRId64
			 " ms (it may still be applied)", h->table_id, h->partition_id, timeout_ms);
		break;
	default:
		snprintf(outcome->why, sizeof(outcome->why), "group %" PRIu64 "/%" PRIu64 ": %s",
			 h->table_id, h->partition_id, strerror(-status));
		break;
	}
	pthread_mutex_lock(&r->lock);
	r->waiting--;
	pthread_mutex_unlock(&r->lock);
	hosted_release(r, h);
	return status;
}

void replicas_fail_response(Quorum__Response *response, struct arena *arena, int err,
			    const struct replicas_outcome *outcome)
{
	rpc_fail(response, arena, err, "%s", outcome->why[0] ? outcome->why : strerror(-err));
	if (err == -EREMOTE && outcome->leader_id != 0) {
		response->has_leader_id = true;
		response->leader_id = outcome->leader_id;
		if (outcome->leader_address[0])
			response->leader_address = arena_memdup(arena, outcome->leader_address,
								strlen(outcome->leader_address) + 1);
	}
}

int replicas_propose(struct replicas *r, uint64_t table_id, uint64_t hash,
		     const uint8_t *command, size_t command_bytes, int64_t timeout_ms,
		     struct replicas_outcome *outcome)
{
	return replicas_submit(r, table_id, false, hash, INBOX_PROPOSE, command, command_bytes,
			       timeout_ms, outcome);
}

int replicas_propose_partition(struct replicas *r, uint64_t table_id, uint64_t partition_id,
			       const uint8_t *command, size_t command_bytes, int64_t timeout_ms,
			       struct replicas_outcome *outcome)
{
	return replicas_submit(r, table_id, true, partition_id, INBOX_PROPOSE, command,
			       command_bytes, timeout_ms, outcome);
}

/* What the peer's last reply said of its space, or OK when it is older than this. */
#define PEER_SPACE_FRESH_MS 2000

/* The level member id last reported, OK when unknown. Called with h->lock held. */
static enum disk_space_level member_space_level_locked(struct hosted *h, uint32_t id,
							int64_t now_ms)
{
	enum disk_space_level level = DISK_SPACE_OK;

	for (size_t i = 0; i < h->member_count; i++) {
		struct peer *peer = h->members[i].peer;

		if (h->members[i].id != id || !peer)
			continue;
		pthread_mutex_lock(&peer->lock);
		if (peer->space_level_ms && now_ms - peer->space_level_ms <= PEER_SPACE_FRESH_MS)
			level = peer->space_level;
		pthread_mutex_unlock(&peer->lock);
	}
	return level;
}

/* Hands the leadership of h to node to, at most once a second; true when it was asked now. */
static bool hosted_space_hand_off(struct hosted *h, uint32_t to, int64_t now_ms)
{
	struct inbox_item *item;

	pthread_mutex_lock(&h->lock);
	if (h->space_hand_off_ms && now_ms - h->space_hand_off_ms < 1000) {
		pthread_mutex_unlock(&h->lock);
		return false;
	}
	item = calloc(1, sizeof(*item));
	if (item) {
		h->space_hand_off_ms = now_ms;
		item->kind = INBOX_TRANSFER;
		item->transfer_to = to;
		inbox_push_locked(h, item);
	}
	pthread_mutex_unlock(&h->lock);
	return item != NULL;
}

int replicas_check_space(struct replicas *r, uint64_t table_id, uint64_t hash, int use,
			 struct replicas_outcome *outcome)
{
	enum disk_space_use space_use = (enum disk_space_use)use;
	enum disk_space_level self, others[PAXOS_MEMBERS_MAX];
	int64_t now_ms = clock_monotonic_ms();
	size_t other_count = 0, short_count = 0, voters;
	uint32_t roomy_id = 0;
	bool leads;
	struct hosted *h;
	int err = 0;

	memset(outcome, 0, sizeof(*outcome));
	if (!r->options.disk_space)
		return 0;
	h = hosted_find(r, table_id, false, hash);
	if (!h)
		return 0;
	self = disk_space_level(r->options.disk_space, now_ms);
	pthread_mutex_lock(&h->lock);
	leads = h->has_status && h->status.paxos.role == PAXOS_LEADER;
	for (size_t i = 0; leads && i < h->status.paxos.member_count; i++) {
		uint32_t id = h->status.paxos.members[i];

		/* A joining member does not vote: its disk decides nothing. */
		if (id == h->self_id || h->status.paxos.member_joining[i])
			continue;
		others[other_count] = member_space_level_locked(h, id, now_ms);
		if (disk_space_refuses(others[other_count], space_use))
			short_count++;
		else if (!roomy_id)
			roomy_id = id;
		other_count++;
	}
	pthread_mutex_unlock(&h->lock);
	voters = other_count + 1;
	if (!leads || !disk_space_group_refuses(self, others, other_count, space_use)) {
		hosted_release(r, h);
		return 0;
	}
	if (disk_space_refuses(self, space_use) && other_count - short_count >= voters / 2 + 1) {
		/* Only this leader is short, and the others make a majority without it: it
		 * hands the group to one of them and the router retries there (-EAGAIN).
		 * One full node of three must not stop the writes of the groups it leads. */
		if (hosted_space_hand_off(h, roomy_id, now_ms))
			log_info("group %" PRIu64 "/%" PRIu64 ": short of space: handing the "
				 "leadership to node %" PRIu32, h->table_id, h->partition_id,
				 roomy_id);
		snprintf(outcome->why, sizeof(outcome->why),
			 "group %" PRIu64 "/%" PRIu64 ": its leader is short of space and hands "
			 "over to node %" PRIu32 "; retry", h->table_id, h->partition_id, roomy_id);
		err = -EAGAIN;
	} else {
		snprintf(outcome->why, sizeof(outcome->why),
			 "group %" PRIu64 "/%" PRIu64 ": no space left: %s, and %zu of its %zu "
			 "other replicas are short of space", h->table_id, h->partition_id,
			 disk_space_refuses(self, space_use) ?
			 "this node (its leader) is short of space" : "its leader has room",
			 short_count, other_count);
		err = -ENOSPC;
	}
	hosted_release(r, h);
	return err;
}

int replicas_change_members(struct replicas *r, uint64_t table_id, uint64_t partition_id,
			    const uint32_t *wanted, size_t wanted_count, int64_t timeout_ms,
			    struct replicas_outcome *outcome, uint32_t *members,
			    size_t *member_count)
{
	int status;

	*member_count = 0;
	if (wanted_count == 0 || wanted_count > PAXOS_MEMBERS_MAX) {
		memset(outcome, 0, sizeof(*outcome));
		snprintf(outcome->why, sizeof(outcome->why), "%zu members wanted", wanted_count);
		return -EINVAL;
	}
	status = replicas_submit(r, table_id, true, partition_id, INBOX_MEMBERS,
				 (const uint8_t *)wanted, wanted_count * sizeof(wanted[0]),
				 timeout_ms, outcome);
	if (outcome->result_bytes % sizeof(members[0]) == 0 &&
	    outcome->result_bytes <= PAXOS_MEMBERS_MAX * sizeof(members[0])) {
		memcpy(members, outcome->result, outcome->result_bytes);
		*member_count = outcome->result_bytes / sizeof(members[0]);
	}
	return status;
}

int replicas_route(struct replicas *r, uint64_t table_id, bool by_partition, uint64_t value,
		   struct arena *arena, Quorum__PartitionAssignment **out)
{
	Quorum__PartitionAssignment *a = arena_alloc(arena, sizeof(*a));
	Quorum__PartitionInfo *p = arena_alloc(arena, sizeof(*p));
	struct store_group_route route;
	struct hosted *h;
	int err = 0;

	*out = NULL;
	if (!a || !p)
		return -ENOMEM;
	h = hosted_find(r, table_id, by_partition, value);
	if (!h)
		return -ENOENT;
	quorum__partition_assignment__init(a);
	quorum__partition_info__init(p);
	store_group_route(&h->sg, &route);
	a->table_id = table_id;
	a->partition = p;
	p->id = h->partition_id;
	p->hash_first = route.hash_first;
	p->hash_last = route.hash_last;
	p->epoch = route.epoch;
	pthread_mutex_lock(&h->lock);
	p->replicas = arena_alloc(arena, (h->member_count + 1) * sizeof(*p->replicas));
	a->replicas = arena_alloc(arena, (h->member_count + 1) * sizeof(*a->replicas));
	for (size_t i = 0; p->replicas && a->replicas && i < h->member_count; i++) {
		Quorum__ReplicaAddress *ra = arena_alloc(arena, sizeof(*ra));

		p->replicas[p->n_replicas++] = h->members[i].id;
		if (!ra || !h->members[i].address[0])
			continue;
		quorum__replica_address__init(ra);
		ra->node_id = h->members[i].id;
		ra->address = arena_memdup(arena, h->members[i].address,
					   strlen(h->members[i].address) + 1);
		if (ra->address)
			a->replicas[a->n_replicas++] = ra;
	}
	if (!p->replicas || !a->replicas)
		err = -ENOMEM;
	pthread_mutex_unlock(&h->lock);
	hosted_release(r, h);
	if (!err)
		*out = a;
	return err;
}

int replicas_read_barrier(struct replicas *r, uint64_t table_id, uint64_t hash,
			  int64_t timeout_ms, struct replicas_outcome *outcome)
{
	return replicas_submit(r, table_id, false, hash, INBOX_READ, NULL, 0, timeout_ms,
			       outcome);
}

/* The other member whose node answered last (0: none ever did). */
static uint32_t hand_off_target(struct hosted *h)
{
	uint32_t best = 0;
	int64_t best_ms = -1;

	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->member_count; i++) {
		struct peer *peer = h->members[i].peer;
		int64_t ok_ms;

		bool member = false, joining = false;

		/* The address book may hold a move's old or new replica: only a member of the
		 * configuration in force that has its state can take over. */
		for (size_t j = 0; h->has_status && j < h->status.paxos.member_count; j++)
			if (h->status.paxos.members[j] == h->members[i].id) {
				member = true;
				joining = h->status.paxos.member_joining[j];
			}
		if (h->members[i].id == h->self_id || !peer || !member || joining)
			continue;
		pthread_mutex_lock(&peer->lock);
		ok_ms = peer->last_ok_ms;
		pthread_mutex_unlock(&peer->lock);
		if (ok_ms > best_ms) {
			best_ms = ok_ms;
			best = h->members[i].id;
		}
	}
	pthread_mutex_unlock(&h->lock);
	return best;
}

void replicas_hand_off(struct replicas *r, int64_t timeout_ms)
{
	int64_t deadline_ms = clock_monotonic_ms() + timeout_ms;
	size_t handed = 0;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->hosted_count; i++) {
		struct hosted *h = r->hosted[i];
		struct inbox_item *item;
		uint32_t to;
		bool leads;

		pthread_mutex_lock(&h->lock);
		leads = h->has_status && h->status.paxos.role == PAXOS_LEADER;
		pthread_mutex_unlock(&h->lock);
		if (!leads)
			continue;
		to = hand_off_target(h);
		item = to ? calloc(1, sizeof(*item)) : NULL;
		if (!item)
			continue;
		item->kind = INBOX_TRANSFER;
		item->transfer_to = to;
		pthread_mutex_lock(&h->lock);
		h->handing_off = true;
		inbox_push_locked(h, item);
		pthread_mutex_unlock(&h->lock);
		handed++;
	}
	pthread_mutex_unlock(&r->lock);
	if (!handed)
		return;
	log_info("handing off the leadership of %zu group%s", handed, handed == 1 ? "" : "s");
	/* Done when every group handed off knows another leader (so TIMEOUT_NOW left this
	 * node and the target won), or at the deadline. */
	while (clock_monotonic_ms() < deadline_ms) {
		bool any = false;

		pthread_mutex_lock(&r->lock);
		for (size_t i = 0; i < r->hosted_count && !any; i++) {
			struct hosted *h = r->hosted[i];

			pthread_mutex_lock(&h->lock);
			any = h->handing_off && (h->status.paxos.role == PAXOS_LEADER ||
						 h->status.paxos.leader_id == h->self_id ||
						 h->status.paxos.leader_id == 0);
			pthread_mutex_unlock(&h->lock);
		}
		pthread_mutex_unlock(&r->lock);
		if (!any)
			return;
		clock_sleep_ms(r->options.tick_ms);
	}
	log_warn("hand-off not complete within %" PRId64 " ms; stopping anyway", timeout_ms);
}

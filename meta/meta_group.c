/* meta_group.c: the Paxos group of replicated quorum-meta: its thread, inbox, peer senders and
 * the leadership that decides when this instance serves. See meta_group.h.
 *
 * Locks: group->lock guards the inbox, the waiters, the status copy and the serving state; a
 * peer's lock guards its queue. No lock is held while calling into the group (its callbacks
 * take group->lock), the network or on_lead. */
#include "meta/meta_group.h"

#include "cluster/clock.h"
#include "cluster/group.h"
#include "cluster/io.h"
#include "cluster/log.h"
#include "cluster/net.h"
#include "cluster/paxos_envelope.h"
#include "cluster/paxos_wire.h"
#include "cluster/rpc.h"
#include "meta/catalog_sm.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <leveldb/c.h>

/* Meta's group among the groups of quorum.proto's PaxosMessage: no table has id 0. */
#define META_GROUP_TABLE_ID 0
#define META_GROUP_PARTITION_ID 0
#define INBOX_MSGS_MAX 4096
#define PEER_QUEUE_MAX 1024
#define PEER_SENDERS 2
#define PEER_CALL_MS 300
#define PEER_BACKOFF_MS 200
#define LOG_EVERY_MS 10000
#define TICK_CATCH_UP_MAX 100
#define REOPEN_PAUSE_MS 1000
/* The leadership thread looks at the group this often. */
#define LEAD_POLL_MS 20

struct peer_msg {
	struct peer_msg *next;
	size_t size_bytes;
	uint8_t bytes[];
};

struct peer {
	char url[META_GROUP_URL_BYTES];
	struct net_client *client;
	pthread_t threads[PEER_SENDERS];
	int started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	struct peer_msg *head, *tail;
	size_t queued;
	int64_t down_until_ms;
	int64_t last_log_ms;
};

enum inbox_kind {
	INBOX_MESSAGE,
	INBOX_PROPOSE,
	INBOX_CANCEL,
	INBOX_TRANSFER,
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
};

struct meta_group {
	char urls[PAXOS_MEMBERS_MAX][META_GROUP_URL_BYTES];
	size_t member_count;
	uint32_t self_id;
	int (*on_lead)(void *ctx);
	void *ctx;
	char wal_dir[PATH_MAX];
	struct catalog_sm *catalog_sm;
	struct group_sm sm;
	struct group_config config;
	struct group *group;		/* the group thread's; NULL while failed */
	struct peer *peers[PAXOS_MEMBERS_MAX];	/* by member id - 1; NULL for self */
	pthread_t thread, lead_thread;
	bool started, lead_started;

	pthread_mutex_t lock;
	pthread_cond_t wake;		/* the group thread's */
	pthread_cond_t lead_wake;	/* the leadership thread's */
	bool stop;
	struct inbox_item *head, *tail;
	size_t inbox_msgs;
	struct waiter *waiters;
	uint64_t next_token;
	/* The status as of the last ready cycle. */
	enum paxos_role role;
	uint32_t leader_id;
	struct paxos_ballot ballot;
	uint64_t applied_slot;
	/* Serving: the leader on serving_ballot reloaded after its barrier. */
	bool serving;
	bool stale;			/* a commit's outcome is unknown: barrier again */
	bool handing_off;		/* a clean stop: never serve again */
	struct paxos_ballot serving_ballot;
	int64_t last_log_ms;
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

static void cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms)
{
	struct timespec until;

	until.tv_sec = deadline_ms / 1000;
	until.tv_nsec = (deadline_ms % 1000) * 1000000L;
	pthread_cond_timedwait(cond, lock, &until);
}

static bool ballot_equal(struct paxos_ballot a, struct paxos_ballot b)
{
	return a.round == b.round && a.node_id == b.node_id;
}

/* Whether this instance serves. Called with group->lock held. */
static bool serving_locked(const struct meta_group *g)
{
	return g->serving && !g->stale && g->role == PAXOS_LEADER &&
	       ballot_equal(g->ballot, g->serving_ballot);
}

static void set_why(char *why, size_t why_bytes, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t why_bytes, const char *fmt, ...)
{
	va_list ap;

	if (!why || !why_bytes)
		return;
	va_start(ap, fmt);
	vsnprintf(why, why_bytes, fmt, ap);
	va_end(ap);
}

/* -------------------------------------------------------------------- peers */

static void peer_drop_queue_locked(struct peer *peer)
{
	while (peer->head) {
		struct peer_msg *m = peer->head;

		peer->head = m->next;
		free(m);
	}
	peer->tail = NULL;
	peer->queued = 0;
}

static void *peer_main(void *arg)
{
	struct peer *peer = arg;

	for (;;) {
		Quorum__Response *response;
		struct peer_msg *m;
		void *reply = NULL;
		size_t reply_bytes = 0;
		int err;

		pthread_mutex_lock(&peer->lock);
		while (!peer->stop && !peer->head)
			pthread_cond_wait(&peer->wake, &peer->lock);
		if (peer->stop) {
			pthread_mutex_unlock(&peer->lock);
			break;
		}
		m = peer->head;
		peer->head = m->next;
		if (!peer->head)
			peer->tail = NULL;
		peer->queued--;
		pthread_mutex_unlock(&peer->lock);

		err = net_client_call(peer->client, m->bytes, m->size_bytes,
				      clock_monotonic_ms() + PEER_CALL_MS, &reply, &reply_bytes);
		free(m);
		if (err < 0) {
			int64_t now_ms = clock_monotonic_ms();
			bool log_it;

			/* Unreachable: skip it for a moment rather than queue behind timeouts;
			 * Paxos retransmits what matters. */
			pthread_mutex_lock(&peer->lock);
			peer->down_until_ms = now_ms + PEER_BACKOFF_MS;
			peer_drop_queue_locked(peer);
			log_it = !peer->last_log_ms || now_ms - peer->last_log_ms >= LOG_EVERY_MS;
			if (log_it)
				peer->last_log_ms = now_ms;
			pthread_mutex_unlock(&peer->lock);
			if (log_it)
				log_warn("meta peer %s does not answer (%s); its Paxos messages "
					 "are dropped meanwhile", peer->url,
					 err == -ETIMEDOUT ? "no answer" : strerror(-err));
			continue;
		}
		response = quorum__response__unpack(NULL, reply_bytes, reply);
		net_message_free(reply);
		if (response)
			quorum__response__free_unpacked(response, NULL);
	}
	return NULL;
}

static void peer_free(struct peer *peer)
{
	if (!peer)
		return;
	pthread_mutex_lock(&peer->lock);
	peer->stop = true;
	pthread_cond_broadcast(&peer->wake);
	pthread_mutex_unlock(&peer->lock);
	for (int i = 0; i < peer->started; i++)
		pthread_join(peer->threads[i], NULL);
	peer_drop_queue_locked(peer);
	net_client_free(peer->client);
	pthread_cond_destroy(&peer->wake);
	pthread_mutex_destroy(&peer->lock);
	free(peer);
}

static int peer_new(const char *url, struct peer **out)
{
	struct peer *peer = calloc(1, sizeof(*peer));
	int err;

	*out = NULL;
	if (!peer)
		return -ENOMEM;
	snprintf(peer->url, sizeof(peer->url), "%s", url);
	err = net_client_new(url, &peer->client);
	if (err < 0) {
		free(peer);
		return err;
	}
	pthread_mutex_init(&peer->lock, NULL);
	pthread_cond_init(&peer->wake, NULL);
	for (int i = 0; i < PEER_SENDERS; i++) {
		if (pthread_create(&peer->threads[i], NULL, peer_main, peer) != 0)
			break;
		peer->started++;
	}
	if (!peer->started) {
		peer_free(peer);
		return -ENOMEM;
	}
	*out = peer;
	return 0;
}

/* Queues bytes for the peer, or drops them (full queue, peer just failed). */
static void peer_send(struct peer *peer, const uint8_t *head, size_t head_bytes,
		      const uint8_t *body, size_t body_bytes)
{
	struct peer_msg *m = malloc(sizeof(*m) + head_bytes + body_bytes);

	if (!m)
		return;
	m->next = NULL;
	m->size_bytes = head_bytes + body_bytes;
	memcpy(m->bytes, head, head_bytes);
	memcpy(m->bytes + head_bytes, body, body_bytes);
	pthread_mutex_lock(&peer->lock);
	if (peer->queued >= PEER_QUEUE_MAX || clock_monotonic_ms() < peer->down_until_ms) {
		pthread_mutex_unlock(&peer->lock);
		free(m);
		return;
	}
	if (peer->tail)
		peer->tail->next = m;
	else
		peer->head = m;
	peer->tail = m;
	peer->queued++;
	pthread_cond_signal(&peer->wake);
	pthread_mutex_unlock(&peer->lock);
}

/* ---------------------------------------------------------- group callbacks */

static void group_send(void *ctx, const struct paxos_msg *msg)
{
	struct meta_group *g = ctx;
	struct paxos_wire_group id = { META_GROUP_TABLE_ID, META_GROUP_PARTITION_ID };
	uint8_t head[PAXOS_ENVELOPE_HEAD_MAX], *body;
	size_t head_bytes, body_bytes;
	struct arena *arena;
	struct peer *peer;

	if (msg->to == 0 || msg->to > g->member_count)
		return;
	peer = g->peers[msg->to - 1];
	if (!peer)
		return;
	arena = arena_new();
	if (!arena)
		return;
	if (paxos_wire_encode(&id, msg, arena, &body, &body_bytes) == 0) {
		head_bytes = paxos_envelope_head(head, body_bytes);
		peer_send(peer, head, head_bytes, body, body_bytes);
	}
	arena_free(arena);
}

/* Completes the waiter of token, if it still waits. Called with g->lock held. */
static void waiter_complete_locked(struct meta_group *g, uint64_t token, int status,
				   int apply_status, uint32_t leader_hint)
{
	for (struct waiter **p = &g->waiters; *p; p = &(*p)->next) {
		struct waiter *w = *p;

		if (w->token != token)
			continue;
		*p = w->next;
		w->done = true;
		w->status = status;
		w->apply_status = apply_status;
		w->leader_hint = leader_hint;
		pthread_cond_signal(&w->done_cond);
		return;
	}
}

static void group_proposal_done(void *ctx, uint64_t token, int status, int apply_status,
				const uint8_t *result, size_t result_bytes)
{
	struct meta_group *g = ctx;

	(void)result;
	(void)result_bytes;
	pthread_mutex_lock(&g->lock);
	waiter_complete_locked(g, token, status, apply_status, 0);
	pthread_mutex_unlock(&g->lock);
}

static void group_read_ready(void *ctx, uint64_t token)
{
	(void)ctx;
	(void)token;	/* meta asks for no lease reads */
}

/* ------------------------------------------------------------- group thread */

static void inbox_item_free(struct inbox_item *item)
{
	if (item->arena)
		arena_free(item->arena);
	free(item);
}

static void waiters_fail_locked(struct meta_group *g)
{
	while (g->waiters)
		waiter_complete_locked(g, g->waiters->token, -ETIMEDOUT, 0, 0);
}

static int group_thread_open(struct meta_group *g)
{
	struct group_callbacks callbacks = {
		.ctx = g,
		.send = group_send,
		.proposal_done = group_proposal_done,
		.read_ready = group_read_ready,
	};

	g->config.incarnation = (uint32_t)(clock_realtime_ns() / 1000000);
	g->config.seed = ((uint64_t)g->self_id << 32) ^ (uint64_t)clock_realtime_ns();
	return group_open(io_posix(), g->wal_dir, &g->config, &g->sm, &callbacks, &g->group);
}

static void group_handle_item(struct meta_group *g, struct inbox_item *item)
{
	uint32_t hint = 0;
	int rc;

	if (!g->group) {
		if (item->kind == INBOX_PROPOSE) {
			pthread_mutex_lock(&g->lock);
			waiter_complete_locked(g, item->token, -EAGAIN, 0, 0);
			pthread_mutex_unlock(&g->lock);
		}
		return;
	}
	switch (item->kind) {
	case INBOX_MESSAGE:
		group_step(g->group, &item->msg);
		break;
	case INBOX_PROPOSE:
		rc = group_propose(g->group, item->command, item->command_bytes, item->token,
				   &hint);
		if (rc) {
			pthread_mutex_lock(&g->lock);
			waiter_complete_locked(g, item->token, rc, 0, hint);
			pthread_mutex_unlock(&g->lock);
		}
		break;
	case INBOX_CANCEL:
		group_cancel(g->group, item->token);
		break;
	case INBOX_TRANSFER:
		rc = group_transfer_leadership(g->group, item->transfer_to);
		if (rc && rc != -EREMOTE)
			log_warn("meta group: hand-off to member %" PRIu32 ": %s",
				 item->transfer_to, strerror(-rc));
		break;
	}
}

/* Copies the group's status for the other threads; wakes the leadership thread when the
 * role or ballot changed. */
static void group_publish_status(struct meta_group *g)
{
	struct group_status status;
	bool changed;

	group_status(g->group, &status);
	pthread_mutex_lock(&g->lock);
	changed = g->role != status.paxos.role ||
		  !ballot_equal(g->ballot, status.paxos.ballot);
	g->role = status.paxos.role;
	g->leader_id = status.paxos.leader_id;
	g->ballot = status.paxos.ballot;
	g->applied_slot = status.paxos.applied_slot;
	if (changed)
		pthread_cond_broadcast(&g->lead_wake);
	pthread_mutex_unlock(&g->lock);
}

static void *group_main(void *arg)
{
	struct meta_group *g = arg;
	int64_t next_tick_ms = clock_monotonic_ms() + META_GROUP_TICK_MS, reopen_ms = 0;

	for (;;) {
		struct inbox_item *items;
		int64_t now_ms;

		pthread_mutex_lock(&g->lock);
		while (!g->stop && !g->head && clock_monotonic_ms() < next_tick_ms)
			cond_wait_until(&g->wake, &g->lock, next_tick_ms);
		if (g->stop) {
			pthread_mutex_unlock(&g->lock);
			break;
		}
		items = g->head;
		g->head = g->tail = NULL;
		g->inbox_msgs = 0;
		pthread_mutex_unlock(&g->lock);

		/* Time first: a tick held back by the last cycle's fsyncs is caught up, so the
		 * core's clock never runs slow against real time. */
		now_ms = clock_monotonic_ms();
		if (now_ms >= next_tick_ms) {
			int64_t due = (now_ms - next_tick_ms) / META_GROUP_TICK_MS + 1;

			for (int64_t i = 0; g->group && i < due && i < TICK_CATCH_UP_MAX; i++)
				group_tick(g->group);
			next_tick_ms += due * META_GROUP_TICK_MS;
		}
		while (items) {
			struct inbox_item *next = items->next;

			group_handle_item(g, items);
			inbox_item_free(items);
			items = next;
		}
		if (g->group && group_process(g->group) < 0) {
			/* The WAL or the catalog failed: close, fail the waiters, reopen. */
			group_close(g->group);
			g->group = NULL;
			reopen_ms = now_ms + REOPEN_PAUSE_MS;
			pthread_mutex_lock(&g->lock);
			waiters_fail_locked(g);
			g->role = PAXOS_FOLLOWER;
			g->leader_id = 0;
			g->serving = false;
			pthread_mutex_unlock(&g->lock);
		}
		if (!g->group && now_ms >= reopen_ms) {
			int err = group_thread_open(g);

			if (err) {
				g->group = NULL;
				reopen_ms = now_ms + REOPEN_PAUSE_MS;
				log_error("meta group: reopening failed: %s", strerror(-err));
			} else {
				log_info("meta group reopened");
			}
		}
		if (g->group)
			group_publish_status(g);
	}
	return NULL;
}

/* -------------------------------------------------------------- proposals */

static void inbox_push_locked(struct meta_group *g, struct inbox_item *item)
{
	item->next = NULL;
	if (g->tail)
		g->tail->next = item;
	else
		g->head = item;
	g->tail = item;
	pthread_cond_signal(&g->wake);
}

/* Proposes command through the group thread and waits until deadline_ms for its outcome:
 * 0 (applied; *apply_status is the state machine's), or group_propose's errors, -ECANCELED
 * (not applied), -ETIMEDOUT (unknown), -ESHUTDOWN (stopping). */
static int group_submit(struct meta_group *g, const uint8_t *command, size_t command_bytes,
			int64_t deadline_ms, int *apply_status)
{
	struct inbox_item *item, *cancel;
	struct waiter w;

	*apply_status = 0;
	item = calloc(1, sizeof(*item) + command_bytes);
	cancel = calloc(1, sizeof(*cancel));
	memset(&w, 0, sizeof(w));
	if (!item || !cancel || cond_init_monotonic(&w.done_cond) < 0) {
		free(item);
		free(cancel);
		return -ENOMEM;
	}
	item->kind = INBOX_PROPOSE;
	item->command_bytes = command_bytes;
	memcpy(item->command, command, command_bytes);
	pthread_mutex_lock(&g->lock);
	if (g->stop) {
		pthread_mutex_unlock(&g->lock);
		pthread_cond_destroy(&w.done_cond);
		free(item);
		free(cancel);
		return -ESHUTDOWN;
	}
	w.token = g->next_token++;
	item->token = w.token;
	w.next = g->waiters;
	g->waiters = &w;
	inbox_push_locked(g, item);
	while (!w.done && clock_monotonic_ms() < deadline_ms)
		cond_wait_until(&w.done_cond, &g->lock, deadline_ms);
	if (!w.done) {
		for (struct waiter **p = &g->waiters; *p; p = &(*p)->next)
			if (*p == &w) {
				*p = w.next;
				break;
			}
		if (!g->stop) {
			cancel->kind = INBOX_CANCEL;
			cancel->token = w.token;
			inbox_push_locked(g, cancel);
			cancel = NULL;
		}
		w.status = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&g->lock);
	free(cancel);
	pthread_cond_destroy(&w.done_cond);
	*apply_status = w.apply_status;
	return w.status;
}

int meta_group_commit(void *ctx, struct leveldb_writebatch_t *batch, char *why,
		      size_t why_bytes)
{
	struct meta_group *g = ctx;
	uint8_t *command;
	size_t command_bytes;
	int apply_status, err;
	bool serving;

	pthread_mutex_lock(&g->lock);
	serving = serving_locked(g);
	pthread_mutex_unlock(&g->lock);
	if (!serving) {
		set_why(why, why_bytes, "this metadata service is not the leader");
		return -EREMOTE;
	}
	err = catalog_sm_encode(batch, &command, &command_bytes);
	if (err < 0) {
		set_why(why, why_bytes, "%s", err == -EMSGSIZE ? "change too large for the log" :
			"out of memory");
		return err;
	}
	err = group_submit(g, command, command_bytes, clock_monotonic_ms() + META_GROUP_COMMIT_MS,
			   &apply_status);
	free(command);
	switch (err) {
	case 0:
		if (apply_status == 0)
			return 0;
		/* Every instance refused it alike; memory stays as the catalog is. */
		log_error("meta group: a change was refused when applied: %s",
			  strerror(-apply_status));
		set_why(why, why_bytes, "the change was refused when applied");
		return -EIO;
	case -EREMOTE:
	case -EAGAIN:
	case -ECANCELED:
	case -ESHUTDOWN:
		/* Not applied: leadership moved, or the leader is not ready. */
		set_why(why, why_bytes, "this metadata service lost the leadership; not applied");
		return -EREMOTE;
	case -ENOMEM:
	case -EMSGSIZE:
		set_why(why, why_bytes, "%s", strerror(-err));
		return err;
	default:
		/* It may still be applied behind memory's back: serve again only after a
		 * barrier and a reload. */
		pthread_mutex_lock(&g->lock);
		g->stale = true;
		g->serving = false;
		pthread_cond_signal(&g->lead_wake);
		pthread_mutex_unlock(&g->lock);
		log_warn("meta group: a change has no outcome after %d ms (%s); serving again "
			 "after a reload", META_GROUP_COMMIT_MS, strerror(-err));
		set_why(why, why_bytes, "no majority of metadata services confirmed the change "
			"in time; it may still be applied");
		return -ETIMEDOUT;
	}
}

/* ------------------------------------------------------------- leadership */

/* One attempt to start serving as the leader of ballot: barrier, then on_lead. */
static void lead_try(struct meta_group *g, struct paxos_ballot ballot)
{
	uint8_t *barrier;
	size_t barrier_bytes;
	int apply_status, err;
	bool still;

	err = catalog_sm_encode(NULL, &barrier, &barrier_bytes);
	if (err < 0)
		return;
	err = group_submit(g, barrier, barrier_bytes, clock_monotonic_ms() + META_GROUP_COMMIT_MS,
			   &apply_status);
	free(barrier);
	if (err || apply_status)
		return;		/* not ready yet, or lost it: the loop tries again */
	pthread_mutex_lock(&g->lock);
	still = g->role == PAXOS_LEADER && ballot_equal(g->ballot, ballot) && !g->stop &&
		!g->handing_off;
	pthread_mutex_unlock(&g->lock);
	if (!still)
		return;
	err = g->on_lead(g->ctx);
	if (err < 0) {
		log_error("meta group: cannot load the catalog to lead: %s", strerror(-err));
		return;
	}
	pthread_mutex_lock(&g->lock);
	if (g->role == PAXOS_LEADER && ballot_equal(g->ballot, ballot) && !g->stale &&
	    !g->handing_off) {
		g->serving = true;
		g->serving_ballot = ballot;
		log_info("meta group: member %" PRIu32 " leads (ballot %" PRIu64 ".%" PRIu32
			 ", slot %" PRIu64 ") and serves", g->self_id, ballot.round,
			 ballot.node_id, g->applied_slot);
	}
	pthread_mutex_unlock(&g->lock);
}

static void *lead_main(void *arg)
{
	struct meta_group *g = arg;

	pthread_mutex_lock(&g->lock);
	while (!g->stop) {
		struct paxos_ballot ballot;

		if (g->role != PAXOS_LEADER) {
			if (g->serving)
				log_info("meta group: member %" PRIu32 " no longer leads (leader "
					 "%" PRIu32 ")", g->self_id, g->leader_id);
			g->serving = false;
		}
		if (g->role != PAXOS_LEADER || g->handing_off || serving_locked(g)) {
			cond_wait_until(&g->lead_wake, &g->lock,
					clock_monotonic_ms() + LEAD_POLL_MS);
			continue;
		}
		/* Leading without serving: commits are refused until the barrier is in. */
		g->serving = false;
		g->stale = false;
		ballot = g->ballot;
		pthread_mutex_unlock(&g->lock);
		lead_try(g, ballot);
		pthread_mutex_lock(&g->lock);
		if (!serving_locked(g) && !g->stop)
			cond_wait_until(&g->lead_wake, &g->lock,
					clock_monotonic_ms() + LEAD_POLL_MS);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int meta_group_check(struct meta_group *g, uint32_t *leader_id, char *leader_url,
		     size_t leader_url_bytes)
{
	uint32_t leader;
	bool serving;

	pthread_mutex_lock(&g->lock);
	serving = serving_locked(g);
	leader = g->leader_id;
	pthread_mutex_unlock(&g->lock);
	/* Ourselves, not serving yet: no one else to send the client to. */
	if (leader == g->self_id || leader > g->member_count)
		leader = 0;
	*leader_id = leader;
	if (leader_url && leader_url_bytes)
		snprintf(leader_url, leader_url_bytes, "%s", leader ? g->urls[leader - 1] : "");
	return serving ? 0 : -EREMOTE;
}

bool meta_group_serving(void *ctx)
{
	struct meta_group *g = ctx;
	bool serving;

	pthread_mutex_lock(&g->lock);
	serving = serving_locked(g);
	pthread_mutex_unlock(&g->lock);
	return serving;
}

void meta_group_refuse(struct meta_group *g, Quorum__Response *response, struct arena *arena)
{
	char url[META_GROUP_URL_BYTES];
	uint32_t leader;

	meta_group_check(g, &leader, url, sizeof(url));
	if (leader) {
		rpc_fail(response, arena, -EREMOTE, "not the leader of the metadata services; "
			 "member %" PRIu32 " (%s) leads", leader, url);
		response->has_leader_id = true;
		response->leader_id = leader;
		response->leader_address = arena_memdup(arena, url, strlen(url) + 1);
	} else {
		rpc_fail(response, arena, -EREMOTE, "the metadata services elect a leader");
	}
}

/* ------------------------------------------------------------ peer input */

void meta_group_handle_paxos(struct meta_group *g, const Quorum__PaxosMessage *message,
			     Quorum__Response *response, struct arena *arena)
{
	struct paxos_wire_group id;
	struct inbox_item *item;
	size_t packed_bytes;
	uint8_t *packed;
	int err;

	if (message->table_id != META_GROUP_TABLE_ID ||
	    message->partition_id != META_GROUP_PARTITION_ID) {
		rpc_fail(response, arena, -ENOENT, "group %" PRIu64 "/%" PRIu64
			 " is not hosted by the metadata service", message->table_id,
			 message->partition_id);
		return;
	}
	item = calloc(1, sizeof(*item));
	if (item)
		item->arena = arena_new();
	if (!item || !item->arena) {
		free(item);
		rpc_fail(response, arena, -ENOMEM, "out of memory");
		return;
	}
	/* Packed again and decoded by paxos_wire, which checks every bound, into an arena
	 * the group thread owns until it stepped the message. */
	packed_bytes = quorum__paxos_message__get_packed_size(message);
	packed = arena_alloc(item->arena, packed_bytes ? packed_bytes : 1);
	err = packed ? 0 : -ENOMEM;
	if (!err) {
		quorum__paxos_message__pack(message, packed);
		err = paxos_wire_decode(packed, packed_bytes, item->arena, &id, &item->msg);
	}
	if (!err && item->msg.to != g->self_id)
		err = -EINVAL;
	if (err) {
		int64_t now_ms = clock_monotonic_ms();
		bool log_it;

		pthread_mutex_lock(&g->lock);
		log_it = !g->last_log_ms || now_ms - g->last_log_ms >= LOG_EVERY_MS;
		if (log_it)
			g->last_log_ms = now_ms;
		pthread_mutex_unlock(&g->lock);
		if (log_it)
			log_warn("meta group: Paxos message from member %" PRIu32 " refused: %s",
				 message->from, err == -EINVAL ? "malformed or not for us" :
				 strerror(-err));
		inbox_item_free(item);
		rpc_fail(response, arena, err, "%s", err == -EINVAL ? "malformed Paxos message" :
			 strerror(-err));
		return;
	}
	item->kind = INBOX_MESSAGE;
	pthread_mutex_lock(&g->lock);
	if (g->stop || g->inbox_msgs >= INBOX_MSGS_MAX) {
		pthread_mutex_unlock(&g->lock);
		inbox_item_free(item);
		rpc_fail(response, arena, -EAGAIN, "inbox full: message dropped");
		return;
	}
	inbox_push_locked(g, item);
	g->inbox_msgs++;
	pthread_mutex_unlock(&g->lock);
}

/* ------------------------------------------------------------- life cycle */

static void meta_group_free(struct meta_group *g)
{
	for (size_t i = 0; i < PAXOS_MEMBERS_MAX; i++)
		peer_free(g->peers[i]);
	while (g->head) {
		struct inbox_item *item = g->head;

		g->head = item->next;
		inbox_item_free(item);
	}
	group_close(g->group);
	catalog_sm_free(g->catalog_sm);
	pthread_cond_destroy(&g->lead_wake);
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

int meta_group_start(const struct meta_group_options *options, struct leveldb_t *db,
		     struct meta_group **out)
{
	struct meta_group *g;
	bool unreplicated;
	int err;

	*out = NULL;
	if (options->peer_count < 1 || options->peer_count > PAXOS_MEMBERS_MAX ||
	    options->self_id < 1 || options->self_id > options->peer_count || !options->on_lead)
		return -EINVAL;
	err = catalog_sm_has_unreplicated_records(db, &unreplicated);
	if (err < 0)
		return err;
	if (unreplicated) {
		log_error("%s/catalog was written by a metadata service that ran alone; a "
			  "replicated one starts from an empty directory", options->data_dir);
		return -EEXIST;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	pthread_mutex_init(&g->lock, NULL);
	if (cond_init_monotonic(&g->wake) < 0 || cond_init_monotonic(&g->lead_wake) < 0) {
		free(g);
		return -ENOMEM;
	}
	g->member_count = options->peer_count;
	g->self_id = options->self_id;
	g->on_lead = options->on_lead;
	g->ctx = options->ctx;
	g->next_token = 1;
	for (size_t i = 0; i < options->peer_count; i++) {
		if (strlen(options->peer_urls[i]) >= META_GROUP_URL_BYTES) {
			err = -EINVAL;
			goto fail;
		}
		snprintf(g->urls[i], sizeof(g->urls[i]), "%s", options->peer_urls[i]);
	}
	if (snprintf(g->wal_dir, sizeof(g->wal_dir), "%s/paxos", options->data_dir) >=
	    (int)sizeof(g->wal_dir)) {
		err = -ENAMETOOLONG;
		goto fail;
	}
	if (mkdir(g->wal_dir, 0700) < 0 && errno != EEXIST) {
		err = -errno;
		log_error("cannot create %s: %s", g->wal_dir, strerror(errno));
		goto fail;
	}
	err = io_posix()->dir_sync(io_posix()->ctx, options->data_dir);
	if (err < 0)
		goto fail;
	err = catalog_sm_new(db, &g->catalog_sm);
	if (err < 0)
		goto fail;
	catalog_sm_bind(g->catalog_sm, &g->sm);
	group_config_init(&g->config);
	g->config.id.table_id = META_GROUP_TABLE_ID;
	g->config.id.partition_id = META_GROUP_PARTITION_ID;
	g->config.self_id = g->self_id;
	g->config.member_count = g->member_count;
	for (size_t i = 0; i < g->member_count; i++)
		g->config.members[i] = (uint32_t)(i + 1);
	/* Heartbeat and lease follow the election timeout, as group_config_init's do. */
	g->config.election_ticks = META_GROUP_ELECTION_TICKS;
	g->config.heartbeat_ticks = META_GROUP_ELECTION_TICKS / 6;
	g->config.lease_ticks = META_GROUP_ELECTION_TICKS * 3 / 5;
	for (size_t i = 0; i < g->member_count; i++) {
		if (i + 1 == g->self_id)
			continue;
		err = peer_new(g->urls[i], &g->peers[i]);
		if (err < 0)
			goto fail;
	}
	err = group_thread_open(g);
	if (err < 0) {
		log_error("cannot open the meta group's WAL in %s: %s", g->wal_dir,
			  strerror(-err));
		goto fail;
	}
	group_publish_status(g);
	if (pthread_create(&g->thread, NULL, group_main, g) != 0) {
		err = -ENOMEM;
		goto fail;
	}
	g->started = true;
	if (pthread_create(&g->lead_thread, NULL, lead_main, g) != 0) {
		meta_group_stop(g);
		return -ENOMEM;
	}
	g->lead_started = true;
	log_info("meta group: member %" PRIu32 " of %zu, WAL in %s, catalog at slot %" PRIu64,
		 g->self_id, g->member_count, g->wal_dir, g->applied_slot);
	*out = g;
	return 0;
fail:
	meta_group_free(g);
	return err;
}

void meta_group_hand_off(struct meta_group *g, int64_t timeout_ms)
{
	int64_t deadline_ms = clock_monotonic_ms() + timeout_ms;
	struct inbox_item *item;
	bool leads;

	if (!g || g->member_count < 2)
		return;
	pthread_mutex_lock(&g->lock);
	leads = g->role == PAXOS_LEADER;
	/* No new commits from here on: the next leader takes over. */
	g->serving = false;
	g->handing_off = true;
	pthread_mutex_unlock(&g->lock);
	if (!leads)
		return;
	item = calloc(1, sizeof(*item));
	if (!item)
		return;
	item->kind = INBOX_TRANSFER;
	item->transfer_to = g->self_id % (uint32_t)g->member_count + 1;
	pthread_mutex_lock(&g->lock);
	inbox_push_locked(g, item);
	while (g->role == PAXOS_LEADER && clock_monotonic_ms() < deadline_ms)
		cond_wait_until(&g->lead_wake, &g->lock, clock_monotonic_ms() + LEAD_POLL_MS);
	leads = g->role == PAXOS_LEADER;
	pthread_mutex_unlock(&g->lock);
	log_info("meta group: %s", leads ? "no other member took the leadership in time" :
		 "leadership handed off");
}

void meta_group_stop(struct meta_group *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->stop = true;
	g->serving = false;
	pthread_cond_broadcast(&g->wake);
	pthread_cond_broadcast(&g->lead_wake);
	waiters_fail_locked(g);
	pthread_mutex_unlock(&g->lock);
	if (g->lead_started)
		pthread_join(g->lead_thread, NULL);
	if (g->started)
		pthread_join(g->thread, NULL);
	meta_group_free(g);
}

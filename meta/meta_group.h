/* meta_group.h: replicated quorum-meta. With --peers URL1,...,URLn (n <= PAXOS_MEMBERS_MAX)
 * each instance is member i (its --listen URL is the i-th of the list, from 1) of ONE Paxos
 * group (cluster/group.h) whose state machine is the catalog's LevelDB (meta/catalog_sm.h)
 * and whose WAL lives in DIR/paxos. Durable means what it means for the data: in the WAL of
 * a majority (fsync) before the caller hears yes.
 *
 * Serving: only the leader serves clients, from the catalog in its memory, so it must hold
 * everything committed. When an instance finds itself leader it proposes a barrier (an empty
 * batch) and waits for it to be applied: every slot an earlier leader committed is then in
 * LevelDB; then on_lead reloads memory from LevelDB (catalog and settings), and from then on
 * it serves while it leads on that ballot. Every change (meta_group_commit) is proposed,
 * and returns once it is applied to this instance's LevelDB; the caller then changes its
 * memory, as a single meta does after its synced write. A change whose outcome is unknown
 * (no answer before the deadline) may still be applied later, behind memory's back: the
 * instance stops serving until a new barrier and reload.
 *
 * Threads: the group's thread (ticks every tick_ms, drains the inbox of peer messages and
 * proposals, runs group_process), the leadership thread (barrier and on_lead), and a few
 * sender threads per peer. Peer messages are PaxosMessage requests (Request.paxos) of group
 * (0, 0) to the peers' --listen URLs, answered at once (meta_group_handle_paxos queues
 * them), so a meta's rpc workers must never all wait on a commit (meta.c keeps one free).
 *
 * A leader cut off from the others may serve reads from its memory until check-quorum
 * makes it step down (an election timeout); its writes fail. Routers and nodes follow
 * epochs, so such a read is at worst one route behind.
 *
 * Every function is thread-safe and returns 0 or a negative errno. */
#ifndef QUORUM_META_GROUP_H
#define QUORUM_META_GROUP_H

#include "cluster/arena.h"
#include "quorum.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define META_GROUP_TICK_MS 10
#define META_GROUP_ELECTION_TICKS 30
/* How long a change may wait for its commit before its outcome is unknown. */
#define META_GROUP_COMMIT_MS 5000
#define META_GROUP_URL_BYTES 512

struct meta_group_options {
	const char *data_dir;		/* the WAL goes to DATA/paxos */
	const char *const *peer_urls;	/* member i + 1 listens on peer_urls[i] */
	size_t peer_count;		/* 1..PAXOS_MEMBERS_MAX */
	uint32_t self_id;		/* 1..peer_count */
	/* Runs on the leadership thread once the barrier is applied, before serving starts;
	 * 0 or a negative errno (then not serving; tried again a moment later). */
	int (*on_lead)(void *ctx);
	void *ctx;
};

struct meta_group;
struct leveldb_t;
struct leveldb_writebatch_t;

/* Opens the group over db (which must outlive it), its WAL and threads. Refuses a catalog
 * written by a meta that ran alone (-EEXIST, logged): the group cannot tell its history.
 * -EINVAL, -EBADMSG (damaged WAL), -EIO, -ENOMEM. */
int meta_group_start(const struct meta_group_options *options, struct leveldb_t *db,
		     struct meta_group **out);

/* A clean stop, while the rpc server still runs: when this instance leads, hands the
 * leadership to another member and waits until it no longer leads, timeout_ms at most. */
void meta_group_hand_off(struct meta_group *group, int64_t timeout_ms);

/* Stops the threads and closes the WAL (after the rpc server stopped: no more
 * meta_group_handle_paxos). Waiting commits fail with -ETIMEDOUT. */
void meta_group_stop(struct meta_group *group);

/* A PaxosMessage from a peer: queued for the group's thread; response's status says
 * whether it was taken (-EINVAL malformed, -ENOENT another group, -EAGAIN inbox full). */
void meta_group_handle_paxos(struct meta_group *group, const Quorum__PaxosMessage *message,
			     Quorum__Response *response, struct arena *arena);

/* 0 while this instance serves; -EREMOTE otherwise, with the leader it knows (*leader_id 0
 * when none; leader_url filled, "" when unknown, leader_url_bytes long). */
int meta_group_check(struct meta_group *group, uint32_t *leader_id, char *leader_url,
		     size_t leader_url_bytes);

/* Whether this instance serves (meta_group_check without the leader), ctx the group. */
bool meta_group_serving(void *ctx);

/* Fills response as a refusal of a client request by an instance that does not serve:
 * -EREMOTE with the leader's member id and URL when known. */
void meta_group_refuse(struct meta_group *group, Quorum__Response *response,
		       struct arena *arena);

/* catalog_commit_fn and settings_commit_fn (ctx is the group): proposes batch's operations
 * and waits until they are applied here, at most META_GROUP_COMMIT_MS. Returns 0, -EREMOTE
 * (not serving, or leadership lost: not applied), -ETIMEDOUT (outcome unknown; serving
 * stops until the next barrier), -EMSGSIZE, -ENOMEM, -EIO. */
int meta_group_commit(void *ctx, struct leveldb_writebatch_t *batch, char *why,
		      size_t why_bytes);

#endif

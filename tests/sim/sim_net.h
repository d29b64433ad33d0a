/* sim_net.h: a seeded, simulated network for Paxos cores, and the simulation's PRNG.
 *
 * Nodes are numbered 1..node_count. A sent message is deep-copied (the core's pointers live
 * only until paxos_advance) and scheduled for delivery after a random delay; it may be lost
 * or duplicated at send time; links can be cut one way or both; among the messages that
 * are due, delivery picks one at random, so messages are reordered. Time is the simulation's
 * tick, passed in by the caller. Everything derives from the seed: a run replays exactly.
 */
#ifndef QUORUM_SIM_NET_H
#define QUORUM_SIM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/paxos.h"

/* More than a group's members: a membership-changing simulation draws ids from a pool. */
#define SIM_NODES_MAX 8

struct sim_rng {
	uint64_t state;
};

static inline uint64_t sim_rng_next(struct sim_rng *rng)
{
	uint64_t z = (rng->state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A number in [0, bound), bound > 0. */
static inline uint64_t sim_rng_below(struct sim_rng *rng, uint64_t bound)
{
	return sim_rng_next(rng) % bound;
}

/* True with probability per_mille / 1000. */
static inline bool sim_rng_chance(struct sim_rng *rng, uint32_t per_mille)
{
	return sim_rng_below(rng, 1000) < per_mille;
}

struct sim_net_faults {
	uint32_t loss_per_mille;
	uint32_t duplicate_per_mille;
	uint32_t delay_ticks_max;	/* delay drawn in [0, delay_ticks_max] */
	uint32_t slow_per_mille;	/* some messages take much longer: */
	uint32_t slow_ticks_max;	/* a delay in [0, slow_ticks_max] */
};

struct sim_net_stats {
	uint64_t sent;
	uint64_t delivered;
	uint64_t lost;
	uint64_t duplicated;
	uint64_t blocked;
};

struct sim_net;

/* Returns 0, -EINVAL or -ENOMEM. */
int sim_net_create(struct sim_net **out, uint64_t seed, size_t node_count);
void sim_net_destroy(struct sim_net *net);

void sim_net_set_faults(struct sim_net *net, const struct sim_net_faults *faults);

/* Cuts (or restores) the link from one node to another, one way. */
void sim_net_block(struct sim_net *net, uint32_t from, uint32_t to, bool blocked);
/* Cuts every link between the nodes in side_mask (bit id-1) and the others, both ways. */
void sim_net_partition(struct sim_net *net, uint32_t side_mask);
/* Restores every link and drops no more messages (faults set to none). */
void sim_net_heal(struct sim_net *net);
bool sim_net_blocked(const struct sim_net *net, uint32_t from, uint32_t to);

/* Queues a copy of msg. Returns 0 or -ENOMEM. */
int sim_net_send(struct sim_net *net, uint64_t now_tick, const struct paxos_msg *msg);

/* Removes one message due at now_tick (at random among the due ones) into *out; the caller
 * frees it with sim_net_msg_free. Returns false when none is due. Messages over a cut link
 * are dropped here. */
bool sim_net_deliver(struct sim_net *net, uint64_t now_tick, struct paxos_msg **out);
void sim_net_msg_free(struct paxos_msg *msg);
/* A deep copy of msg (entries, values, snapshot), freed with sim_net_msg_free; NULL if out
 * of memory. */
struct paxos_msg *sim_net_msg_copy(const struct paxos_msg *msg);

/* Drops every message in flight to node (a crash loses its socket buffers). */
void sim_net_drop_to(struct sim_net *net, uint32_t node);

size_t sim_net_in_flight(const struct sim_net *net);
void sim_net_stats(const struct sim_net *net, struct sim_net_stats *stats);

#endif

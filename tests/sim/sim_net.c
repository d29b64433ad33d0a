/* sim_net.c: the simulated network (see sim_net.h). Messages in flight are an unordered
 * array; delivery picks a random due one, which gives reordering for free. */
#include "tests/sim/sim_net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct flight {
	uint64_t due_tick;
	struct paxos_msg *msg;
};

struct sim_net {
	struct sim_rng rng;
	size_t node_count;
	struct sim_net_faults faults;
	bool blocked[SIM_NODES_MAX][SIM_NODES_MAX];
	struct flight *flights;
	size_t flight_count;
	size_t flight_cap;
	struct sim_net_stats stats;
};

int sim_net_create(struct sim_net **out, uint64_t seed, size_t node_count)
{
	struct sim_net *net;

	*out = NULL;
	if (node_count == 0 || node_count > SIM_NODES_MAX)
		return -EINVAL;
	net = calloc(1, sizeof(*net));
	if (!net)
		return -ENOMEM;
	net->rng.state = seed;
	net->node_count = node_count;
	*out = net;
	return 0;
}

void sim_net_msg_free(struct paxos_msg *msg)
{
	if (!msg)
		return;
	for (size_t i = 0; i < msg->entry_count; i++)
		free((void *)msg->entries[i].value);
	free((void *)msg->entries);
	free((void *)msg->snapshot);
	free(msg);
}

void sim_net_destroy(struct sim_net *net)
{
	if (!net)
		return;
	for (size_t i = 0; i < net->flight_count; i++)
		sim_net_msg_free(net->flights[i].msg);
	free(net->flights);
	free(net);
}

void sim_net_set_faults(struct sim_net *net, const struct sim_net_faults *faults)
{
	net->faults = *faults;
}

static bool node_valid(const struct sim_net *net, uint32_t id)
{
	return id >= 1 && id <= net->node_count;
}

void sim_net_block(struct sim_net *net, uint32_t from, uint32_t to, bool blocked)
{
	if (node_valid(net, from) && node_valid(net, to))
		net->blocked[from - 1][to - 1] = blocked;
}

void sim_net_partition(struct sim_net *net, uint32_t side_mask)
{
	for (size_t a = 0; a < net->node_count; a++)
		for (size_t b = 0; b < net->node_count; b++)
			if (((side_mask >> a) & 1) != ((side_mask >> b) & 1))
				net->blocked[a][b] = true;
}

void sim_net_heal(struct sim_net *net)
{
	memset(net->blocked, 0, sizeof(net->blocked));
	memset(&net->faults, 0, sizeof(net->faults));
}

bool sim_net_blocked(const struct sim_net *net, uint32_t from, uint32_t to)
{
	return node_valid(net, from) && node_valid(net, to) && net->blocked[from - 1][to - 1];
}

struct paxos_msg *sim_net_msg_copy(const struct paxos_msg *msg)
{
	struct paxos_msg *m = malloc(sizeof(*m));
	struct paxos_entry *entries = NULL;

	if (!m)
		return NULL;
	*m = *msg;
	m->entries = NULL;
	m->snapshot = NULL;
	m->entry_count = 0;
	if (msg->entry_count) {
		entries = calloc(msg->entry_count, sizeof(*entries));
		if (!entries)
			goto fail;
		m->entries = entries;
		for (size_t i = 0; i < msg->entry_count; i++) {
			uint8_t *v = malloc(msg->entries[i].value_bytes ? msg->entries[i].value_bytes :
					    1);

			if (!v)
				goto fail;
			entries[i] = msg->entries[i];
			if (msg->entries[i].value_bytes)
				memcpy(v, msg->entries[i].value, msg->entries[i].value_bytes);
			entries[i].value = v;
			m->entry_count++;
		}
	}
	if (msg->snapshot_bytes || msg->snapshot) {
		uint8_t *s = malloc(msg->snapshot_bytes ? msg->snapshot_bytes : 1);

		if (!s)
			goto fail;
		memcpy(s, msg->snapshot, msg->snapshot_bytes);
		m->snapshot = s;
	}
	return m;
fail:
	sim_net_msg_free(m);
	return NULL;
}

static int flight_add(struct sim_net *net, uint64_t due_tick, const struct paxos_msg *msg)
{
	struct paxos_msg *copy;

	if (net->flight_count == net->flight_cap) {
		size_t cap = net->flight_cap ? 2 * net->flight_cap : 256;
		struct flight *f = realloc(net->flights, cap * sizeof(*f));

		if (!f)
			return -ENOMEM;
		net->flights = f;
		net->flight_cap = cap;
	}
	copy = sim_net_msg_copy(msg);
	if (!copy)
		return -ENOMEM;
	net->flights[net->flight_count].due_tick = due_tick;
	net->flights[net->flight_count].msg = copy;
	net->flight_count++;
	return 0;
}

int sim_net_send(struct sim_net *net, uint64_t now_tick, const struct paxos_msg *msg)
{
	uint64_t delay = sim_rng_below(&net->rng, (uint64_t)net->faults.delay_ticks_max + 1);
	int rc;

	net->stats.sent++;
	if (net->faults.slow_ticks_max && sim_rng_chance(&net->rng, net->faults.slow_per_mille))
		delay = sim_rng_below(&net->rng, (uint64_t)net->faults.slow_ticks_max + 1);
	if (sim_rng_chance(&net->rng, net->faults.loss_per_mille)) {
		net->stats.lost++;
		return 0;
	}
	rc = flight_add(net, now_tick + delay, msg);
	if (rc)
		return rc;
	if (sim_rng_chance(&net->rng, net->faults.duplicate_per_mille)) {
		net->stats.duplicated++;
		delay = sim_rng_below(&net->rng, (uint64_t)net->faults.delay_ticks_max * 2 + 1);
		return flight_add(net, now_tick + delay, msg);
	}
	return 0;
}

static void flight_remove(struct sim_net *net, size_t i)
{
	net->flights[i] = net->flights[--net->flight_count];
}

bool sim_net_deliver(struct sim_net *net, uint64_t now_tick, struct paxos_msg **out)
{
	for (;;) {
		size_t due = 0, pick, i;
		struct paxos_msg *m;

		for (i = 0; i < net->flight_count; i++)
			if (net->flights[i].due_tick <= now_tick)
				due++;
		if (due == 0)
			return false;
		pick = (size_t)sim_rng_below(&net->rng, due);
		for (i = 0; i < net->flight_count; i++)
			if (net->flights[i].due_tick <= now_tick && pick-- == 0)
				break;
		m = net->flights[i].msg;
		flight_remove(net, i);
		if (sim_net_blocked(net, m->from, m->to)) {
			net->stats.blocked++;
			sim_net_msg_free(m);
			continue;
		}
		net->stats.delivered++;
		*out = m;
		return true;
	}
}

void sim_net_drop_to(struct sim_net *net, uint32_t node)
{
	for (size_t i = 0; i < net->flight_count;) {
		if (net->flights[i].msg->to == node) {
			sim_net_msg_free(net->flights[i].msg);
			flight_remove(net, i);
			continue;
		}
		i++;
	}
}

size_t sim_net_in_flight(const struct sim_net *net)
{
	return net->flight_count;
}

void sim_net_stats(const struct sim_net *net, struct sim_net_stats *stats)
{
	*stats = net->stats;
}

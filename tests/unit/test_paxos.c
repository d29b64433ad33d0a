/* test_paxos.c: scenario tests of the Multi-Paxos core (cluster/paxos.c) with messages
 * delivered by hand: election, promises that carry accepted values, re-proposal of the
 * highest-ballot value, durability before PROMISE and ACCEPTED, the lease, stale ballots,
 * catch-up from the log and from a snapshot, hand-off, pre-vote, membership, and malformed
 * input. */
#include "cluster/paxos.h"
#include "tests/sim/sim_net.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define N 3
#define QUEUE_MAX 4096
#define E_TICKS 10

/* A group of cores (ids 1..N, index = id) and the messages between them. */
struct harness {
	struct paxos *core[N + 2];
	bool manual_persist[N + 2];	/* else persisted at once after each ready */
	uint64_t unpersisted[N + 2];	/* highest persist id not yet reported */
	bool cut_to[N + 2];		/* messages to this node are dropped */
	struct paxos_msg *queue[QUEUE_MAX];
	size_t queue_count;
	uint8_t applied[N + 2][512];	/* first byte of each applied value, by slot */
	uint64_t applied_slot[N + 2];
	struct paxos_read reads[N + 2][16];
	size_t read_count[N + 2];
	uint8_t snapshot[N + 2][600];	/* the "state machine": applied, as a snapshot */
	size_t member_count;
};

/* The snapshot is the harness's state: applied slot, then the applied bytes. */
static int snapshot_get(void *ctx, struct paxos_snapshot_ref *out)
{
	uint8_t *state = ctx;

	memcpy(&out->through_slot, state, 8);
	out->bytes = state;
	out->size_bytes = 8 + 512;
	return 0;
}

static struct paxos_config config_for(uint32_t id, size_t member_count, struct harness *h)
{
	struct paxos_config c;

	memset(&c, 0, sizeof(c));
	c.self_id = id;
	for (size_t i = 0; i < member_count; i++)
		c.members[i] = (uint32_t)i + 1;
	c.member_count = member_count;
	c.election_ticks = E_TICKS;
	c.heartbeat_ticks = 2;
	c.lease_ticks = 7;
	c.window_slots = 8;
	c.log_slots = 32;
	c.outbox_msgs = 256;
	c.seed = 42 + id;
	c.snapshot.get = snapshot_get;
	c.snapshot.ctx = h->snapshot[id];
	return c;
}

static void harness_init(struct harness *h)
{
	memset(h, 0, sizeof(*h));
	h->member_count = N;
	for (uint32_t id = 1; id <= N; id++) {
		struct paxos_config c = config_for(id, N, h);

		assert_int_equal(paxos_create(&h->core[id], &c, NULL), 0);
	}
}

static void harness_free(struct harness *h)
{
	for (size_t i = 0; i < N + 2; i++)
		paxos_destroy(h->core[i]);
	for (size_t i = 0; i < h->queue_count; i++)
		sim_net_msg_free(h->queue[i]);
}

static void drain(struct harness *h, uint32_t id)
{
	while (paxos_has_ready(h->core[id])) {
		struct paxos_ready rd;

		paxos_ready(h->core[id], &rd);
		for (size_t i = 0; i < rd.msg_count; i++) {
			assert_true(h->queue_count < QUEUE_MAX);
			h->queue[h->queue_count++] = sim_net_msg_copy(&rd.msgs[i]);
		}
		if (rd.has_snapshot) {
			memcpy(h->snapshot[id], rd.snapshot.bytes, rd.snapshot.size_bytes);
			memcpy(h->applied[id], rd.snapshot.bytes + 8, 512);
			h->applied_slot[id] = rd.snapshot.through_slot;
		}
		for (size_t i = 0; i < rd.committed_count; i++) {
			const struct paxos_entry *e = &rd.committed[i];

			assert_int_equal(e->slot, h->applied_slot[id] + 1);
			assert_true(e->slot < 512);
			h->applied[id][e->slot] = e->value_bytes ? e->value[0] : 0;
			h->applied_slot[id] = e->slot;
			memcpy(h->snapshot[id], &h->applied_slot[id], 8);
			memcpy(h->snapshot[id] + 8, h->applied[id], 512);
		}
		for (size_t i = 0; i < rd.read_count && h->read_count[id] < 16; i++)
			h->reads[id][h->read_count[id]++] = rd.reads[i];
		paxos_advance(h->core[id], &rd);
		if (rd.persist_id) {
			if (h->manual_persist[id])
				h->unpersisted[id] = rd.persist_id;
			else
				paxos_persisted(h->core[id], rd.persist_id);
		}
	}
}

static void persist(struct harness *h, uint32_t id)
{
	if (h->unpersisted[id]) {
		paxos_persisted(h->core[id], h->unpersisted[id]);
		h->unpersisted[id] = 0;
	}
	drain(h, id);
}

/* Delivers queued messages (and what they cause) until none is left. */
static void deliver_all(struct harness *h)
{
	for (int rounds = 0; h->queue_count && rounds < 100000; rounds++) {
		struct paxos_msg *m = h->queue[0];

		memmove(h->queue, h->queue + 1, (h->queue_count - 1) * sizeof(h->queue[0]));
		h->queue_count--;
		if (m->to < N + 2 && h->core[m->to] && !h->cut_to[m->to]) {
			int rc = paxos_step(h->core[m->to], m);

			/* Only a node the receiver does not count as a member yet is refused. */
			if (rc != 0) {
				struct paxos_status st;
				bool member = false;

				paxos_status(h->core[m->to], &st);
				for (size_t i = 0; i < st.member_count; i++)
					member = member || st.members[i] == m->from;
				assert_false(member);
			}
			drain(h, m->to);
		}
		sim_net_msg_free(m);
	}
	assert_int_equal(h->queue_count, 0);
}

static void drop_all(struct harness *h)
{
	for (size_t i = 0; i < h->queue_count; i++)
		sim_net_msg_free(h->queue[i]);
	h->queue_count = 0;
}

static void tick_all(struct harness *h, int ticks)
{
	for (int t = 0; t < ticks; t++) {
		for (uint32_t id = 1; id < N + 2; id++) {
			if (!h->core[id])
				continue;
			paxos_tick(h->core[id]);
			drain(h, id);
		}
		deliver_all(h);
	}
}

static struct paxos_status status_of(struct harness *h, uint32_t id)
{
	struct paxos_status st;

	paxos_status(h->core[id], &st);
	return st;
}

static uint32_t leader_of(struct harness *h)
{
	uint32_t leader = 0;

	for (uint32_t id = 1; id < N + 2; id++) {
		if (h->core[id] && status_of(h, id).role == PAXOS_LEADER) {
			assert_int_equal(leader, 0);
			leader = id;
		}
	}
	return leader;
}

static uint32_t elect(struct harness *h)
{
	for (int t = 0; t < 10 * E_TICKS && !leader_of(h); t++)
		tick_all(h, 1);
	assert_int_not_equal(leader_of(h), 0);
	tick_all(h, 2);	/* heartbeats: lease and commit of the first slot */
	return leader_of(h);
}

static uint64_t propose(struct harness *h, uint32_t id, char c)
{
	uint64_t slot = 0;
	uint8_t v = (uint8_t)c;

	assert_int_equal(paxos_propose(h->core[id], PAXOS_ENTRY_NORMAL, &v, 1, &slot, NULL), 0);
	drain(h, id);
	return slot;
}

static uint32_t other(uint32_t a, uint32_t b)
{
	for (uint32_t id = 1; id <= N; id++)
		if (id != a && id != b)
			return id;
	return 0;
}

/* ---- tests ---- */

static void test_election_and_commit(void **state)
{
	struct harness h;
	uint32_t leader;
	uint64_t slot;

	(void)state;
	harness_init(&h);
	leader = elect(&h);
	assert_true(status_of(&h, leader).lease_valid);
	slot = propose(&h, leader, 'x');
	deliver_all(&h);
	assert_int_equal(h.applied_slot[leader], slot);
	assert_int_equal(h.applied[leader][slot], 'x');
	tick_all(&h, 2);	/* followers learn the commit index from a heartbeat */
	for (uint32_t id = 1; id <= N; id++) {
		assert_int_equal(h.applied_slot[id], slot);
		assert_int_equal(h.applied[id][slot], 'x');
		if (id != leader) {
			uint32_t hint = 0;

			assert_int_equal(paxos_lease_read(h.core[id], 1, &hint), -EREMOTE);
			assert_int_equal(hint, leader);
			assert_int_equal(paxos_propose(h.core[id], 1, "y", 1, NULL, &hint), -EREMOTE);
			assert_int_equal(hint, leader);
		}
	}
	harness_free(&h);
}

/* Drives core 1 to candidate: its timer fires, node 2 grants the pre-vote. */
static void make_candidate(struct harness *h)
{
	struct paxos_msg ack;

	for (int t = 0; t < 3 * E_TICKS && status_of(h, 1).role == PAXOS_FOLLOWER; t++) {
		paxos_tick(h->core[1]);
		drain(h, 1);
	}
	assert_int_equal(status_of(h, 1).role, PAXOS_PRECANDIDATE);
	drop_all(h);
	memset(&ack, 0, sizeof(ack));
	ack.type = PAXOS_MSG_PREVOTE_ACK;
	ack.from = 2;
	ack.to = 1;
	ack.flags = PAXOS_FLAG_GRANTED;
	assert_int_equal(paxos_step(h->core[1], &ack), 0);
	assert_int_equal(status_of(h, 1).role, PAXOS_CANDIDATE);
}

static void test_promise_waits_for_persistence(void **state)
{
	struct harness h;
	struct paxos_msg prepare;
	struct paxos_ready rd;

	(void)state;
	harness_init(&h);
	tick_all(&h, E_TICKS - 1);	/* stays below every election timeout */
	drop_all(&h);
	for (int t = 0; t < 2; t++)	/* node 2's restart guard ends at E_TICKS */
		paxos_tick(h.core[2]);
	drain(&h, 2);
	drop_all(&h);
	memset(&prepare, 0, sizeof(prepare));
	prepare.type = PAXOS_MSG_PREPARE;
	prepare.from = 1;
	prepare.to = 2;
	prepare.ballot.round = 5;
	prepare.ballot.node_id = 1;
	prepare.slot = 1;
	assert_int_equal(paxos_step(h.core[2], &prepare), 0);
	paxos_ready(h.core[2], &rd);
	assert_true(rd.hard_state_changed);
	assert_int_equal(rd.promised.round, 5);
	assert_int_not_equal(rd.persist_id, 0);
	assert_int_equal(rd.msg_count, 0);	/* no PROMISE before the promise is durable */
	paxos_advance(h.core[2], &rd);
	paxos_persisted(h.core[2], rd.persist_id);
	paxos_ready(h.core[2], &rd);
	assert_int_equal(rd.msg_count, 1);
	assert_int_equal(rd.msgs[0].type, PAXOS_MSG_PROMISE);
	assert_int_equal(rd.msgs[0].ballot.round, 5);
	paxos_advance(h.core[2], &rd);
	harness_free(&h);
}

static void test_promise_carries_accepted_values(void **state)
{
	struct harness h;
	struct paxos_restore r;
	struct paxos_entry entries[2];
	struct paxos_config c;
	struct paxos_msg prepare;
	struct paxos_ready rd;

	(void)state;
	memset(&h, 0, sizeof(h));
	memset(entries, 0, sizeof(entries));
	entries[0].slot = 1;
	entries[0].ballot.round = 1;
	entries[0].ballot.node_id = 3;
	entries[0].type = PAXOS_ENTRY_NORMAL;
	entries[0].value = (const uint8_t *)"a";
	entries[0].value_bytes = 1;
	entries[1] = entries[0];
	entries[1].slot = 3;
	entries[1].value = (const uint8_t *)"c";
	memset(&r, 0, sizeof(r));
	r.promised = entries[0].ballot;
	r.entries = entries;
	r.entry_count = 2;
	c = config_for(2, N, &h);
	assert_int_equal(paxos_create(&h.core[2], &c, &r), 0);
	for (int t = 0; t < E_TICKS; t++)
		paxos_tick(h.core[2]);
	drain(&h, 2);
	drop_all(&h);
	memset(&prepare, 0, sizeof(prepare));
	prepare.type = PAXOS_MSG_PREPARE;
	prepare.from = 1;
	prepare.to = 2;
	prepare.ballot.round = 2;
	prepare.ballot.node_id = 1;
	prepare.slot = 1;
	assert_int_equal(paxos_step(h.core[2], &prepare), 0);
	drain(&h, 2);
	paxos_ready(h.core[2], &rd);
	paxos_advance(h.core[2], &rd);
	assert_int_equal(h.queue_count, 1);
	assert_int_equal(h.queue[0]->type, PAXOS_MSG_PROMISE);
	assert_int_equal(h.queue[0]->entry_count, 2);
	assert_int_equal(h.queue[0]->entries[0].slot, 1);
	assert_int_equal(h.queue[0]->entries[0].ballot.round, 1);
	assert_int_equal(h.queue[0]->entries[0].value[0], 'a');
	assert_int_equal(h.queue[0]->entries[1].slot, 3);
	assert_false(h.queue[0]->entries[1].chosen);
	harness_free(&h);
}

static void promise_from(struct harness *h, uint32_t from, const struct paxos_entry *e,
			 size_t count)
{
	struct paxos_msg m;
	struct paxos_status st = status_of(h, 1);

	memset(&m, 0, sizeof(m));
	m.type = PAXOS_MSG_PROMISE;
	m.from = from;
	m.to = 1;
	m.ballot = st.ballot;
	m.slot = 1;
	m.entries = e;
	m.entry_count = count;
	assert_int_equal(paxos_step(h->core[1], &m), 0);
}

static void test_reproposes_highest_ballot_value(void **state)
{
	struct harness h;
	struct paxos_entry from2[2], from3[1];
	const struct paxos_msg *accept = NULL;

	(void)state;
	harness_init(&h);
	make_candidate(&h);
	drain(&h, 1);	/* node 1's own promise is persisted at once */
	drop_all(&h);
	memset(from2, 0, sizeof(from2));
	memset(from3, 0, sizeof(from3));
	/* Slot 1: node 2 accepted "a" at (1,2), node 3 accepted "b" at (2,3): "b" wins.
	 * Slot 3: only "c"; slot 2 is a gap: a no-op. */
	from2[0] = (struct paxos_entry){ .slot = 1, .ballot = { 1, 2 }, .type = 1,
					 .value = (const uint8_t *)"a", .value_bytes = 1 };
	from2[1] = (struct paxos_entry){ .slot = 3, .ballot = { 1, 2 }, .type = 1,
					 .value = (const uint8_t *)"c", .value_bytes = 1 };
	from3[0] = (struct paxos_entry){ .slot = 1, .ballot = { 2, 3 }, .type = 1,
					 .value = (const uint8_t *)"b", .value_bytes = 1 };
	promise_from(&h, 3, from3, 1);
	assert_int_equal(status_of(&h, 1).role, PAXOS_LEADER);	/* 1 and 3: a majority */
	drain(&h, 1);
	for (size_t i = 0; i < h.queue_count; i++)
		if (h.queue[i]->type == PAXOS_MSG_ACCEPT && h.queue[i]->to == 3)
			accept = h.queue[i];
	assert_non_null(accept);
	assert_int_equal(accept->entry_count, 2);	/* slot 1 ("b") and the no-op in 2 */
	assert_int_equal(accept->entries[0].slot, 1);
	assert_int_equal(accept->entries[0].value[0], 'b');
	assert_int_equal(accept->entries[0].ballot.round, status_of(&h, 1).ballot.round);
	assert_int_equal(accept->entries[1].slot, 2);
	assert_int_equal(accept->entries[1].type, PAXOS_ENTRY_NOOP);
	harness_free(&h);

	/* With node 2's promise instead, slot 3's "c" must be re-proposed too. */
	harness_init(&h);
	make_candidate(&h);
	drain(&h, 1);
	drop_all(&h);
	promise_from(&h, 2, from2, 2);
	drain(&h, 1);
	accept = NULL;
	for (size_t i = 0; i < h.queue_count; i++)
		if (h.queue[i]->type == PAXOS_MSG_ACCEPT && h.queue[i]->to == 2)
			accept = h.queue[i];
	assert_non_null(accept);
	assert_int_equal(accept->entry_count, 4);	/* a, no-op, c, then its own no-op */
	assert_int_equal(accept->entries[0].value[0], 'a');
	assert_int_equal(accept->entries[1].type, PAXOS_ENTRY_NOOP);
	assert_int_equal(accept->entries[2].value[0], 'c');
	assert_int_equal(accept->entries[3].slot, 4);
	assert_int_equal(accept->entries[3].type, PAXOS_ENTRY_NOOP);
	harness_free(&h);
}

static void test_no_commit_without_durable_majority(void **state)
{
	struct harness h;
	uint32_t leader, f1, f2;
	uint64_t slot;

	(void)state;
	harness_init(&h);
	leader = elect(&h);
	f1 = other(leader, 0);
	f2 = other(leader, f1);
	h.manual_persist[leader] = true;
	h.manual_persist[f1] = true;
	h.cut_to[f2] = true;
	slot = propose(&h, leader, 'x');
	deliver_all(&h);
	tick_all(&h, 3);
	/* f1 holds the entry but has not made it durable: no ACCEPTED, nothing chosen. */
	assert_true(status_of(&h, leader).commit_slot < slot);
	persist(&h, leader);
	deliver_all(&h);
	assert_true(status_of(&h, leader).commit_slot < slot);	/* one durable copy of 3 */
	persist(&h, f1);
	deliver_all(&h);
	assert_int_equal(status_of(&h, leader).commit_slot, slot);
	assert_int_equal(h.applied[leader][slot], 'x');
	harness_free(&h);
}

static void test_lease_read(void **state)
{
	struct harness h;
	uint32_t leader, hint = 0;

	(void)state;
	harness_init(&h);
	leader = elect(&h);
	assert_int_equal(paxos_lease_read(h.core[leader], 7, &hint), 0);
	drain(&h, leader);
	assert_int_equal(h.read_count[leader], 1);
	assert_int_equal(h.reads[leader][0].read_id, 7);
	assert_true(h.reads[leader][0].read_slot <= h.applied_slot[leader]);
	/* Cut the leader off: its lease runs out before anyone may elect another. */
	for (uint32_t id = 1; id <= N; id++)
		if (id != leader)
			h.cut_to[id] = true;
	for (int t = 0; t < 7; t++) {
		paxos_tick(h.core[leader]);
		drain(&h, leader);
		drop_all(&h);
	}
	assert_false(status_of(&h, leader).lease_valid);
	assert_int_equal(paxos_lease_read(h.core[leader], 8, &hint), -EAGAIN);
	harness_free(&h);
}

static void test_lease_guard_refuses_promise(void **state)
{
	struct harness h;
	uint32_t leader, f1;
	struct paxos_msg prepare;

	(void)state;
	harness_init(&h);
	leader = elect(&h);
	f1 = other(leader, 0);
	memset(&prepare, 0, sizeof(prepare));
	prepare.type = PAXOS_MSG_PREPARE;
	prepare.from = other(leader, f1);
	prepare.to = f1;
	prepare.ballot.round = 100;
	prepare.ballot.node_id = prepare.from;
	prepare.slot = 1;
	assert_int_equal(paxos_step(h.core[f1], &prepare), 0);
	assert_int_equal(status_of(&h, f1).promised.round, status_of(&h, leader).ballot.round);
	assert_int_equal(status_of(&h, f1).counters.msgs_guarded, 1);
	harness_free(&h);
}

static void test_stale_ballot_ignored(void **state)
{
	struct harness h;
	struct paxos_msg accept;
	struct paxos_entry e = { .slot = 1, .ballot = { 50, 1 }, .type = 1,
				 .value = (const uint8_t *)"z", .value_bytes = 1 };
	struct paxos_ready rd;

	(void)state;
	harness_init(&h);
	memset(&accept, 0, sizeof(accept));
	accept.type = PAXOS_MSG_ACCEPT;
	accept.from = 1;
	accept.to = 2;
	accept.ballot = e.ballot;
	accept.entries = &e;
	accept.entry_count = 1;
	assert_int_equal(paxos_step(h.core[2], &accept), 0);	/* raises the promise to 50 */
	drain(&h, 2);
	drop_all(&h);
	accept.ballot.round = 49;
	e.ballot.round = 49;
	e.slot = 2;
	assert_int_equal(paxos_step(h.core[2], &accept), 0);
	paxos_ready(h.core[2], &rd);
	assert_int_equal(rd.entry_count, 0);		/* nothing accepted */
	assert_int_equal(rd.msg_count, 1);
	assert_int_equal(rd.msgs[0].type, PAXOS_MSG_NACK);
	assert_int_equal(rd.msgs[0].ballot.round, 50);
	paxos_advance(h.core[2], &rd);
	assert_int_equal(status_of(&h, 2).counters.msgs_stale, 1);
	harness_free(&h);
}

static void test_catch_up_from_log(void **state)
{
	struct harness h;
	uint32_t leader, lagger;
	uint64_t last = 0;

	(void)state;
	harness_init(&h);
	leader = elect(&h);
	lagger = other(leader, 0);
	h.cut_to[lagger] = true;
	for (int i = 0; i < 12; i++) {
		last = propose(&h, leader, (char)('a' + i));
		deliver_all(&h);
	}
	assert_int_equal(status_of(&h, leader).commit_slot, last);
	h.cut_to[lagger] = false;
	tick_all(&h, 6);
	assert_int_equal(h.applied_slot[lagger], last);
	for (uint64_t s = 1; s <= last; s++)
		assert_int_equal(h.applied[lagger][s], h.applied[leader][s]);
	harness_free(&h);
}

static void test_catch_up_from_snapshot(void **state)
{
	struct harness h;
	uint32_t leader, lagger;
	uint64_t last = 0;

	(void)state;
	harness_init(&h);
	leader = elect(&h);
	lagger = other(leader, 0);
	h.cut_to[lagger] = true;
	for (int i = 0; i < 20; i++) {
		last = propose(&h, leader, (char)('a' + i));
		deliver_all(&h);
	}
	tick_all(&h, 2);
	for (uint32_t id = 1; id <= N; id++)
		if (id != lagger)
			assert_int_equal(paxos_compact(h.core[id], h.applied_slot[id]), 0);
	assert_int_equal(status_of(&h, leader).log_first_slot, last + 1);
	h.cut_to[lagger] = false;
	tick_all(&h, 6);
	assert_int_equal(status_of(&h, lagger).counters.snapshots_installed, 1);
	assert_int_equal(h.applied_slot[lagger], last);
	for (uint64_t s = 1; s <= last; s++)
		assert_int_equal(h.applied[lagger][s], h.applied[leader][s]);
	/* And it follows the log from there. */
	last = propose(&h, leader, 'Z');
	deliver_all(&h);
	tick_all(&h, 2);
	assert_int_equal(h.applied[lagger][last], 'Z');
	harness_free(&h);
}

static void test_transfer_leadership(void **state)
{
	struct harness h;
	uint32_t leader, target;
	uint64_t slot;

	(void)state;
	harness_init(&h);
	leader = elect(&h);
	target = other(leader, 0);
	assert_int_equal(paxos_transfer_leadership(h.core[leader], leader), -EINVAL);
	assert_int_equal(paxos_transfer_leadership(h.core[target], leader), -EREMOTE);
	assert_int_equal(paxos_transfer_leadership(h.core[leader], target), 0);
	assert_false(status_of(&h, leader).lease_valid);
	drain(&h, leader);
	deliver_all(&h);	/* at once: no election timeout, guard skipped for the hand-off */
	assert_int_equal(leader_of(&h), target);
	tick_all(&h, 2);
	slot = propose(&h, target, 'q');
	deliver_all(&h);
	assert_int_equal(h.applied[target][slot], 'q');
	harness_free(&h);
}

static void test_prevote_prevents_disruption(void **state)
{
	struct harness h;
	uint32_t leader, deaf;
	struct paxos_ballot before;

	(void)state;
	harness_init(&h);
	leader = elect(&h);
	deaf = other(leader, 0);
	before = status_of(&h, leader).ballot;
	/* deaf no longer hears the leader (one-way fault); the third node does. */
	for (int t = 0; t < 6 * E_TICKS; t++) {
		for (uint32_t id = 1; id <= N; id++) {
			paxos_tick(h.core[id]);
			drain(&h, id);
		}
		for (size_t i = 0; i < h.queue_count; i++) {
			if (h.queue[i]->from == leader && h.queue[i]->to == deaf) {
				sim_net_msg_free(h.queue[i]);
				h.queue[i] = h.queue[--h.queue_count];
				i--;
			}
		}
		deliver_all(&h);
	}
	assert_int_equal(leader_of(&h), leader);
	assert_true(paxos_ballot_compare(status_of(&h, leader).ballot, before) == 0);
	assert_int_equal(status_of(&h, deaf).counters.elections, 0);
	harness_free(&h);
}

static void test_membership_change(void **state)
{
	struct harness h;
	struct paxos_config c;
	uint32_t leader, members[PAXOS_MEMBERS_MAX];
	uint8_t buf[4 + 4 * PAXOS_MEMBERS_MAX];
	size_t size;
	uint64_t slot;

	(void)state;
	harness_init(&h);
	leader = elect(&h);
	/* Two changes at once are refused. */
	for (uint32_t i = 0; i < 5; i++)
		members[i] = i + 1;
	size = paxos_config_encode(members, 5, buf);
	assert_int_equal(paxos_propose(h.core[leader], PAXOS_ENTRY_CONFIG, buf, size, NULL, NULL),
			 -EINVAL);
	/* Add node 4, which starts empty and knows the new configuration. */
	size = paxos_config_encode(members, 4, buf);
	c = config_for(4, 4, &h);
	assert_int_equal(paxos_create(&h.core[4], &c, NULL), 0);
	assert_int_equal(paxos_propose(h.core[leader], PAXOS_ENTRY_CONFIG, buf, size, &slot, NULL),
			 0);
	assert_int_equal(paxos_propose(h.core[leader], 1, "x", 1, NULL, NULL), -EAGAIN);
	drain(&h, leader);
	deliver_all(&h);
	assert_int_equal(status_of(&h, leader).member_count, 4);
	tick_all(&h, 4);
	slot = propose(&h, leader, 'n');
	deliver_all(&h);
	tick_all(&h, 4);
	assert_int_equal(h.applied[4][slot], 'n');
	assert_int_equal(status_of(&h, 4).member_count, 4);
	/* Remove it again. */
	size = paxos_config_encode(members, 3, buf);
	assert_int_equal(paxos_propose(h.core[leader], PAXOS_ENTRY_CONFIG, buf, size, NULL, NULL),
			 0);
	drain(&h, leader);
	deliver_all(&h);
	assert_int_equal(status_of(&h, leader).member_count, 3);
	harness_free(&h);
}

static void test_malformed_messages_dropped(void **state)
{
	struct harness h;
	struct paxos_msg m, bad;
	struct paxos_entry e = { .slot = 1, .ballot = { 9, 1 }, .type = 1,
				 .value = (const uint8_t *)"v", .value_bytes = 1 };
	uint64_t count = 0;

	(void)state;
	harness_init(&h);
	memset(&m, 0, sizeof(m));
	m.type = PAXOS_MSG_ACCEPT;
	m.from = 1;
	m.to = 2;
	m.ballot.round = 9;
	m.ballot.node_id = 1;
	m.entries = &e;
	m.entry_count = 1;

	bad = m; bad.from = 9;			/* not a member */
	assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
	bad = m; bad.to = 3;			/* not for us */
	assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
	bad = m; bad.from = 2;			/* from ourselves */
	assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
	bad = m; bad.type = 99;
	assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
	bad = m; bad.entries = NULL;
	assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
	bad = m; bad.entry_count = PAXOS_BATCH_MAX + 1;
	assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
	bad = m; bad.slot_count = PAXOS_BATCH_MAX + 1;
	assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
	bad = m; bad.ballot.node_id = 3;	/* speaks for another's ballot */
	assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
	{
		struct paxos_entry be = e;

		bad = m;
		bad.entries = &be;
		be.value = NULL;
		assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
		be = e; be.slot = 0;
		assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
		be = e; be.type = 7;
		assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
		be = e; be.type = PAXOS_ENTRY_CONFIG;	/* not a member list */
		assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
		be = e; be.value_bytes = PAXOS_VALUE_BYTES_MAX + 1;
		assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
	}
	bad = m; bad.type = PAXOS_MSG_SNAPSHOT; bad.entries = NULL; bad.entry_count = 0;
	bad.slot = 5; bad.member_count = 0;
	assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
	bad = m; bad.type = PAXOS_MSG_HEARTBEAT; bad.entry_count = 1;	/* entries on a heartbeat */
	assert_int_equal(paxos_step(h.core[2], &bad), -EINVAL); count++;
	assert_int_equal(status_of(&h, 2).counters.msgs_malformed, count);
	assert_int_equal(status_of(&h, 2).promised.round, 0);	/* nothing of them was used */
	/* The good one is accepted. */
	assert_int_equal(paxos_step(h.core[2], &m), 0);
	assert_int_equal(status_of(&h, 2).promised.round, 9);
	harness_free(&h);
}

static void test_bad_config_rejected(void **state)
{
	struct paxos *core;
	struct paxos_config c;
	struct harness h;

	(void)state;
	memset(&h, 0, sizeof(h));
	c = config_for(1, N, &h);
	c.lease_ticks = c.election_ticks;	/* a lease must end before an election */
	assert_int_equal(paxos_create(&core, &c, NULL), -EINVAL);
	c = config_for(1, N, &h);
	c.log_slots = 2 * c.window_slots;
	assert_int_equal(paxos_create(&core, &c, NULL), -EINVAL);
	c = config_for(1, N, &h);
	c.members[1] = c.members[0];
	assert_int_equal(paxos_create(&core, &c, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_election_and_commit),
		cmocka_unit_test(test_promise_waits_for_persistence),
		cmocka_unit_test(test_promise_carries_accepted_values),
		cmocka_unit_test(test_reproposes_highest_ballot_value),
		cmocka_unit_test(test_no_commit_without_durable_majority),
		cmocka_unit_test(test_lease_read),
		cmocka_unit_test(test_lease_guard_refuses_promise),
		cmocka_unit_test(test_stale_ballot_ignored),
		cmocka_unit_test(test_catch_up_from_log),
		cmocka_unit_test(test_catch_up_from_snapshot),
		cmocka_unit_test(test_transfer_leadership),
		cmocka_unit_test(test_prevote_prevents_disruption),
		cmocka_unit_test(test_membership_change),
		cmocka_unit_test(test_malformed_messages_dropped),
		cmocka_unit_test(test_bad_config_rejected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* group.c: a replication group replica: the Paxos core, its WAL and a state machine, driven
 * by one thread (see group.h for the ready cycle and the WAL record format).
 *
 * Bookkeeping kept beside the core, each a ring of log_slots indexed by slot % log_slots
 * (the core never holds more than log_slots slots past the applied slot, so live slots never
 * collide):
 * - waiting proposals (slot, token, proposal id), completed when their slot is applied;
 * - the WAL index of the latest record of each slot not yet applied, so compaction knows
 *   the oldest record it must keep. */
#include "cluster/group.h"

#include "cluster/arena.h"
#include "cluster/log.h"
#include "quorum.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define WAL_HARD_STATE_BYTES 14
#define WAL_ENTRY_HEADER_BYTES 26
#define PROCESS_CYCLES_MAX 64	/* ready cycles per group_process; the rest waits a call */

struct waiting {
	uint64_t slot;			/* 0: free */
	uint64_t token;
	uint64_t proposal_id;
};

struct slot_record {
	uint64_t slot;			/* 0: none */
	uint64_t wal_index;
};

struct group {
	struct group_config config;
	const struct group_sm *sm;
	struct group_callbacks callbacks;
	struct wal *wal;
	struct paxos *core;
	bool failed;

	uint64_t applied_slot;		/* the state machine's */
	uint64_t compacted_through;
	bool has_hard_state;
	struct paxos_ballot promised;
	uint64_t hard_state_wal_index;

	struct waiting *waiting;	/* log_slots */
	size_t waiting_count;
	uint32_t proposal_seq;
	struct slot_record *records;	/* log_slots */
	struct group_apply *applies;	/* log_slots: one ready's committed entries */
	uint8_t *snapshot_bytes;	/* the last snapshot handed to the core */

	uint8_t *record_buf;		/* WAL record being built */
	size_t record_buf_bytes;

	uint64_t wal_syncs;
	uint64_t entries_persisted;
	uint64_t compactions;
};

void group_config_init(struct group_config *config)
{
	memset(config, 0, sizeof(*config));
	config->election_ticks = 20;
	config->heartbeat_ticks = 3;
	config->lease_ticks = 12;
	config->window_slots = 64;
	config->log_slots = 1024;
	config->outbox_msgs = 256;
	config->compact_every_slots = 512;
	config->compact_keep_slots = 256;
	wal_options_init(&config->wal);
}

/* ---- WAL records ---- */

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int record_buf_reserve(struct group *g, size_t size_bytes)
{
	uint8_t *buf;

	if (size_bytes <= g->record_buf_bytes)
		return 0;
	buf = realloc(g->record_buf, size_bytes);
	if (!buf)
		return -ENOMEM;
	g->record_buf = buf;
	g->record_buf_bytes = size_bytes;
	return 0;
}

static int wal_append_hard_state(struct group *g, struct paxos_ballot promised)
{
	uint8_t rec[WAL_HARD_STATE_BYTES];
	uint64_t index;
	int rc;

	rec[0] = GROUP_WAL_VERSION;
	rec[1] = GROUP_WAL_HARD_STATE;
	put_u64(rec + 2, promised.round);
	put_u32(rec + 10, promised.node_id);
	rc = wal_append(g->wal, rec, sizeof(rec), &index);
	if (rc)
		return rc;
	g->has_hard_state = true;
	g->promised = promised;
	g->hard_state_wal_index = index;
	return 0;
}

static int wal_append_entry(struct group *g, const struct paxos_entry *e)
{
	size_t size_bytes = WAL_ENTRY_HEADER_BYTES + e->value_bytes;
	struct slot_record *r;
	uint64_t index;
	int rc;

	rc = record_buf_reserve(g, size_bytes);
	if (rc)
		return rc;
	g->record_buf[0] = GROUP_WAL_VERSION;
	g->record_buf[1] = GROUP_WAL_ENTRY;
	put_u64(g->record_buf + 2, e->slot);
	put_u64(g->record_buf + 10, e->ballot.round);
	put_u32(g->record_buf + 18, e->ballot.node_id);
	put_u32(g->record_buf + 22, e->type);
	if (e->value_bytes)
		memcpy(g->record_buf + WAL_ENTRY_HEADER_BYTES, e->value, e->value_bytes);
	rc = wal_append(g->wal, g->record_buf, size_bytes, &index);
	if (rc)
		return rc;
	r = &g->records[e->slot % g->config.log_slots];
	r->slot = e->slot;
	r->wal_index = index;
	g->entries_persisted++;
	return 0;
}

/* Entries read back at open; values point into the records (kept until the core copied). */
struct replay {
	struct paxos_entry *entries;
	size_t count;
	size_t cap;
	void **payloads;
	size_t payload_count;
	size_t payload_cap;
};

static void replay_free(struct replay *r)
{
	for (size_t i = 0; i < r->payload_count; i++)
		free(r->payloads[i]);
	free(r->payloads);
	free(r->entries);
}

static int replay_keep_payload(struct replay *r, void *payload)
{
	if (r->payload_count == r->payload_cap) {
		size_t cap = r->payload_cap ? 2 * r->payload_cap : 64;
		void **p = realloc(r->payloads, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		r->payloads = p;
		r->payload_cap = cap;
	}
	r->payloads[r->payload_count++] = payload;
	return 0;
}

static int replay_add_entry(struct replay *r, const struct paxos_entry *e)
{
	if (r->count == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		struct paxos_entry *p = realloc(r->entries, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		r->entries = p;
		r->cap = cap;
	}
	r->entries[r->count++] = *e;
	return 0;
}

/* One WAL record into the replay state. payload is taken over (kept or freed). */
static int replay_record(struct group *g, struct replay *r, uint64_t index, uint8_t *payload,
			 size_t size_bytes)
{
	struct paxos_entry e;
	int rc;

	if (size_bytes < 2 || payload[0] != GROUP_WAL_VERSION) {
		log_error("group %" PRIu64 "/%" PRIu64 ": WAL record %" PRIu64
			  " has an unknown version", g->config.id.table_id,
			  g->config.id.partition_id, index);
		free(payload);
		return -EBADMSG;
	}
	if (payload[1] == GROUP_WAL_HARD_STATE && size_bytes == WAL_HARD_STATE_BYTES) {
		g->has_hard_state = true;
		g->promised.round = get_u64(payload + 2);
		g->promised.node_id = get_u32(payload + 10);
		g->hard_state_wal_index = index;
		free(payload);
		return 0;
	}
	if (payload[1] != GROUP_WAL_ENTRY || size_bytes < WAL_ENTRY_HEADER_BYTES) {
		log_error("group %" PRIu64 "/%" PRIu64 ": WAL record %" PRIu64 " is malformed",
			  g->config.id.table_id, g->config.id.partition_id, index);
		free(payload);
		return -EBADMSG;
	}
	memset(&e, 0, sizeof(e));
	e.slot = get_u64(payload + 2);
	e.ballot.round = get_u64(payload + 10);
	e.ballot.node_id = get_u32(payload + 18);
	e.type = get_u32(payload + 22);
	e.value_bytes = size_bytes - WAL_ENTRY_HEADER_BYTES;
	e.value = e.value_bytes ? payload + WAL_ENTRY_HEADER_BYTES : NULL;
	if (e.slot == 0 || e.type > PAXOS_ENTRY_CONFIG) {
		free(payload);
		return -EBADMSG;
	}
	if (e.slot <= g->applied_slot) {
		free(payload);
		return 0;
	}
	rc = replay_keep_payload(r, payload);
	if (rc) {
		free(payload);
		return rc;
	}
	rc = replay_add_entry(r, &e);
	if (rc)
		return rc;
	g->records[e.slot % g->config.log_slots] = (struct slot_record){ e.slot, index };
	return 0;
}

static int replay_wal(struct group *g, struct replay *r)
{
	struct wal_iter iter;
	uint64_t index;
	void *payload;
	size_t size_bytes;
	int rc;

	wal_iter_init(&iter, g->wal, wal_first_index(g->wal));
	while ((rc = wal_iter_next(&iter, &index, &payload, &size_bytes)) == 1) {
		rc = replay_record(g, r, index, payload, size_bytes);
		if (rc)
			return rc;
	}
	return rc;
}

/* ---- the core's snapshot source ---- */

static int group_snapshot_get(void *ctx, struct paxos_snapshot_ref *out)
{
	struct group *g = ctx;
	uint8_t *bytes = NULL;
	size_t size_bytes = 0;
	uint64_t through;
	int rc;

	rc = g->sm->snapshot_get(g->sm->ctx, &bytes, &size_bytes, &through);
	if (rc)
		return rc;
	free(g->snapshot_bytes);
	g->snapshot_bytes = bytes;
	out->through_slot = through;
	out->bytes = bytes;
	out->size_bytes = size_bytes;
	return 0;
}

/* ---- open / close ---- */

int group_open(const struct io *io, const char *wal_dir, const struct group_config *config,
	       const struct group_sm *sm, const struct group_callbacks *callbacks,
	       struct group **out)
{
	struct paxos_config pc;
	struct paxos_restore restore;
	struct replay replay = { 0 };
	uint32_t members[PAXOS_MEMBERS_MAX];
	size_t member_count = 0;
	struct group *g;
	int rc;

	*out = NULL;
	if (!config->log_slots || !sm || !sm->apply || !sm->snapshot_get ||
	    !sm->snapshot_install || !sm->state || !callbacks || !callbacks->send)
		return -EINVAL;
	if (config->compact_every_slots &&
	    config->compact_keep_slots + config->compact_every_slots + config->window_slots >
	    config->log_slots)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->config = *config;
	g->sm = sm;
	g->callbacks = *callbacks;
	g->waiting = calloc(config->log_slots, sizeof(*g->waiting));
	g->records = calloc(config->log_slots, sizeof(*g->records));
	g->applies = calloc(config->log_slots, sizeof(*g->applies));
	if (!g->waiting || !g->records || !g->applies) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = sm->state(sm->ctx, &g->applied_slot, members, &member_count);
	if (rc)
		goto fail;
	g->compacted_through = g->applied_slot;
	rc = wal_open(io, wal_dir, &config->wal, &g->wal);
	if (rc)
		goto fail;
	rc = replay_wal(g, &replay);
	if (rc)
		goto fail;

	memset(&pc, 0, sizeof(pc));
	pc.self_id = config->self_id;
	if (member_count) {
		memcpy(pc.members, members, member_count * sizeof(members[0]));
		pc.member_count = member_count;
	} else {
		memcpy(pc.members, config->members, sizeof(pc.members));
		pc.member_count = config->member_count;
	}
	pc.election_ticks = config->election_ticks;
	pc.heartbeat_ticks = config->heartbeat_ticks;
	pc.lease_ticks = config->lease_ticks;
	pc.window_slots = config->window_slots;
	pc.log_slots = config->log_slots;
	pc.outbox_msgs = config->outbox_msgs;
	pc.seed = config->seed ^ ((uint64_t)config->incarnation << 40);
	pc.joining = sm->needs_snapshot && sm->needs_snapshot(sm->ctx);
	pc.snapshot.get = group_snapshot_get;
	pc.snapshot.ctx = g;
	memset(&restore, 0, sizeof(restore));
	restore.promised = g->promised;
	restore.applied_slot = g->applied_slot;
	restore.entries = replay.entries;
	restore.entry_count = replay.count;
	rc = paxos_create(&g->core, &pc, &restore);
	replay_free(&replay);
	if (rc) {
		log_error("group %" PRIu64 "/%" PRIu64 ": the core refused the replayed WAL: %d",
			  config->id.table_id, config->id.partition_id, rc);
		goto fail;
	}
	*out = g;
	return 0;
fail:
	replay_free(&replay);
	group_close(g);
	return rc;
}

void group_close(struct group *g)
{
	if (!g)
		return;
	paxos_destroy(g->core);
	if (g->wal)
		wal_close(g->wal);
	free(g->waiting);
	free(g->records);
	free(g->applies);
	free(g->snapshot_bytes);
	free(g->record_buf);
	free(g);
}

/* ---- inputs ---- */

int group_step(struct group *g, const struct paxos_msg *msg)
{
	if (g->failed)
		return -EIO;
	if (msg->to != g->config.self_id)
		return -EINVAL;
	return paxos_step(g->core, msg);
}

void group_tick(struct group *g)
{
	if (!g->failed)
		paxos_tick(g->core);
}

static struct waiting *waiting_find_token(struct group *g, uint64_t token)
{
	if (!g->waiting_count)
		return NULL;
	for (uint32_t i = 0; i < g->config.log_slots; i++)
		if (g->waiting[i].slot && g->waiting[i].token == token)
			return &g->waiting[i];
	return NULL;
}

static void waiting_complete(struct group *g, struct waiting *w, int status, int apply_status,
			     const uint8_t *result, size_t result_bytes)
{
	uint64_t token = w->token;

	w->slot = 0;
	g->waiting_count--;
	if (g->callbacks.proposal_done)
		g->callbacks.proposal_done(g->callbacks.ctx, token, status, apply_status, result,
					   result_bytes);
}

int group_propose(struct group *g, const void *command, size_t command_bytes, uint64_t token,
		  uint32_t *leader_hint)
{
	Quorum__GroupEntry entry = QUORUM__GROUP_ENTRY__INIT;
	uint64_t proposal_id, slot;
	struct waiting *w;
	size_t size_bytes;
	uint8_t *buf;
	int rc;

	if (leader_hint)
		*leader_hint = 0;
	if (g->failed)
		return -EIO;
	if (command_bytes && !command)
		return -EINVAL;
	if (waiting_find_token(g, token))
		return -EBUSY;
	proposal_id = ((uint64_t)g->config.incarnation << 32) | (g->proposal_seq + 1u);
	entry.version = GROUP_ENTRY_VERSION;
	entry.proposer_id = g->config.self_id;
	entry.proposal_id = proposal_id;
	entry.command.data = (uint8_t *)command;
	entry.command.len = command_bytes;
	size_bytes = quorum__group_entry__get_packed_size(&entry);
	if (size_bytes > PAXOS_VALUE_BYTES_MAX)
		return -EMSGSIZE;
	buf = malloc(size_bytes);
	if (!buf)
		return -ENOMEM;
	quorum__group_entry__pack(&entry, buf);
	rc = paxos_propose(g->core, PAXOS_ENTRY_NORMAL, buf, size_bytes, &slot, leader_hint);
	free(buf);
	if (rc)
		return rc;
	g->proposal_seq++;
	w = &g->waiting[slot % g->config.log_slots];
	if (w->slot) {
		/* Cannot happen while the core keeps its window; never leave a waiter behind. */
		log_warn("group %" PRIu64 "/%" PRIu64 ": proposal at slot %" PRIu64
			 " replaced a waiter of slot %" PRIu64, g->config.id.table_id,
			 g->config.id.partition_id, slot, w->slot);
		waiting_complete(g, w, -ETIMEDOUT, 0, NULL, 0);
	}
	w->slot = slot;
	w->token = token;
	w->proposal_id = proposal_id;
	g->waiting_count++;
	return 0;
}

int group_read(struct group *g, uint64_t token, uint32_t *leader_hint)
{
	if (leader_hint)
		*leader_hint = 0;
	if (g->failed)
		return -EIO;
	return paxos_lease_read(g->core, token, leader_hint);
}

int group_cancel(struct group *g, uint64_t token)
{
	struct waiting *w = waiting_find_token(g, token);

	if (!w)
		return -ENOENT;
	w->slot = 0;
	g->waiting_count--;
	return 0;
}

static bool members_have(const uint32_t *members, size_t count, uint32_t id)
{
	for (size_t i = 0; i < count; i++)
		if (members[i] == id)
			return true;
	return false;
}

/* Proposes the configuration in force with one member added (add != 0) or one removed. */
static int propose_member_change(struct group *g, const struct paxos_status *st, uint32_t add,
				 uint32_t remove, uint32_t *leader_hint)
{
	uint32_t next[PAXOS_MEMBERS_MAX];
	uint8_t value[PAXOS_MEMBERS_MAX * 4 + 8];
	size_t count = 0, value_bytes;
	int rc;

	for (size_t i = 0; i < st->member_count; i++)
		if (st->members[i] != remove)
			next[count++] = st->members[i];
	if (add) {
		if (count == PAXOS_MEMBERS_MAX)
			return -EINVAL;
		next[count++] = add;
	}
	value_bytes = paxos_config_encode(next, count, value);
	rc = paxos_propose(g->core, PAXOS_ENTRY_CONFIG, value, value_bytes, NULL, leader_hint);
	if (rc == 0)
		log_info("group %" PRIu64 "/%" PRIu64 ": proposed %s member %" PRIu32,
			 g->config.id.table_id, g->config.id.partition_id,
			 add ? "adding" : "removing", add ? add : remove);
	return rc ? rc : -EINPROGRESS;
}

int group_change_members(struct group *g, const uint32_t *wanted, size_t wanted_count,
			 uint32_t *leader_hint)
{
	struct paxos_status st;

	if (leader_hint)
		*leader_hint = 0;
	if (g->failed)
		return -EIO;
	if (wanted_count == 0 || wanted_count > PAXOS_MEMBERS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < wanted_count; i++)
		if (wanted[i] == 0 || members_have(wanted, i, wanted[i]))
			return -EINVAL;
	paxos_status(g->core, &st);
	if (st.role != PAXOS_LEADER) {
		if (leader_hint)
			*leader_hint = st.leader_id;
		return -EREMOTE;
	}
	if (st.config_pending)
		return -EINPROGRESS;
	for (size_t i = 0; i < wanted_count; i++)
		if (!members_have(st.members, st.member_count, wanted[i]))
			return propose_member_change(g, &st, wanted[i], 0, leader_hint);
	if (st.member_count == wanted_count)
		return 0;
	for (size_t i = 0; i < st.member_count; i++) {
		bool is_wanted = members_have(wanted, wanted_count, st.members[i]);

		/* Caught up: it committed the configuration that added it (so it holds
		 * the state from before), and is close to the leader now. */
		if (is_wanted && (st.member_joining[i] || st.member_commit_slot[i] < st.config_slot ||
				  st.member_commit_slot[i] + GROUP_CATCH_UP_SLOTS < st.commit_slot))
			return -EINPROGRESS;
	}
	for (size_t i = 0; i < st.member_count; i++)
		if (!members_have(wanted, wanted_count, st.members[i]))
			return propose_member_change(g, &st, 0, st.members[i], leader_hint);
	return 0;
}

int group_transfer_leadership(struct group *g, uint32_t to)
{
	if (g->failed)
		return -EIO;
	return paxos_transfer_leadership(g->core, to);
}

/* ---- the ready cycle ---- */

static int group_fail(struct group *g, const char *what, int rc)
{
	log_error("group %" PRIu64 "/%" PRIu64 ": %s failed (%d); the group stops until reopened",
		  g->config.id.table_id, g->config.id.partition_id, what, rc);
	g->failed = true;
	return -EIO;
}

static int install_snapshot(struct group *g, const struct paxos_ready *r)
{
	uint64_t through = r->snapshot.through_slot;
	int rc;

	if (through <= g->applied_slot)
		return 0;
	rc = g->sm->snapshot_install(g->sm->ctx, through, r->snapshot.bytes,
				     r->snapshot.size_bytes, r->snapshot_members,
				     r->snapshot_member_count);
	if (rc)
		return rc;
	g->applied_slot = through;
	/* Whatever our proposals at these slots became, we cannot tell any more. */
	for (uint32_t i = 0; g->waiting_count && i < g->config.log_slots; i++)
		if (g->waiting[i].slot && g->waiting[i].slot <= through)
			waiting_complete(g, &g->waiting[i], -ETIMEDOUT, 0, NULL, 0);
	return 0;
}

static int persist_ready(struct group *g, const struct paxos_ready *r)
{
	uint64_t last = 0;
	int rc;

	if (r->hard_state_changed) {
		rc = wal_append_hard_state(g, r->promised);
		if (rc)
			return rc;
		last = g->hard_state_wal_index;
	}
	for (size_t i = 0; i < r->entry_count; i++) {
		rc = wal_append_entry(g, &r->entries[i]);
		if (rc)
			return rc;
	}
	if (r->entry_count)
		last = wal_last_index(g->wal);
	if (!last)
		return 0;
	g->wal_syncs++;
	return wal_sync(g->wal, last);
}

/* Fills the apply of a committed entry; a NORMAL value is a GroupEntry (*proposal set). */
static void apply_prepare(struct group *g, struct arena *arena, const struct paxos_entry *e,
			  struct group_apply *a, Quorum__GroupEntry **proposal)
{
	memset(a, 0, offsetof(struct group_apply, result));
	a->result_bytes = 0;
	a->slot = e->slot;
	a->type = e->type;
	*proposal = NULL;
	if (e->type == PAXOS_ENTRY_CONFIG) {
		a->command = e->value;
		a->command_bytes = e->value_bytes;
	} else if (e->type == PAXOS_ENTRY_NORMAL) {
		Quorum__GroupEntry *ge = quorum__group_entry__unpack(
			arena_protobuf_allocator(arena), e->value_bytes, e->value);

		if (!ge || ge->version < 1) {
			/* Every replica sees the same bytes, so every replica skips it. */
			log_warn("group %" PRIu64 "/%" PRIu64 ": slot %" PRIu64
				 " holds no group entry; skipped", g->config.id.table_id,
				 g->config.id.partition_id, e->slot);
			a->type = PAXOS_ENTRY_NOOP;
			return;
		}
		a->command = ge->command.data;
		a->command_bytes = ge->command.len;
		*proposal = ge;
	}
}

static int apply_committed(struct group *g, const struct paxos_ready *r)
{
	Quorum__GroupEntry **proposals;
	struct arena *arena;
	size_t n = 0;
	int rc = 0;

	if (!r->committed_count)
		return 0;
	arena = arena_new();
	proposals = calloc(r->committed_count, sizeof(*proposals));
	if (!arena || !proposals) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < r->committed_count; i++) {
		const struct paxos_entry *e = &r->committed[i];

		if (e->slot <= g->applied_slot)
			continue;	/* applied before a crash; the WAL did not know */
		if (e->slot != g->applied_slot + n + 1 || n >= g->config.log_slots) {
			rc = -EINVAL;	/* the core broke its contract: never skip a slot */
			goto out;
		}
		apply_prepare(g, arena, e, &g->applies[n], &proposals[n]);
		n++;
	}
	if (!n)
		goto out;
	rc = g->sm->apply(g->sm->ctx, g->applies, n);
	if (rc)
		goto out;
	g->applied_slot += n;
	for (size_t i = 0; i < n; i++) {
		const struct group_apply *a = &g->applies[i];
		struct waiting *w = &g->waiting[a->slot % g->config.log_slots];
		const Quorum__GroupEntry *p = proposals[i];

		if (w->slot != a->slot)
			continue;
		if (p && p->proposer_id == g->config.self_id && p->proposal_id == w->proposal_id)
			waiting_complete(g, w, 0, a->status, a->result, a->result_bytes);
		else
			waiting_complete(g, w, -ECANCELED, 0, NULL, 0);
	}
	/* After the answers: the WALs of a majority hold these entries already (group.h). */
	if (g->sm->persist)
		rc = g->sm->persist(g->sm->ctx);
out:
	free(proposals);
	arena_free(arena);
	return rc;
}

static int process_cycle(struct group *g)
{
	struct paxos_ready r;
	uint64_t persist_id;
	int rc;

	paxos_ready(g->core, &r);
	persist_id = r.persist_id;
	if (r.has_snapshot) {
		rc = install_snapshot(g, &r);
		if (rc)
			return group_fail(g, "installing a snapshot", rc);
	}
	/* The messages go out before the WAL write and its sync: they never depend on what this
	 * ready asks to persist (the core holds back ACCEPTED and PROMISE until
	 * paxos_persisted), so a leader's ACCEPTs travel and are synced by the followers while
	 * its own sync runs, instead of one sync after the other. */
	for (size_t i = 0; i < r.msg_count; i++)
		g->callbacks.send(g->callbacks.ctx, &r.msgs[i]);
	rc = persist_ready(g, &r);
	if (rc)
		return group_fail(g, "writing the WAL", rc);
	rc = apply_committed(g, &r);
	if (rc)
		return group_fail(g, "applying committed entries", rc);
	for (size_t i = 0; i < r.read_count; i++)
		if (g->callbacks.read_ready)
			g->callbacks.read_ready(g->callbacks.ctx, r.reads[i].read_id);
	paxos_advance(g->core, &r);
	if (persist_id)
		paxos_persisted(g->core, persist_id);
	return 0;
}

/* Drops the core's log and the WAL's records up to compact_keep_slots before the applied
 * slot. The state machine is the snapshot: it is durable, and the core asks it for a copy
 * when a peer lags further. */
static int compact(struct group *g)
{
	uint64_t through, keep;
	int rc;

	if (g->applied_slot <= g->config.compact_keep_slots)
		return 0;
	through = g->applied_slot - g->config.compact_keep_slots;
	if (through <= g->compacted_through)
		return 0;
	rc = paxos_compact(g->core, through);
	if (rc)
		return rc;
	if (g->has_hard_state) {
		/* Rewrite the hard state past the cut, durably, before the cut. */
		rc = wal_append_hard_state(g, g->promised);
		if (!rc)
			rc = wal_sync(g->wal, g->hard_state_wal_index);
		if (rc)
			return rc;
		keep = g->hard_state_wal_index;
	} else {
		keep = wal_last_index(g->wal) + 1;
	}
	for (uint32_t i = 0; i < g->config.log_slots; i++) {
		const struct slot_record *rec = &g->records[i];

		if (rec->slot > through && rec->wal_index < keep)
			keep = rec->wal_index;
	}
	rc = wal_truncate_prefix(g->wal, keep);
	if (rc)
		return rc;
	g->compacted_through = through;
	g->compactions++;
	return 0;
}

int group_process(struct group *g)
{
	int rc;

	if (g->failed)
		return -EIO;
	for (int i = 0; i < PROCESS_CYCLES_MAX && paxos_has_ready(g->core); i++) {
		rc = process_cycle(g);
		if (rc)
			return rc;
	}
	if (g->config.compact_every_slots &&
	    g->applied_slot - g->compacted_through >= g->config.compact_every_slots) {
		rc = compact(g);
		if (rc)
			return group_fail(g, "compacting the log", rc);
	}
	return 0;
}

void group_status(const struct group *g, struct group_status *status)
{
	memset(status, 0, sizeof(*status));
	paxos_status(g->core, &status->paxos);
	status->id = g->config.id;
	status->wal_first_index = wal_first_index(g->wal);
	status->wal_last_index = wal_last_index(g->wal);
	status->wal_syncs = g->wal_syncs;
	status->entries_persisted = g->entries_persisted;
	status->compactions = g->compactions;
	status->proposals_waiting = g->waiting_count;
	status->failed = g->failed;
}

/* autosplit.c: see autosplit.h. */
#include "meta/autosplit.h"

#include "cluster/arena.h"
#include "cluster/clock.h"
#include "cluster/log.h"
#include "cluster/paxos.h"
#include "cluster/periodic.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define AUTOSPLIT_PERIOD_MS 1000
/* A report older than this does not count. */
#define AUTOSPLIT_REPORT_AGE_MS 3000
/* After a split, or a refusal, a partition is not asked again before this. */
#define AUTOSPLIT_PAUSE_MS 10000
/* One split waits for its group this long at most. */
#define AUTOSPLIT_DEADLINE_MS 10000
/* One key with more than this share of the sampled accesses is "one hot key". */
#define AUTOSPLIT_ONE_KEY_SHARE 0.6
#define AUTOSPLIT_HOT_KEYS_MAX 256

/* What the thread remembers of a partition between rounds. */
struct watched {
	uint64_t partition_id;
	int64_t hot_since_ms;		/* 0: under split.rate */
	int64_t quiet_until_ms;		/* no split asked before */
	bool seen;			/* in this round's tables */
};

struct autosplit {
	struct catalog *catalog;
	struct settings *settings;
	struct splitter *splitter;
	struct periodic *periodic;
	struct watched *watched;
	size_t watched_count, watched_cap;
};

static struct watched *autosplit_watched(struct autosplit *a, uint64_t partition_id)
{
	for (size_t i = 0; i < a->watched_count; i++)
		if (a->watched[i].partition_id == partition_id)
			return &a->watched[i];
	if (a->watched_count == a->watched_cap) {
		size_t cap = a->watched_cap ? 2 * a->watched_cap : 64;
		struct watched *grown = realloc(a->watched, cap * sizeof(*grown));

		if (!grown)
			return NULL;
		a->watched = grown;
		a->watched_cap = cap;
	}
	memset(&a->watched[a->watched_count], 0, sizeof(a->watched[0]));
	a->watched[a->watched_count].partition_id = partition_id;
	return &a->watched[a->watched_count++];
}

/* Forgets partitions that no longer exist (split parents keep their ids). */
static void autosplit_prune(struct autosplit *a)
{
	size_t kept = 0;

	for (size_t i = 0; i < a->watched_count; i++) {
		if (a->watched[i].seen) {
			a->watched[i].seen = false;
			a->watched[kept++] = a->watched[i];
		}
	}
	a->watched_count = kept;
}

struct sample {
	uint64_t hash;
	uint64_t count;
};

static int sample_compare(const void *x, const void *y)
{
	const struct sample *a = x, *b = y;

	return a->hash < b->hash ? -1 : a->hash > b->hash;
}

/* The hash that halves the sampled accesses of partition p, from its replicas' hot keys;
 * false when there is none to take (no samples, one key dominates, or the halving key is
 * the partition's first hash). */
static bool autosplit_hot_point(const Quorum__TableResponse *t, const Quorum__PartitionInfo *p,
				uint64_t *split_hash)
{
	struct sample samples[AUTOSPLIT_HOT_KEYS_MAX];
	size_t n = 0, merged = 0;
	uint64_t total = 0, top = 0, seen = 0;

	for (size_t r = 0; r < t->n_replicas; r++) {
		const Quorum__ReplicaStatus *s = t->replicas[r];

		if (s->partition_id != p->id || s->report_age_ms > AUTOSPLIT_REPORT_AGE_MS)
			continue;
		for (size_t k = 0; k < s->report->n_hot_keys && n < AUTOSPLIT_HOT_KEYS_MAX; k++) {
			const Quorum__HotKey *h = s->report->hot_keys[k];

			if (h->hash < p->hash_first || h->hash > p->hash_last)
				continue;
			samples[n].hash = h->hash;
			samples[n++].count = h->count;
		}
	}
	if (n == 0)
		return false;
	/* One entry per key (the replicas each saw part of its load). */
	qsort(samples, n, sizeof(samples[0]), sample_compare);
	for (size_t i = 0; i < n; i++) {
		if (merged && samples[merged - 1].hash == samples[i].hash)
			samples[merged - 1].count += samples[i].count;
		else
			samples[merged++] = samples[i];
	}
	for (size_t i = 0; i < merged; i++) {
		total += samples[i].count;
		if (samples[i].count > top)
			top = samples[i].count;
	}
	if (total == 0 || (double)top > AUTOSPLIT_ONE_KEY_SHARE * (double)total)
		return false;
	for (size_t i = 0; i < merged; i++) {
		if (seen >= total / 2 && samples[i].hash > p->hash_first) {
			*split_hash = samples[i].hash;
			return true;
		}
		seen += samples[i].count;
	}
	return false;
}

/* Size and load of partition p from its replicas' fresh reports; false without any. */
static bool autosplit_figures(const Quorum__TableResponse *t, const Quorum__PartitionInfo *p,
			      uint64_t *size_bytes, double *ops_per_s)
{
	bool any = false;

	*size_bytes = 0;
	*ops_per_s = 0;
	for (size_t r = 0; r < t->n_replicas; r++) {
		const Quorum__ReplicaStatus *s = t->replicas[r];

		if (s->partition_id != p->id || s->report_age_ms > AUTOSPLIT_REPORT_AGE_MS)
			continue;
		any = true;
		/* Reads and writes are served (and counted) where the group leads. */
		*ops_per_s += s->report->read_ops_per_s + s->report->write_ops_per_s;
		if (s->report->role == PAXOS_LEADER && s->report->has_size_bytes)
			*size_bytes = s->report->size_bytes;
	}
	return any;
}

static void autosplit_split(struct autosplit *a, const Quorum__TableInfo *table,
			    const Quorum__PartitionInfo *p, bool has_hash, uint64_t split_hash,
			    const char *reason)
{
	Quorum__SplitTableRequest request = QUORUM__SPLIT_TABLE_REQUEST__INIT;
	char why[CATALOG_WHY_BYTES] = "";
	int err;

	request.name = table->name;
	request.has_partition_id = true;
	request.partition_id = p->id;
	request.has_split_hash = has_hash;
	request.split_hash = split_hash;
	err = splitter_split_table(a->splitter, &request,
				   clock_monotonic_ms() + AUTOSPLIT_DEADLINE_MS, why);
	if (err == 0)
		log_info("table %" PRIu64 ": partition %" PRIu64 " split by %s", table->id, p->id,
			 reason);
	else if (err != -ERANGE)
		log_warn("table %" PRIu64 ": splitting partition %" PRIu64 " by %s failed: %s",
			 table->id, p->id, reason, why);
}

static void autosplit_table(struct autosplit *a, const Quorum__TableResponse *t, int64_t now_ms)
{
	uint64_t split_bytes = settings_get(a->settings, SETTING_SPLIT_BYTES);
	uint64_t split_rate = settings_get(a->settings, SETTING_SPLIT_RATE);
	int64_t window_ms = (int64_t)settings_get(a->settings, SETTING_SPLIT_WINDOW_S) * 1000;

	for (size_t i = 0; i < t->table->n_partitions; i++) {
		const Quorum__PartitionInfo *p = t->table->partitions[i];
		struct watched *w = autosplit_watched(a, p->id);
		uint64_t size_bytes, split_hash;
		double ops_per_s;

		if (!w)
			return;
		w->seen = true;
		if (!autosplit_figures(t, p, &size_bytes, &ops_per_s))
			continue;
		if (ops_per_s <= (double)split_rate)
			w->hot_since_ms = 0;
		else if (w->hot_since_ms == 0)
			w->hot_since_ms = now_ms;
		/* A moving partition splits once its move is done: its group's members change. */
		if (now_ms < w->quiet_until_ms || p->hash_first == p->hash_last ||
		    p->n_target_replicas)
			continue;
		if (size_bytes > split_bytes) {
			w->quiet_until_ms = now_ms + AUTOSPLIT_PAUSE_MS;
			autosplit_split(a, t->table, p, false, 0, "size");
		} else if (w->hot_since_ms && now_ms - w->hot_since_ms >= window_ms) {
			w->quiet_until_ms = now_ms + AUTOSPLIT_PAUSE_MS;
			w->hot_since_ms = 0;
			if (autosplit_hot_point(t, p, &split_hash))
				autosplit_split(a, t->table, p, true, split_hash, "consumption");
		}
	}
}

static void autosplit_round(struct autosplit *a)
{
	struct arena *arena = arena_new();
	Quorum__ListTablesResponse *list;
	int64_t now_ms = clock_monotonic_ms();

	if (!arena)
		return;
	if (catalog_list_tables(a->catalog, arena, &list) == 0) {
		for (size_t i = 0; i < list->n_tables; i++) {
			Quorum__TableResponse *t;

			if (catalog_describe_table(a->catalog, list->tables[i]->name.data,
						   list->tables[i]->name.len, now_ms, arena, &t,
						   NULL) == 0)
				autosplit_table(a, t, now_ms);
		}
		autosplit_prune(a);
	}
	arena_free(arena);
}

static void autosplit_tick(void *ctx)
{
	struct autosplit *a = ctx;

	/* Replicated metas: only the leader's memory is current. */
	if (catalog_serving(a->catalog))
		autosplit_round(a);
}

int autosplit_start(struct catalog *catalog, struct settings *settings,
		    struct splitter *splitter, struct autosplit **out)
{
	struct autosplit *a = calloc(1, sizeof(*a));
	int err;

	*out = NULL;
	if (!a)
		return -ENOMEM;
	a->catalog = catalog;
	a->settings = settings;
	a->splitter = splitter;
	err = periodic_start(AUTOSPLIT_PERIOD_MS, autosplit_tick, a, &a->periodic);
	if (err < 0) {
		free(a);
		return err;
	}
	*out = a;
	return 0;
}

void autosplit_stop(struct autosplit *a)
{
	if (!a)
		return;
	periodic_stop(a->periodic);
	free(a->watched);
	free(a);
}

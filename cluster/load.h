/* load.h: what a storage node's partition groups serve, for the heartbeat:
 * read and write rates, the partition keys accessed most, and the item
 * count and size that the census (census.h) measures.
 *
 * Groups: the node tracks the partitions meta assigns to it (load_track
 * with every heartbeat reply); a request is counted against the tracked
 * group of its table whose hash range holds the key's hash, and not at all
 * when there is none.
 *
 * Rates: every group has a ring of LOAD_WINDOW_S one-second slots of read
 * and write counts; a rate is the sum over the last LOAD_WINDOW_S seconds
 * divided by the seconds covered (fewer for a group tracked only lately),
 * so a reader of the heartbeat sees a burst for LOAD_WINDOW_S seconds, not
 * only during the one heartbeat interval it fell in.
 *
 * Hot keys: a space-saving summary (Metwally, Agrawal, El Abbadi 2005) of
 * LOAD_SUMMARY_SLOTS counters per group counts partition keys by their
 * hash. Any key accessed more than N / LOAD_SUMMARY_SLOTS times of N is in
 * it, and a count over-estimates the truth by at most its error. A group
 * keeps the summary of the current LOAD_WINDOW_S and of the one before;
 * the report merges both. Key bytes are user data: a summary keeps at most
 * LOAD_KEY_SAMPLE_BYTES of each, the hash (which the split point needs)
 * and the full length.
 *
 * Memory is bounded: LOAD_GROUPS_MAX groups, each a fixed size. Every
 * function is thread-safe (one mutex, held for a few hundred nanoseconds
 * per count); times are passed in (now_ms, monotonic) so tests control
 * them. */
#ifndef QUORUM_LOAD_H
#define QUORUM_LOAD_H

#include "cluster/arena.h"
#include "quorum.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOAD_WINDOW_S 10
#define LOAD_SUMMARY_SLOTS 16
#define LOAD_HOT_KEYS_REPORTED 4
#define LOAD_KEY_SAMPLE_BYTES 64
#define LOAD_GROUPS_MAX 65536

enum load_op {
	LOAD_READ,	/* get, scan page, query page */
	LOAD_WRITE,	/* put, delete, update that went through the group's log */
};

/* One key of a summary. */
struct load_hot_key {
	uint64_t hash;			/* key_hash of the partition key */
	uint64_t count;			/* accesses counted, >= the true count */
	uint64_t error;			/* count - error <= the true count */
	uint32_t key_bytes;		/* the full key's length */
	uint32_t sample_bytes;		/* min(key_bytes, LOAD_KEY_SAMPLE_BYTES) */
	uint8_t sample[LOAD_KEY_SAMPLE_BYTES];
};

/* A space-saving summary; zeroed (or load_summary_clear) is empty. */
struct load_summary {
	size_t used;
	uint64_t total;			/* accesses counted */
	struct load_hot_key slots[LOAD_SUMMARY_SLOTS];
};

void load_summary_clear(struct load_summary *summary);
/* Counts weight accesses of key (hash = key_hash(key)). */
void load_summary_add(struct load_summary *summary, uint64_t hash, const void *key,
		      size_t key_bytes, uint64_t weight);
/* The up to max keys with the highest counts of a and b together (b may
 * be NULL), highest first; returns how many. */
size_t load_summary_top(const struct load_summary *a, const struct load_summary *b,
			struct load_hot_key *out, size_t max);

/* A partition the node hosts. */
struct load_range {
	uint64_t table_id;
	uint64_t partition_id;
	uint64_t hash_first, hash_last;	/* inclusive */
};

struct load_figures {
	double read_ops_per_s;
	double write_ops_per_s;
	uint64_t reads_total, writes_total;	/* since tracked */
	bool has_census;			/* a census pass has completed */
	uint64_t item_count;
	uint64_t size_bytes;
	int64_t census_ms;			/* when that pass completed */
	size_t hot_count;
	struct load_hot_key hot[LOAD_HOT_KEYS_REPORTED];
};

struct load;

int load_new(struct load **out);
void load_free(struct load *load);

/* Makes the tracked groups exactly ranges: a group still listed keeps its
 * counters (its range follows the list), one not listed is forgotten, a new
 * one starts from zero at now_ms. -ENOMEM (nothing changed), -E2BIG (more
 * than LOAD_GROUPS_MAX). */
int load_track(struct load *load, const struct load_range *ranges, size_t count,
	       int64_t now_ms);

/* The tracked groups, in (table, hash) order, in a malloc'd array the
 * caller frees (NULL when none). -ENOMEM. */
int load_groups(struct load *load, struct load_range **ranges, size_t *count);

/* Counts one op on the partition key key (hash = key_hash(key)) of
 * table_id; key may be NULL (a scan of a whole range: no hot key). */
void load_count(struct load *load, uint64_t table_id, uint64_t hash, enum load_op op,
		const void *key, size_t key_bytes, int64_t now_ms);

/* Records a completed census pass of a group. -ENOENT if not tracked. */
int load_set_census(struct load *load, uint64_t table_id, uint64_t partition_id,
		    uint64_t item_count, uint64_t size_bytes, int64_t now_ms);

/* The figures of a tracked group at now_ms. -ENOENT if not tracked. */
int load_figures(struct load *load, uint64_t table_id, uint64_t partition_id, int64_t now_ms,
		 struct load_figures *out);

/* Sets the load fields of report (size, items, rates, hot keys; hot keys
 * in arena) from its group's figures. -ENOENT (untracked: report left as
 * it was), -ENOMEM. */
int load_fill_report(struct load *load, Quorum__GroupReport *report, int64_t now_ms,
		     struct arena *arena);

#endif

/* disk_space.h: how short of space a storage node's data filesystem is.
 *
 * A node must never run its filesystem dry in the middle of a WAL record or a LevelDB
 * compaction: an I/O error there fails the group (it closes and reopens) and shows as EIO
 * after the request deadline. So a node keeps a reserve of free space and refuses work up
 * front, before anything enters the log, with -ENOSPC. Three levels, each a fraction of the
 * reserve, so that the work that frees space or that is already under way still fits:
 *
 *   free < reserve      DISK_SPACE_NO_WRITES   new puts and updates are refused
 *   free < reserve / 2  DISK_SPACE_NO_DELETES  deletes are refused too
 *   free < reserve / 4  DISK_SPACE_NO_LOG      the node persists no log entry it is sent
 *
 * Deletes get a smaller reserve rather than none: a delete writes a WAL record and a
 * tombstone before compaction frees anything, so exempting them entirely could still fill
 * the disk; but they must keep working on a node that refuses writes, since removing items
 * is how a user makes room. The last level protects a follower that a leader with room
 * keeps sending entries to (the other two replicas commit without it): it falls behind and
 * catches up from the log or a snapshot once space is back.
 *
 * statvfs is cheap but not free: its figures are cached for DISK_SPACE_REFRESH_MS, which
 * the reserve's margins absorb. Thread-safe. */
#ifndef QUORUM_DISK_SPACE_H
#define QUORUM_DISK_SPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How long a statvfs answer is used before asking again. */
#define DISK_SPACE_REFRESH_MS 100
/* The default reserve: 64 MiB, or 5% of the filesystem when that is less (a small test
 * filesystem would otherwise refuse every write). */
#define DISK_SPACE_RESERVE_BYTES_DEFAULT (64ull * 1024 * 1024)
#define DISK_SPACE_RESERVE_PERCENT_DEFAULT 5

enum disk_space_level {
	DISK_SPACE_OK = 0,
	DISK_SPACE_NO_WRITES = 1,
	DISK_SPACE_NO_DELETES = 2,
	DISK_SPACE_NO_LOG = 3,
};

/* What a request needs: the level at which it is refused. */
enum disk_space_use {
	DISK_SPACE_USE_WRITE = DISK_SPACE_NO_WRITES,
	DISK_SPACE_USE_DELETE = DISK_SPACE_NO_DELETES,
	DISK_SPACE_USE_LOG = DISK_SPACE_NO_LOG,
};

struct disk_space;

/* path: the data directory (copied). reserve_bytes < 0: the default (see above). Returns 0,
 * -ENOMEM, or statvfs's error for path. */
int disk_space_new(const char *path, int64_t reserve_bytes, struct disk_space **out);
void disk_space_free(struct disk_space *space);

/* The node's level now (statvfs at most every DISK_SPACE_REFRESH_MS). A statvfs that fails
 * keeps the last level: an unreadable figure is no reason to refuse or allow work. */
enum disk_space_level disk_space_level(struct disk_space *space, int64_t now_ms);

/* The reserve in force, in bytes (the default is computed from the filesystem's size). */
uint64_t disk_space_reserve_bytes(struct disk_space *space);

/* true when a request of use is refused at level. */
bool disk_space_refuses(enum disk_space_level level, enum disk_space_use use);

/* Whether a group led by this node can take a request of use: self is the leader's own
 * level, others[] the levels of the other voting members. The leader writes every entry to
 * its own WAL, so its own shortage refuses; beyond that the group refuses when fewer than a
 * majority of its voters would be left to make the entry durable (one full follower of
 * three does not stop writes, two do). Members whose level is unknown count as OK: an
 * unreachable member is a matter for the deadline, not for ENOSPC. */
bool disk_space_group_refuses(enum disk_space_level self, const enum disk_space_level *others,
			      size_t other_count, enum disk_space_use use);

/* Parses a size for --disk-reserve-bytes: decimal bytes, optionally followed by KiB, MiB or
 * GiB (K, M, G alone too). Returns 0, or -EINVAL for anything else or past 2^62. */
int disk_space_parse_bytes(const char *text, int64_t *bytes);

/* The level of a filesystem with free_bytes free, for a reserve (pure; for tests). */
enum disk_space_level disk_space_level_of(uint64_t free_bytes, uint64_t reserve_bytes);

#endif

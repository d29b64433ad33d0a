/* wal.h: the write-ahead log of a replication group: records with
 * consecutive indexes (1, 2, 3, ...), appended, made durable in groups, read
 * back for replay and for followers that catch up, cut at either end.
 *
 * On disk: a directory of segment files named wal-<first index, 20 decimal
 * digits>.seg, each holding the records from its first index on, back to
 * back, each framed as (little-endian):
 *
 *	length	 4 bytes  payload size in bytes (at most WAL_PAYLOAD_BYTES_MAX)
 *	crc	 4 bytes  CRC-32C (crc32c.h) of the payload followed by the index
 *	index	 8 bytes  the record's index (never 0)
 *	payload	 length bytes
 *
 * A record is valid when its CRC matches and its index is the one expected
 * at that place (the segment's first index, then one more each record), so a
 * stale or misplaced record is found like a damaged one. Segments follow each
 * other without gaps: the first index of one is the last index of the
 * previous one plus one. A new segment is started when the current one would
 * pass wal_options.segment_size_bytes; the previous segment is made durable
 * and the new file's directory entry is synced before any record goes into
 * it, so only the last segment can ever have a torn tail.
 *
 * Recovery (wal_open) reads and checks every record. In the last segment a
 * bad record at the tail (short, damaged, or zeros from lost unsynced
 * writes, up to the end of the file) is a torn write: it is cut (truncate
 * and sync) and logged. A bad record with valid data after it other than
 * zeros, or a bad record in any earlier segment, is corruption of data that
 * may have been acknowledged: wal_open fails with -EBADMSG and logs the file
 * and offset, and drops nothing.
 *
 * Durability: wal_append writes a record to the file (not yet durable);
 * wal_sync(index) returns when every record up to index is durable. Syncs
 * are shared (group commit): concurrent callers elect one syncer that syncs
 * once for everything appended so far, the others wait for it.
 *
 * Failure: an I/O error in a write, a sync or a cut puts the WAL in a failed
 * state, and every later call but wal_close returns -EIO: after a failed
 * fsync the kernel may have dropped the data, so the WAL never claims
 * durability again (the process must reopen the log, which rereads the disk).
 *
 * Threads: every function may be called from any thread at the same time,
 * except wal_close. No lock is held across a disk sync other than the
 * syncer role of the group-commit protocol.
 *
 * Errors: 0 or a negative errno; -ENOENT for an index not in the log,
 * -EINVAL for bad arguments, -EMSGSIZE for a payload over the bound. */
#ifndef QUORUM_WAL_H
#define QUORUM_WAL_H

#include "cluster/io.h"

#include <stddef.h>
#include <stdint.h>

#define WAL_PAYLOAD_BYTES_MAX (16u * 1024 * 1024)
#define WAL_RECORD_HEADER_BYTES 16
#define WAL_SEGMENT_BYTES_DEFAULT (64ull * 1024 * 1024)

struct wal_options {
	/* A new segment starts when a record would take the current one past
	 * this size (a segment holds at least one record). */
	uint64_t segment_size_bytes;
};

void wal_options_init(struct wal_options *options);

struct wal;

/* Opens (creating when empty) the log in dir_path, which must exist, and
 * recovers it as described above. options may be NULL for the defaults. io
 * must outlive the WAL. On success *out is owned by the caller (wal_close). */
int wal_open(const struct io *io, const char *dir_path, const struct wal_options *options,
	     struct wal **out);

/* Closes the files and frees the WAL. Records not yet synced may be lost. */
void wal_close(struct wal *wal);

/* Appends a record and sets *index to its index (last index + 1). The record
 * is readable at once and durable after wal_sync. */
int wal_append(struct wal *wal, const void *payload, size_t size_bytes, uint64_t *index);

/* Returns 0 once every record up to index is durable; -ENOENT if index is
 * past the last index (never appended, or cut by wal_truncate_suffix). */
int wal_sync(struct wal *wal, uint64_t index);

/* Reads the record at index into a malloc'd *payload (caller frees; NULL
 * with size 0 for an empty payload) after checking its CRC (-EBADMSG). */
int wal_read(struct wal *wal, uint64_t index, void **payload, size_t *size_bytes);

/* The first index still in the log, the last index, and the last index known
 * durable. An empty log has last = first - 1. */
uint64_t wal_first_index(struct wal *wal);
uint64_t wal_last_index(struct wal *wal);
uint64_t wal_durable_index(struct wal *wal);

/* Deletes every segment whose records are all below index (after a snapshot
 * covering them). The last segment is always kept, so records below index
 * may remain; wal_first_index says what is left. */
int wal_truncate_prefix(struct wal *wal, uint64_t index);

/* Deletes every record at index and above, durably; the next append gets
 * index. index must be at least wal_first_index; past the last index it does
 * nothing. */
int wal_truncate_suffix(struct wal *wal, uint64_t index);

/* Reads records in order from an index, for replay and catch-up. */
struct wal_iter {
	struct wal *wal;
	uint64_t next_index;
};

void wal_iter_init(struct wal_iter *iter, struct wal *wal, uint64_t from_index);

/* Returns 1 with the next record (payload malloc'd as in wal_read), 0 past
 * the last index, or a negative errno (-ENOENT if from_index was compacted). */
int wal_iter_next(struct wal_iter *iter, uint64_t *index, void **payload, size_t *size_bytes);

#endif

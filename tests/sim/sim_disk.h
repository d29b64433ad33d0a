/* sim_disk.h: a simulated disk behind the io seam (cluster/io.h), for crash
 * and fault tests of the WAL and, later, of whole replication groups.
 *
 * All state is in memory and every random choice comes from one seed, so a
 * failing seed replays exactly. For each file the disk keeps what is durable
 * (as of the last file_sync) apart from what is only written; for each
 * directory it keeps the list of name changes (create, rename, unlink) not yet
 * made durable by dir_sync.
 *
 * sim_disk_crash() is a power cut followed by a reboot:
 * - every file goes back to its durable contents and size;
 * - the last write to a file since its last sync may survive torn: a prefix
 *   of it (chosen by the seed, from nothing to all of it) lands at its
 *   offset, sometimes with a few garbage bytes; the gap before it, if
 *   earlier unsynced writes were lost, reads as zeros (as a file hole does);
 * - of each directory's unsynced name changes, a prefix (by the seed) is kept
 *   and the rest is lost, so changes stay in the order they were made;
 * - every open handle becomes invalid (-EBADF).
 *
 * Fault injection: the Nth write or sync from now fails with -EIO (a failed
 * sync makes nothing durable), and a byte of a file can be corrupted in place
 * (in its durable contents too), to test checksums.
 *
 * A rename is recorded as a change of the destination's directory only. The
 * disk is thread-safe; an optional sync delay (outside its lock) lets tests
 * see concurrency such as group commit. */
#ifndef QUORUM_SIM_DISK_H
#define QUORUM_SIM_DISK_H

#include "cluster/io.h"

#include <stdint.h>

struct sim_disk;

struct sim_disk_stats {
	uint64_t writes;
	uint64_t file_syncs;	/* successful file_sync calls */
	uint64_t dir_syncs;	/* successful dir_sync calls */
	uint64_t crashes;
};

/* splitmix64: the seeded random source of the simulation. */
uint64_t sim_random_next(uint64_t *state);

/* Creates an empty disk whose random choices all come from seed. */
int sim_disk_create(uint64_t seed, struct sim_disk **out);
void sim_disk_destroy(struct sim_disk *disk);

/* The io seam of this disk; valid until sim_disk_destroy. */
const struct io *sim_disk_io(struct sim_disk *disk);

void sim_disk_crash(struct sim_disk *disk);

/* The nth file_pwrite (1 = the next one) from now fails with -EIO; 0 cancels. */
void sim_disk_fail_write(struct sim_disk *disk, uint64_t nth);
/* The nth file_sync or dir_sync (1 = the next one) from now fails with -EIO. */
void sim_disk_fail_sync(struct sim_disk *disk, uint64_t nth);

/* Flips bits of the byte at offset of the file at path, durably. */
int sim_disk_corrupt_byte(struct sim_disk *disk, const char *path, uint64_t offset);

/* Every file_sync and dir_sync first sleeps delay_us (outside the lock). */
void sim_disk_set_sync_delay_us(struct sim_disk *disk, unsigned delay_us);

void sim_disk_get_stats(struct sim_disk *disk, struct sim_disk_stats *stats);

#endif

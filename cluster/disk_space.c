/* disk_space.c: the reserve of free space a storage node keeps (see disk_space.h). */
#include "cluster/disk_space.h"

#include "cluster/log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

struct disk_space {
	char *path;
	bool reserve_default;		/* the reserve follows the filesystem's size */
	pthread_mutex_t lock;
	uint64_t reserve_bytes;		/* under lock */
	int64_t checked_ms;		/* under lock: the last statvfs; 0: never */
	enum disk_space_level level;	/* under lock */
};

static uint64_t disk_space_default_reserve(uint64_t capacity_bytes)
{
	uint64_t share = capacity_bytes / 100 * DISK_SPACE_RESERVE_PERCENT_DEFAULT;

	return share < DISK_SPACE_RESERVE_BYTES_DEFAULT ? share : DISK_SPACE_RESERVE_BYTES_DEFAULT;
}

enum disk_space_level disk_space_level_of(uint64_t free_bytes, uint64_t reserve_bytes)
{
	if (free_bytes < reserve_bytes / 4)
		return DISK_SPACE_NO_LOG;
	if (free_bytes < reserve_bytes / 2)
		return DISK_SPACE_NO_DELETES;
	if (free_bytes < reserve_bytes)
		return DISK_SPACE_NO_WRITES;
	return DISK_SPACE_OK;
}

/* statvfs of the path; updates level and, for the default, the reserve. */
static int disk_space_refresh_locked(struct disk_space *space)
{
	enum disk_space_level level;
	struct statvfs fs;
	uint64_t free_bytes;

	if (statvfs(space->path, &fs) < 0)
		return -errno;
	/* f_bavail: what an unprivileged writer gets; quorumd may run as root, but the root
	 * reserve of ext4 is the operator's, not ours to spend. */
	free_bytes = (uint64_t)fs.f_bavail * fs.f_frsize;
	if (space->reserve_default)
		space->reserve_bytes = disk_space_default_reserve((uint64_t)fs.f_blocks *
								  fs.f_frsize);
	level = disk_space_level_of(free_bytes, space->reserve_bytes);
	if (level != space->level)
		/* Once per change: an operator sees when and why writes stop and resume. */
		log_warn("data filesystem %s: %" PRIu64 " bytes free, reserve %" PRIu64 ": %s",
			 space->path, free_bytes, space->reserve_bytes,
			 level == DISK_SPACE_OK ? "writes accepted again" :
			 level == DISK_SPACE_NO_WRITES ? "new writes refused (ENOSPC)" :
			 level == DISK_SPACE_NO_DELETES ? "writes and deletes refused (ENOSPC)" :
			 "writes, deletes and replicated log entries refused (ENOSPC)");
	space->level = level;
	return 0;
}

int disk_space_new(const char *path, int64_t reserve_bytes, struct disk_space **out)
{
	struct disk_space *space;
	int err;

	*out = NULL;
	space = calloc(1, sizeof(*space));
	if (!space)
		return -ENOMEM;
	space->path = strdup(path);
	if (!space->path) {
		free(space);
		return -ENOMEM;
	}
	space->reserve_default = reserve_bytes < 0;
	space->reserve_bytes = reserve_bytes < 0 ? 0 : (uint64_t)reserve_bytes;
	pthread_mutex_init(&space->lock, NULL);
	err = disk_space_refresh_locked(space);
	if (err < 0) {
		disk_space_free(space);
		return err;
	}
	*out = space;
	return 0;
}

void disk_space_free(struct disk_space *space)
{
	if (!space)
		return;
	pthread_mutex_destroy(&space->lock);
	free(space->path);
	free(space);
}

enum disk_space_level disk_space_level(struct disk_space *space, int64_t now_ms)
{
	enum disk_space_level level;

	pthread_mutex_lock(&space->lock);
	if (space->checked_ms == 0 || now_ms - space->checked_ms >= DISK_SPACE_REFRESH_MS ||
	    now_ms < space->checked_ms) {
		/* On failure the last level stays (see the header); try again next period. */
		(void)disk_space_refresh_locked(space);
		space->checked_ms = now_ms ? now_ms : 1;
	}
	level = space->level;
	pthread_mutex_unlock(&space->lock);
	return level;
}

uint64_t disk_space_reserve_bytes(struct disk_space *space)
{
	uint64_t reserve_bytes;

	pthread_mutex_lock(&space->lock);
	reserve_bytes = space->reserve_bytes;
	pthread_mutex_unlock(&space->lock);
	return reserve_bytes;
}

bool disk_space_refuses(enum disk_space_level level, enum disk_space_use use)
{
	return (int)level >= (int)use;
}

bool disk_space_group_refuses(enum disk_space_level self, const enum disk_space_level *others,
			      size_t other_count, enum disk_space_use use)
{
	size_t voters = other_count + 1, able = 1;

	if (disk_space_refuses(self, use))
		return true;
	for (size_t i = 0; i < other_count; i++)
		if (!disk_space_refuses(others[i], use))
			able++;
	return able < voters / 2 + 1;
}

int disk_space_parse_bytes(const char *text, int64_t *bytes)
{
	static const struct {
		const char *suffix;
		int shift;
	} units[] = {
		{ "", 0 }, { "K", 10 }, { "KiB", 10 }, { "M", 20 }, { "MiB", 20 },
		{ "G", 30 }, { "GiB", 30 },
	};
	unsigned long long value;
	char *end;

	if (!text || text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno != 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (value > (1ull << (62 - units[i].shift)))
			return -EINVAL;
		*bytes = (int64_t)(value << units[i].shift);
		return 0;
	}
	return -EINVAL;
}

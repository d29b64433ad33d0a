/* sim_disk.c: the simulated disk (see sim_disk.h for its crash model).
 *
 * Files are inodes with two buffers: cur (what reads see) and dur (what
 * survives a crash). Names live in two tables: names (what lookups see) and
 * durable_names (what survives a crash); pending_ops holds the name changes
 * made since the last dir_sync of their directory, in order. Inodes are never
 * freed before the disk, which keeps handles and pending changes simple. */
#include "tests/sim/sim_disk.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sim_buf {
	uint8_t *data;
	size_t size_bytes;
	size_t capacity_bytes;
};

struct sim_inode {
	struct sim_buf cur;
	struct sim_buf dur;
	/* The last write since the last sync, kept whole so a crash can tear it. */
	bool has_last_write;
	uint64_t last_write_offset;
	struct sim_buf last_write;
	struct sim_inode *next;
};

struct sim_entry {
	char *path;
	struct sim_inode *inode;
};

struct sim_names {
	struct sim_entry *entries;
	size_t count;
	size_t capacity;
};

enum sim_op_kind { SIM_OP_CREATE, SIM_OP_RENAME, SIM_OP_UNLINK };

struct sim_op {
	enum sim_op_kind kind;
	char *dir;		/* the directory whose dir_sync makes it durable */
	char *path;		/* created, renamed from, or unlinked */
	char *to_path;		/* renamed to */
	struct sim_inode *inode;
};

struct sim_handle {
	struct sim_inode *inode;
	bool open;
	bool writable;
};

struct sim_disk {
	struct io io;
	pthread_mutex_t lock;
	uint64_t random_state;
	struct sim_inode *inodes;
	struct sim_names names;
	struct sim_names durable_names;
	struct sim_op *ops;
	size_t op_count;
	size_t op_capacity;
	/* Handles are never reused, so a stale handle from before a crash can
	 * never reach a file opened after it. */
	struct sim_handle *handles;
	size_t handle_count;
	size_t handle_capacity;
	uint64_t fail_write_in;
	uint64_t fail_sync_in;
	unsigned sync_delay_us;
	struct sim_disk_stats stats;
};

uint64_t sim_random_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t sim_random_below(struct sim_disk *disk, uint64_t bound)
{
	return bound == 0 ? 0 : sim_random_next(&disk->random_state) % bound;
}

static int sim_buf_reserve(struct sim_buf *buf, size_t size_bytes)
{
	if (size_bytes <= buf->capacity_bytes)
		return 0;
	size_t capacity = buf->capacity_bytes ? buf->capacity_bytes : 256;
	while (capacity < size_bytes)
		capacity *= 2;
	uint8_t *data = realloc(buf->data, capacity);
	if (data == NULL)
		return -ENOMEM;
	buf->data = data;
	buf->capacity_bytes = capacity;
	return 0;
}

/* Sets the size, zero-filling any growth (as a file hole reads). */
static int sim_buf_resize(struct sim_buf *buf, size_t size_bytes)
{
	int r = sim_buf_reserve(buf, size_bytes);

	if (r < 0)
		return r;
	if (size_bytes > buf->size_bytes)
		memset(buf->data + buf->size_bytes, 0, size_bytes - buf->size_bytes);
	buf->size_bytes = size_bytes;
	return 0;
}

static int sim_buf_write(struct sim_buf *buf, uint64_t offset, const void *data,
			 size_t size_bytes)
{
	if (offset > SIZE_MAX - size_bytes)
		return -EFBIG;
	size_t end = (size_t)offset + size_bytes;
	if (end > buf->size_bytes) {
		int r = sim_buf_resize(buf, end);
		if (r < 0)
			return r;
	}
	if (size_bytes > 0)
		memcpy(buf->data + offset, data, size_bytes);
	return 0;
}

static int sim_buf_copy(struct sim_buf *to, const struct sim_buf *from)
{
	int r = sim_buf_reserve(to, from->size_bytes);

	if (r < 0)
		return r;
	if (from->size_bytes > 0)
		memcpy(to->data, from->data, from->size_bytes);
	to->size_bytes = from->size_bytes;
	return 0;
}

static void sim_buf_free(struct sim_buf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->size_bytes = buf->capacity_bytes = 0;
}

static char *sim_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static struct sim_entry *sim_names_find(struct sim_names *names, const char *path)
{
	for (size_t i = 0; i < names->count; i++) {
		if (strcmp(names->entries[i].path, path) == 0)
			return &names->entries[i];
	}
	return NULL;
}

static void sim_names_remove(struct sim_names *names, const char *path)
{
	struct sim_entry *entry = sim_names_find(names, path);

	if (entry == NULL)
		return;
	free(entry->path);
	*entry = names->entries[--names->count];
}

/* Points path at inode, replacing what it named before. */
static int sim_names_set(struct sim_names *names, const char *path, struct sim_inode *inode)
{
	struct sim_entry *entry = sim_names_find(names, path);

	if (entry != NULL) {
		entry->inode = inode;
		return 0;
	}
	if (names->count == names->capacity) {
		size_t capacity = names->capacity ? names->capacity * 2 : 16;
		struct sim_entry *grown = realloc(names->entries, capacity * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		names->entries = grown;
		names->capacity = capacity;
	}
	char *copy = strdup(path);
	if (copy == NULL)
		return -ENOMEM;
	names->entries[names->count].path = copy;
	names->entries[names->count].inode = inode;
	names->count++;
	return 0;
}

static void sim_names_clear(struct sim_names *names)
{
	for (size_t i = 0; i < names->count; i++)
		free(names->entries[i].path);
	names->count = 0;
}

static int sim_names_copy(struct sim_names *to, const struct sim_names *from)
{
	sim_names_clear(to);
	for (size_t i = 0; i < from->count; i++) {
		int r = sim_names_set(to, from->entries[i].path, from->entries[i].inode);
		if (r < 0)
			return r;
	}
	return 0;
}

static void sim_op_free(struct sim_op *op)
{
	free(op->dir);
	free(op->path);
	free(op->to_path);
}

static int sim_op_record(struct sim_disk *disk, enum sim_op_kind kind, const char *path,
			 const char *to_path, struct sim_inode *inode)
{
	struct sim_op op = { .kind = kind, .inode = inode };

	if (disk->op_count == disk->op_capacity) {
		size_t capacity = disk->op_capacity ? disk->op_capacity * 2 : 16;
		struct sim_op *grown = realloc(disk->ops, capacity * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		disk->ops = grown;
		disk->op_capacity = capacity;
	}
	op.dir = sim_dirname(to_path != NULL ? to_path : path);
	op.path = strdup(path);
	op.to_path = to_path != NULL ? strdup(to_path) : NULL;
	if (op.dir == NULL || op.path == NULL || (to_path != NULL && op.to_path == NULL)) {
		sim_op_free(&op);
		return -ENOMEM;
	}
	disk->ops[disk->op_count++] = op;
	return 0;
}

static int sim_op_apply_durably(struct sim_disk *disk, const struct sim_op *op)
{
	switch (op->kind) {
	case SIM_OP_CREATE:
		return sim_names_set(&disk->durable_names, op->path, op->inode);
	case SIM_OP_RENAME:
		sim_names_remove(&disk->durable_names, op->path);
		return sim_names_set(&disk->durable_names, op->to_path, op->inode);
	case SIM_OP_UNLINK:
		sim_names_remove(&disk->durable_names, op->path);
		return 0;
	}
	return -EINVAL;
}

static struct sim_handle *sim_handle_get(struct sim_disk *disk, int file)
{
	if (file < 0 || (size_t)file >= disk->handle_count || !disk->handles[file].open)
		return NULL;
	return &disk->handles[file];
}

static void sim_sleep_us(unsigned delay_us)
{
	struct timespec ts = {
		.tv_sec = delay_us / 1000000u,
		.tv_nsec = (long)(delay_us % 1000000u) * 1000L,
	};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* True when this call is the injected failure. Called with the lock held. */
static bool sim_fault_due(uint64_t *countdown)
{
	if (*countdown == 0)
		return false;
	return --*countdown == 0;
}

static int sim_file_open(void *ctx, const char *path, int flags)
{
	struct sim_disk *disk = ctx;
	struct sim_inode *inode = NULL;
	int r = 0;

	pthread_mutex_lock(&disk->lock);
	struct sim_entry *entry = sim_names_find(&disk->names, path);
	if (entry != NULL) {
		if ((flags & IO_OPEN_CREATE) && (flags & IO_OPEN_EXCL))
			r = -EEXIST;
		inode = entry->inode;
	} else if (!(flags & IO_OPEN_CREATE)) {
		r = -ENOENT;
	} else {
		inode = calloc(1, sizeof(*inode));
		if (inode == NULL) {
			r = -ENOMEM;
		} else {
			inode->next = disk->inodes;
			disk->inodes = inode;
			r = sim_names_set(&disk->names, path, inode);
			if (r == 0)
				r = sim_op_record(disk, SIM_OP_CREATE, path, NULL, inode);
			if (r < 0)
				sim_names_remove(&disk->names, path);
		}
	}
	if (r == 0 && disk->handle_count == disk->handle_capacity) {
		size_t capacity = disk->handle_capacity ? disk->handle_capacity * 2 : 16;
		struct sim_handle *grown = realloc(disk->handles, capacity * sizeof(*grown));
		if (grown == NULL) {
			r = -ENOMEM;
		} else {
			disk->handles = grown;
			disk->handle_capacity = capacity;
		}
	}
	if (r == 0 && disk->handle_count >= (size_t)INT32_MAX)
		r = -EMFILE;
	if (r == 0) {
		disk->handles[disk->handle_count].inode = inode;
		disk->handles[disk->handle_count].open = true;
		disk->handles[disk->handle_count].writable =
			(flags & (IO_OPEN_WRITE | IO_OPEN_CREATE)) != 0;
		r = (int)disk->handle_count++;
	}
	pthread_mutex_unlock(&disk->lock);
	return r;
}

static ssize_t sim_file_pread(void *ctx, int file, void *buf, size_t size_bytes, uint64_t offset)
{
	struct sim_disk *disk = ctx;
	ssize_t r;

	pthread_mutex_lock(&disk->lock);
	struct sim_handle *handle = sim_handle_get(disk, file);
	if (handle == NULL) {
		r = -EBADF;
	} else {
		const struct sim_buf *cur = &handle->inode->cur;
		size_t n = 0;
		if (offset < cur->size_bytes) {
			n = cur->size_bytes - (size_t)offset;
			if (n > size_bytes)
				n = size_bytes;
			memcpy(buf, cur->data + offset, n);
		}
		r = (ssize_t)n;
	}
	pthread_mutex_unlock(&disk->lock);
	return r;
}

static int sim_file_pwrite(void *ctx, int file, const void *buf, size_t size_bytes,
			   uint64_t offset)
{
	struct sim_disk *disk = ctx;
	int r;

	pthread_mutex_lock(&disk->lock);
	struct sim_handle *handle = sim_handle_get(disk, file);
	if (handle == NULL || !handle->writable) {
		r = -EBADF;
	} else if (sim_fault_due(&disk->fail_write_in)) {
		r = -EIO;
	} else {
		struct sim_inode *inode = handle->inode;
		r = sim_buf_write(&inode->cur, offset, buf, size_bytes);
		if (r == 0) {
			inode->last_write.size_bytes = 0;
			r = sim_buf_write(&inode->last_write, 0, buf, size_bytes);
			inode->has_last_write = r == 0;
			inode->last_write_offset = offset;
			disk->stats.writes++;
		}
	}
	pthread_mutex_unlock(&disk->lock);
	return r;
}

static int sim_file_sync(void *ctx, int file)
{
	struct sim_disk *disk = ctx;
	int r;

	pthread_mutex_lock(&disk->lock);
	unsigned delay_us = disk->sync_delay_us;
	pthread_mutex_unlock(&disk->lock);
	if (delay_us > 0)
		sim_sleep_us(delay_us);

	pthread_mutex_lock(&disk->lock);
	struct sim_handle *handle = sim_handle_get(disk, file);
	if (handle == NULL) {
		r = -EBADF;
	} else if (sim_fault_due(&disk->fail_sync_in)) {
		r = -EIO;
	} else {
		struct sim_inode *inode = handle->inode;
		r = sim_buf_copy(&inode->dur, &inode->cur);
		if (r == 0) {
			inode->has_last_write = false;
			disk->stats.file_syncs++;
		}
	}
	pthread_mutex_unlock(&disk->lock);
	return r;
}

static int sim_file_truncate(void *ctx, int file, uint64_t size_bytes)
{
	struct sim_disk *disk = ctx;
	int r;

	pthread_mutex_lock(&disk->lock);
	struct sim_handle *handle = sim_handle_get(disk, file);
	if (handle == NULL || !handle->writable) {
		r = -EBADF;
	} else if (size_bytes > SIZE_MAX) {
		r = -EFBIG;
	} else {
		r = sim_buf_resize(&handle->inode->cur, (size_t)size_bytes);
		/* The last change is now the truncation, not a write to tear. */
		handle->inode->has_last_write = false;
	}
	pthread_mutex_unlock(&disk->lock);
	return r;
}

static int sim_file_size(void *ctx, int file, uint64_t *size_bytes)
{
	struct sim_disk *disk = ctx;
	int r = 0;

	pthread_mutex_lock(&disk->lock);
	struct sim_handle *handle = sim_handle_get(disk, file);
	if (handle == NULL)
		r = -EBADF;
	else
		*size_bytes = handle->inode->cur.size_bytes;
	pthread_mutex_unlock(&disk->lock);
	return r;
}

static int sim_file_close(void *ctx, int file)
{
	struct sim_disk *disk = ctx;
	int r = 0;

	pthread_mutex_lock(&disk->lock);
	struct sim_handle *handle = sim_handle_get(disk, file);
	if (handle == NULL)
		r = -EBADF;
	else
		handle->open = false;
	pthread_mutex_unlock(&disk->lock);
	return r;
}

static int sim_path_rename(void *ctx, const char *from_path, const char *to_path)
{
	struct sim_disk *disk = ctx;
	int r;

	pthread_mutex_lock(&disk->lock);
	struct sim_entry *entry = sim_names_find(&disk->names, from_path);
	if (entry == NULL) {
		r = -ENOENT;
	} else {
		struct sim_inode *inode = entry->inode;
		r = sim_op_record(disk, SIM_OP_RENAME, from_path, to_path, inode);
		if (r == 0)
			r = sim_names_set(&disk->names, to_path, inode);
		if (r == 0 && strcmp(from_path, to_path) != 0)
			sim_names_remove(&disk->names, from_path);
	}
	pthread_mutex_unlock(&disk->lock);
	return r;
}

static int sim_path_unlink(void *ctx, const char *path)
{
	struct sim_disk *disk = ctx;
	int r;

	pthread_mutex_lock(&disk->lock);
	struct sim_entry *entry = sim_names_find(&disk->names, path);
	if (entry == NULL) {
		r = -ENOENT;
	} else {
		r = sim_op_record(disk, SIM_OP_UNLINK, path, NULL, entry->inode);
		if (r == 0)
			sim_names_remove(&disk->names, path);
	}
	pthread_mutex_unlock(&disk->lock);
	return r;
}

static int sim_dir_list(void *ctx, const char *dir_path, char ***names_out, size_t *count_out)
{
	struct sim_disk *disk = ctx;
	char **names = NULL;
	size_t count = 0;
	int r = 0;

	pthread_mutex_lock(&disk->lock);
	if (disk->names.count > 0) {
		names = calloc(disk->names.count, sizeof(*names));
		if (names == NULL)
			r = -ENOMEM;
	}
	for (size_t i = 0; r == 0 && i < disk->names.count; i++) {
		const char *path = disk->names.entries[i].path;
		char *dir = sim_dirname(path);
		if (dir == NULL) {
			r = -ENOMEM;
			break;
		}
		if (strcmp(dir, dir_path) == 0) {
			const char *slash = strrchr(path, '/');
			names[count] = strdup(slash != NULL ? slash + 1 : path);
			if (names[count] == NULL)
				r = -ENOMEM;
			else
				count++;
		}
		free(dir);
	}
	pthread_mutex_unlock(&disk->lock);
	if (r < 0) {
		io_names_free(names, count);
		return r;
	}
	*names_out = names;
	*count_out = count;
	return 0;
}

static int sim_dir_sync(void *ctx, const char *dir_path)
{
	struct sim_disk *disk = ctx;
	int r = 0;

	pthread_mutex_lock(&disk->lock);
	unsigned delay_us = disk->sync_delay_us;
	pthread_mutex_unlock(&disk->lock);
	if (delay_us > 0)
		sim_sleep_us(delay_us);

	pthread_mutex_lock(&disk->lock);
	if (sim_fault_due(&disk->fail_sync_in)) {
		r = -EIO;
	} else {
		size_t kept = 0;
		for (size_t i = 0; i < disk->op_count; i++) {
			struct sim_op *op = &disk->ops[i];
			if (r == 0 && strcmp(op->dir, dir_path) == 0) {
				r = sim_op_apply_durably(disk, op);
				sim_op_free(op);
			} else {
				disk->ops[kept++] = *op;
			}
		}
		disk->op_count = kept;
		if (r == 0)
			disk->stats.dir_syncs++;
	}
	pthread_mutex_unlock(&disk->lock);
	return r;
}

/* Lays a torn copy of the inode's last unsynced write over its durable
 * contents: a prefix, sometimes with garbage bytes in it. */
static void sim_crash_tear(struct sim_disk *disk, struct sim_inode *inode)
{
	size_t size_bytes = inode->last_write.size_bytes;
	size_t prefix_bytes = (size_t)sim_random_below(disk, (uint64_t)size_bytes + 1);

	if (prefix_bytes == 0)
		return;
	if (sim_buf_write(&inode->dur, inode->last_write_offset, inode->last_write.data,
			  prefix_bytes) < 0)
		return;	/* out of memory: the write is simply lost */
	if (sim_random_below(disk, 3) == 0) {
		uint64_t garbage = 1 + sim_random_below(disk, 4);
		for (uint64_t i = 0; i < garbage; i++) {
			uint64_t at = inode->last_write_offset +
				      sim_random_below(disk, prefix_bytes);
			inode->dur.data[at] = (uint8_t)sim_random_next(&disk->random_state);
		}
	}
}

void sim_disk_crash(struct sim_disk *disk)
{
	pthread_mutex_lock(&disk->lock);
	/* Keep a random prefix of each directory's pending name changes. */
	for (size_t i = 0; i < disk->op_count; i++) {
		const char *dir = disk->ops[i].dir;
		bool first = true;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(disk->ops[j].dir, dir) == 0) {
				first = false;
				break;
			}
		}
		if (!first)
			continue;
		size_t pending = 0;
		for (size_t j = i; j < disk->op_count; j++)
			pending += strcmp(disk->ops[j].dir, dir) == 0;
		size_t keep = (size_t)sim_random_below(disk, (uint64_t)pending + 1);
		for (size_t j = i; j < disk->op_count && keep > 0; j++) {
			if (strcmp(disk->ops[j].dir, dir) != 0)
				continue;
			/* Out of memory here only loses the change, as a crash may. */
			(void)sim_op_apply_durably(disk, &disk->ops[j]);
			keep--;
		}
	}
	for (size_t i = 0; i < disk->op_count; i++)
		sim_op_free(&disk->ops[i]);
	disk->op_count = 0;
	(void)sim_names_copy(&disk->names, &disk->durable_names);

	for (struct sim_inode *inode = disk->inodes; inode != NULL; inode = inode->next) {
		if (inode->has_last_write && sim_random_below(disk, 2) == 0)
			sim_crash_tear(disk, inode);
		inode->has_last_write = false;
		/* After the reboot, what is on the platter is all there is. */
		if (sim_buf_copy(&inode->cur, &inode->dur) < 0)
			inode->cur.size_bytes = 0;
	}
	for (size_t i = 0; i < disk->handle_count; i++)
		disk->handles[i].open = false;
	disk->stats.crashes++;
	pthread_mutex_unlock(&disk->lock);
}

void sim_disk_fail_write(struct sim_disk *disk, uint64_t nth)
{
	pthread_mutex_lock(&disk->lock);
	disk->fail_write_in = nth;
	pthread_mutex_unlock(&disk->lock);
}

void sim_disk_fail_sync(struct sim_disk *disk, uint64_t nth)
{
	pthread_mutex_lock(&disk->lock);
	disk->fail_sync_in = nth;
	pthread_mutex_unlock(&disk->lock);
}

int sim_disk_corrupt_byte(struct sim_disk *disk, const char *path, uint64_t offset)
{
	int r = 0;

	pthread_mutex_lock(&disk->lock);
	struct sim_entry *entry = sim_names_find(&disk->names, path);
	if (entry == NULL) {
		r = -ENOENT;
	} else if (offset >= entry->inode->dur.size_bytes) {
		r = -EINVAL;
	} else {
		uint8_t flip = (uint8_t)(1 + sim_random_below(disk, 255));
		entry->inode->dur.data[offset] ^= flip;
		if (offset < entry->inode->cur.size_bytes)
			entry->inode->cur.data[offset] ^= flip;
	}
	pthread_mutex_unlock(&disk->lock);
	return r;
}

void sim_disk_set_sync_delay_us(struct sim_disk *disk, unsigned delay_us)
{
	pthread_mutex_lock(&disk->lock);
	disk->sync_delay_us = delay_us;
	pthread_mutex_unlock(&disk->lock);
}

void sim_disk_get_stats(struct sim_disk *disk, struct sim_disk_stats *stats)
{
	pthread_mutex_lock(&disk->lock);
	*stats = disk->stats;
	pthread_mutex_unlock(&disk->lock);
}

const struct io *sim_disk_io(struct sim_disk *disk)
{
	return &disk->io;
}

int sim_disk_create(uint64_t seed, struct sim_disk **out)
{
	struct sim_disk *disk = calloc(1, sizeof(*disk));

	if (disk == NULL)
		return -ENOMEM;
	if (pthread_mutex_init(&disk->lock, NULL) != 0) {
		free(disk);
		return -ENOMEM;
	}
	disk->random_state = seed;
	disk->io = (struct io){
		.ctx = disk,
		.file_open = sim_file_open,
		.file_pread = sim_file_pread,
		.file_pwrite = sim_file_pwrite,
		.file_sync = sim_file_sync,
		.file_truncate = sim_file_truncate,
		.file_size = sim_file_size,
		.file_close = sim_file_close,
		.path_rename = sim_path_rename,
		.path_unlink = sim_path_unlink,
		.dir_list = sim_dir_list,
		.dir_sync = sim_dir_sync,
	};
	*out = disk;
	return 0;
}

void sim_disk_destroy(struct sim_disk *disk)
{
	if (disk == NULL)
		return;
	while (disk->inodes != NULL) {
		struct sim_inode *inode = disk->inodes;
		disk->inodes = inode->next;
		sim_buf_free(&inode->cur);
		sim_buf_free(&inode->dur);
		sim_buf_free(&inode->last_write);
		free(inode);
	}
	sim_names_clear(&disk->names);
	free(disk->names.entries);
	sim_names_clear(&disk->durable_names);
	free(disk->durable_names.entries);
	for (size_t i = 0; i < disk->op_count; i++)
		sim_op_free(&disk->ops[i]);
	free(disk->ops);
	free(disk->handles);
	pthread_mutex_destroy(&disk->lock);
	free(disk);
}

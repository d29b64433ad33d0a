/* wal.c: the segmented, checksummed write-ahead log (format and contract in
 * wal.h).
 *
 * Concurrency. One mutex guards the in-memory state; it is held for a record
 * write (a copy into the page cache, which also keeps file order equal to
 * index order) but never across a sync. Syncs, and the operations that
 * change which files exist, are done by whoever holds the syncer role
 * (wal->syncing): a syncer notes the last index, drops the mutex, syncs the
 * current segment, and on return advances durable_index to what it noted,
 * waking everyone; a caller that finds the role taken waits and then checks
 * again whether its index is covered. Rollover and truncation take the role
 * too, and also set tail_busy so appends wait while the tail changes.
 *
 * Segments are reference counted: the array holds one reference, and a
 * reader holds one while it reads without the mutex, so a segment dropped by
 * truncation keeps its file open until the last reader is done. */
#include "cluster/wal.h"

#include "cluster/crc32c.h"
#include "cluster/log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAL_NAME_PREFIX "wal-"
#define WAL_NAME_SUFFIX ".seg"
#define WAL_NAME_DIGITS 20

struct wal_segment {
	uint64_t first_index;
	uint64_t record_count;
	/* offsets[i] is the file offset of record first_index + i. */
	uint64_t *offsets;
	size_t offsets_capacity;
	/* End of the last record: where the next one is written. */
	uint64_t size_bytes;
	int file;
	unsigned refs;
	char *path;
};

struct wal {
	const struct io *io;
	char *dir_path;
	uint64_t segment_size_bytes;
	pthread_mutex_t lock;
	/* Broadcast whenever durable_index, the roles, the tail or failed change. */
	pthread_cond_t changed;
	struct wal_segment **segments;	/* in index order; the last is written */
	size_t segment_count;
	size_t segment_capacity;
	uint64_t first_index;
	uint64_t last_index;
	uint64_t durable_index;
	uint64_t suffix_truncations;	/* lets a reader tell a cut from damage */
	bool syncing;
	bool tail_busy;
	bool failed;
};

void wal_options_init(struct wal_options *options)
{
	options->segment_size_bytes = WAL_SEGMENT_BYTES_DEFAULT;
}

static void wal_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wal_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t wal_get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t wal_get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t wal_record_crc(uint32_t payload_crc, uint64_t index)
{
	uint8_t index_le[8];

	wal_put_le64(index_le, index);
	return crc32c_extend(payload_crc, index_le, sizeof(index_le));
}

/* Checks the record at offset of buf: true with its index and total size when
 * its header fits, its length is within bounds and its CRC matches. */
static bool wal_record_parse(const uint8_t *buf, uint64_t size_bytes, uint64_t offset,
			     uint64_t *index, uint64_t *record_bytes)
{
	if (offset > size_bytes || size_bytes - offset < WAL_RECORD_HEADER_BYTES)
		return false;
	const uint8_t *header = buf + offset;
	uint32_t length = wal_get_le32(header);
	if (length > WAL_PAYLOAD_BYTES_MAX ||
	    size_bytes - offset - WAL_RECORD_HEADER_BYTES < length)
		return false;
	uint64_t record_index = wal_get_le64(header + 8);
	if (record_index == 0)
		return false;
	uint32_t crc = crc32c(header + WAL_RECORD_HEADER_BYTES, length);
	if (wal_record_crc(crc, record_index) != wal_get_le32(header + 4))
		return false;
	*index = record_index;
	*record_bytes = WAL_RECORD_HEADER_BYTES + (uint64_t)length;
	return true;
}

static bool wal_bytes_zero(const uint8_t *p, uint64_t size_bytes)
{
	for (uint64_t i = 0; i < size_bytes; i++) {
		if (p[i] != 0)
			return false;
	}
	return true;
}

/* Offset of the first valid record after from whose index could follow
 * expected_index, or size_bytes when there is none. Cheap filters on length
 * and index run before the CRC, so scanning a damaged tail stays fast. */
static uint64_t wal_find_valid_after(const uint8_t *buf, uint64_t size_bytes, uint64_t from,
				     uint64_t expected_index)
{
	uint64_t index_span = size_bytes / WAL_RECORD_HEADER_BYTES + 1;

	for (uint64_t p = from + 1; p + WAL_RECORD_HEADER_BYTES <= size_bytes; p++) {
		uint64_t index = wal_get_le64(buf + p + 8);
		uint64_t record_bytes;
		if (index < expected_index || index - expected_index > index_span)
			continue;
		if (wal_get_le32(buf + p) > size_bytes - p - WAL_RECORD_HEADER_BYTES)
			continue;
		if (wal_record_parse(buf, size_bytes, p, &index, &record_bytes))
			return p;
	}
	return size_bytes;
}

static char *wal_segment_path(const char *dir_path, uint64_t first_index)
{
	size_t size_bytes = strlen(dir_path) + sizeof("/" WAL_NAME_PREFIX WAL_NAME_SUFFIX) +
			    WAL_NAME_DIGITS;
	char *path = malloc(size_bytes);

	if (path != NULL)
		snprintf(path, size_bytes, "%s/" WAL_NAME_PREFIX "%020" PRIu64 WAL_NAME_SUFFIX,
			 dir_path, first_index);
	return path;
}

/* Parses wal-<20 digits>.seg; false for any other name. */
static bool wal_segment_name_parse(const char *name, uint64_t *first_index)
{
	size_t prefix = strlen(WAL_NAME_PREFIX);
	uint64_t value = 0;

	if (strlen(name) != prefix + WAL_NAME_DIGITS + strlen(WAL_NAME_SUFFIX))
		return false;
	if (strncmp(name, WAL_NAME_PREFIX, prefix) != 0 ||
	    strcmp(name + prefix + WAL_NAME_DIGITS, WAL_NAME_SUFFIX) != 0)
		return false;
	for (size_t i = prefix; i < prefix + WAL_NAME_DIGITS; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		uint64_t digit = (uint64_t)(name[i] - '0');
		if (value > (UINT64_MAX - digit) / 10)
			return false;
		value = value * 10 + digit;
	}
	*first_index = value;
	return true;
}

static struct wal_segment *wal_segment_new(char *path, uint64_t first_index)
{
	struct wal_segment *segment = calloc(1, sizeof(*segment));

	if (segment == NULL)
		return NULL;
	segment->first_index = first_index;
	segment->file = -1;
	segment->refs = 1;
	segment->path = path;
	return segment;
}

/* Drops a reference; the last one closes the file. Called with the mutex
 * held once the WAL exists (close does not block on the disk). */
static void wal_segment_put(const struct io *io, struct wal_segment *segment)
{
	if (segment == NULL || --segment->refs > 0)
		return;
	if (segment->file >= 0)
		io->file_close(io->ctx, segment->file);
	free(segment->offsets);
	free(segment->path);
	free(segment);
}

static int wal_segment_reserve(struct wal_segment *segment, uint64_t records)
{
	if (records <= segment->offsets_capacity)
		return 0;
	size_t capacity = segment->offsets_capacity ? segment->offsets_capacity * 2 : 64;
	while (capacity < records)
		capacity *= 2;
	uint64_t *grown = realloc(segment->offsets, capacity * sizeof(*grown));
	if (grown == NULL)
		return -ENOMEM;
	segment->offsets = grown;
	segment->offsets_capacity = capacity;
	return 0;
}

static int wal_segments_reserve(struct wal *wal, size_t count)
{
	if (count <= wal->segment_capacity)
		return 0;
	size_t capacity = wal->segment_capacity ? wal->segment_capacity * 2 : 8;
	while (capacity < count)
		capacity *= 2;
	struct wal_segment **grown = realloc(wal->segments, capacity * sizeof(*grown));
	if (grown == NULL)
		return -ENOMEM;
	wal->segments = grown;
	wal->segment_capacity = capacity;
	return 0;
}

static struct wal_segment *wal_current(struct wal *wal)
{
	return wal->segments[wal->segment_count - 1];
}

/* The segment holding index (first_index <= index <= last_index). */
static size_t wal_segment_find(struct wal *wal, uint64_t index)
{
	size_t low = 0;
	size_t high = wal->segment_count;

	/* The last segment whose first index is <= index. */
	while (high - low > 1) {
		size_t middle = low + (high - low) / 2;
		if (wal->segments[middle]->first_index <= index)
			low = middle;
		else
			high = middle;
	}
	return low;
}

/* Enters the failed state (see wal.h). Called with the mutex held. */
static int wal_fail_locked(struct wal *wal, const char *what, int error)
{
	if (!wal->failed)
		log_error("wal %s: %s failed: %s; refusing all further use until reopened",
			  wal->dir_path, what, strerror(-error));
	wal->failed = true;
	pthread_cond_broadcast(&wal->changed);
	return -EIO;
}

static int wal_read_whole(const struct io *io, int file, uint64_t size_bytes, uint8_t **out)
{
	uint8_t *buf;
	ssize_t n;

	if (size_bytes > SIZE_MAX)
		return -EFBIG;
	buf = malloc(size_bytes > 0 ? (size_t)size_bytes : 1);
	if (buf == NULL)
		return -ENOMEM;
	n = io->file_pread(io->ctx, file, buf, (size_t)size_bytes, 0);
	if (n < 0 || (uint64_t)n != size_bytes) {
		free(buf);
		return n < 0 ? (int)n : -EIO;
	}
	*out = buf;
	return 0;
}

/* Reads and checks one segment at open, filling its offsets; cuts a torn
 * tail when is_last (see wal.h for what counts as torn). */
static int wal_segment_recover(struct wal *wal, struct wal_segment *segment, bool is_last)
{
	const struct io *io = wal->io;
	uint64_t size_bytes;
	uint64_t offset = 0;
	uint64_t index = segment->first_index;
	uint8_t *buf = NULL;
	int r;

	r = io->file_size(io->ctx, segment->file, &size_bytes);
	if (r == 0)
		r = wal_read_whole(io, segment->file, size_bytes, &buf);
	if (r < 0) {
		log_error("wal %s: cannot read: %s", segment->path, strerror(-r));
		return r;
	}
	while (offset < size_bytes) {
		uint64_t record_index, record_bytes;
		if (!wal_record_parse(buf, size_bytes, offset, &record_index, &record_bytes) ||
		    record_index != index)
			break;
		r = wal_segment_reserve(segment, segment->record_count + 1);
		if (r < 0)
			goto out;
		segment->offsets[segment->record_count++] = offset;
		offset += record_bytes;
		index++;
	}
	segment->size_bytes = offset;
	if (offset == size_bytes)
		goto out;

	/* A bad record at offset. Only a tail of lost or torn unsynced writes
	 * may be cut: it must be in the last segment, with nothing valid after
	 * it except beyond a stretch of zeros (a hole left by lost writes). */
	uint64_t valid_at = wal_find_valid_after(buf, size_bytes, offset, index);
	bool valid_after = valid_at < size_bytes &&
			   !wal_bytes_zero(buf + offset, valid_at - offset);
	if (!is_last || valid_after) {
		log_error("wal %s: corrupt record at offset %" PRIu64 " (index %" PRIu64
			  " expected)%s: refusing to open", segment->path, offset, index,
			  is_last ? ", with valid records after it" : " in a sealed segment");
		r = -EBADMSG;
		goto out;
	}
	log_warn("wal %s: cutting a torn tail at offset %" PRIu64 " (%" PRIu64
		 " bytes, from index %" PRIu64 ")", segment->path, offset, size_bytes - offset,
		 index);
	r = io->file_truncate(io->ctx, segment->file, offset);
	if (r == 0)
		r = io->file_sync(io->ctx, segment->file);
	if (r < 0)
		log_error("wal %s: cannot cut the torn tail: %s", segment->path, strerror(-r));
out:
	free(buf);
	return r;
}

static int wal_compare_first(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Lists the segment files of the directory, sorted by first index. */
static int wal_list_segments(struct wal *wal, uint64_t **firsts_out, size_t *count_out)
{
	const struct io *io = wal->io;
	char **names = NULL;
	size_t name_count = 0;
	uint64_t *firsts = NULL;
	size_t count = 0;
	int r;

	r = io->dir_list(io->ctx, wal->dir_path, &names, &name_count);
	if (r < 0) {
		log_error("wal %s: cannot list: %s", wal->dir_path, strerror(-r));
		return r;
	}
	firsts = calloc(name_count > 0 ? name_count : 1, sizeof(*firsts));
	if (firsts == NULL) {
		io_names_free(names, name_count);
		return -ENOMEM;
	}
	for (size_t i = 0; i < name_count; i++) {
		uint64_t first;
		if (!wal_segment_name_parse(names[i], &first))
			continue;
		if (first == 0) {
			log_warn("wal %s: ignoring %s (index 0 is never used)", wal->dir_path,
				 names[i]);
			continue;
		}
		firsts[count++] = first;
	}
	io_names_free(names, name_count);
	qsort(firsts, count, sizeof(*firsts), wal_compare_first);
	*firsts_out = firsts;
	*count_out = count;
	return 0;
}

/* Opens (or, with create, makes) the segment file starting at first and
 * appends it to the array. Used at open, before other threads exist. */
static int wal_add_segment(struct wal *wal, uint64_t first, bool create)
{
	const struct io *io = wal->io;
	struct wal_segment *segment;
	char *path;
	int file;
	int r;

	r = wal_segments_reserve(wal, wal->segment_count + 1);
	if (r < 0)
		return r;
	path = wal_segment_path(wal->dir_path, first);
	if (path == NULL)
		return -ENOMEM;
	segment = wal_segment_new(path, first);
	if (segment == NULL) {
		free(path);
		return -ENOMEM;
	}
	file = io->file_open(io->ctx, path, create ? IO_OPEN_CREATE | IO_OPEN_EXCL : IO_OPEN_WRITE);
	if (file < 0) {
		log_error("wal %s: cannot open: %s", path, strerror(-file));
		wal_segment_put(io, segment);
		return file;
	}
	segment->file = file;
	wal->segments[wal->segment_count++] = segment;
	return 0;
}

static int wal_recover(struct wal *wal)
{
	const struct io *io = wal->io;
	uint64_t *firsts = NULL;
	size_t count = 0;
	int r;

	r = wal_list_segments(wal, &firsts, &count);
	if (r < 0)
		return r;
	if (count == 0) {
		/* A new log: its first segment exists durably before any record. */
		r = wal_add_segment(wal, 1, true);
		if (r == 0)
			r = io->dir_sync(io->ctx, wal->dir_path);
		if (r == 0)
			log_info("wal %s: created", wal->dir_path);
		wal->first_index = 1;
		wal->last_index = 0;
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		r = wal_add_segment(wal, firsts[i], false);
		if (r < 0)
			goto out;
		struct wal_segment *segment = wal_current(wal);
		if (i > 0 && segment->first_index != wal->last_index + 1) {
			log_error("wal %s: starts at index %" PRIu64 " but the log before it "
				  "ends at %" PRIu64 " (a segment is missing or damaged): "
				  "refusing to open", segment->path, segment->first_index,
				  wal->last_index);
			r = -EBADMSG;
			goto out;
		}
		r = wal_segment_recover(wal, segment, i + 1 == count);
		if (r < 0)
			goto out;
		wal->last_index = segment->first_index + segment->record_count - 1;
	}
	wal->first_index = wal->segments[0]->first_index;
	/* What a crashed process wrote may still be only in the page cache:
	 * make it durable before calling it so. */
	r = io->file_sync(io->ctx, wal_current(wal)->file);
	if (r == 0)
		r = io->dir_sync(io->ctx, wal->dir_path);
	if (r < 0)
		log_error("wal %s: cannot sync at open: %s", wal->dir_path, strerror(-r));
	else
		log_info("wal %s: recovered indexes %" PRIu64 " to %" PRIu64 " in %zu segments",
			 wal->dir_path, wal->first_index, wal->last_index, count);
out:
	free(firsts);
	wal->durable_index = wal->last_index;
	return r;
}

static void wal_free(struct wal *wal)
{
	for (size_t i = 0; i < wal->segment_count; i++)
		wal_segment_put(wal->io, wal->segments[i]);
	free(wal->segments);
	free(wal->dir_path);
	pthread_cond_destroy(&wal->changed);
	pthread_mutex_destroy(&wal->lock);
	free(wal);
}

int wal_open(const struct io *io, const char *dir_path, const struct wal_options *options,
	     struct wal **out)
{
	struct wal_options defaults;
	struct wal *wal;
	size_t length;
	int r;

	if (io == NULL || dir_path == NULL || dir_path[0] == '\0' || out == NULL)
		return -EINVAL;
	if (options == NULL) {
		wal_options_init(&defaults);
		options = &defaults;
	}
	if (options->segment_size_bytes == 0)
		return -EINVAL;
	wal = calloc(1, sizeof(*wal));
	if (wal == NULL)
		return -ENOMEM;
	wal->io = io;
	wal->segment_size_bytes = options->segment_size_bytes;
	wal->dir_path = strdup(dir_path);
	if (wal->dir_path == NULL) {
		free(wal);
		return -ENOMEM;
	}
	/* One spelling of the directory, so dir_sync names what files use. */
	length = strlen(wal->dir_path);
	while (length > 1 && wal->dir_path[length - 1] == '/')
		wal->dir_path[--length] = '\0';
	if (pthread_mutex_init(&wal->lock, NULL) != 0) {
		free(wal->dir_path);
		free(wal);
		return -ENOMEM;
	}
	if (pthread_cond_init(&wal->changed, NULL) != 0) {
		pthread_mutex_destroy(&wal->lock);
		free(wal->dir_path);
		free(wal);
		return -ENOMEM;
	}
	r = wal_recover(wal);
	if (r < 0) {
		wal_free(wal);
		return r;
	}
	*out = wal;
	return 0;
}

void wal_close(struct wal *wal)
{
	/* No other call may run now (wal.h), so nothing to wait for. */
	if (wal != NULL)
		wal_free(wal);
}

/* Starts a new segment after the current one: syncs the current one, creates
 * the file, syncs the directory. Called with the mutex held and the tail not
 * busy; returns with it held. Returns 0 also when it only waited, so the
 * caller checks its conditions again. */
static int wal_rollover_locked(struct wal *wal)
{
	const struct io *io = wal->io;
	struct wal_segment *current = wal_current(wal);
	struct wal_segment *segment;
	uint64_t target = wal->last_index;
	char *path;
	int file = -1;
	int r;

	if (wal->syncing) {
		pthread_cond_wait(&wal->changed, &wal->lock);
		return 0;
	}
	r = wal_segments_reserve(wal, wal->segment_count + 1);
	if (r < 0)
		return r;
	path = wal_segment_path(wal->dir_path, target + 1);
	if (path == NULL)
		return -ENOMEM;
	segment = wal_segment_new(path, target + 1);
	if (segment == NULL) {
		free(path);
		return -ENOMEM;
	}
	wal->syncing = true;
	wal->tail_busy = true;
	pthread_mutex_unlock(&wal->lock);

	r = io->file_sync(io->ctx, current->file);
	if (r == 0) {
		file = io->file_open(io->ctx, path, IO_OPEN_CREATE | IO_OPEN_EXCL);
		r = file < 0 ? file : 0;
	}
	if (r == 0)
		r = io->dir_sync(io->ctx, wal->dir_path);

	pthread_mutex_lock(&wal->lock);
	wal->syncing = false;
	wal->tail_busy = false;
	pthread_cond_broadcast(&wal->changed);
	if (r < 0) {
		if (file >= 0)
			io->file_close(io->ctx, file);
		wal_segment_put(io, segment);
		return wal_fail_locked(wal, "starting a new segment", r);
	}
	segment->file = file;
	wal->segments[wal->segment_count++] = segment;
	if (wal->durable_index < target)
		wal->durable_index = target;
	return 0;
}

int wal_append(struct wal *wal, const void *payload, size_t size_bytes, uint64_t *index)
{
	const struct io *io = wal->io;
	uint64_t record_bytes = WAL_RECORD_HEADER_BYTES + (uint64_t)size_bytes;
	struct wal_segment *segment;
	uint32_t payload_crc;
	uint8_t *record;
	int r = 0;

	if (size_bytes > WAL_PAYLOAD_BYTES_MAX)
		return -EMSGSIZE;
	if ((payload == NULL && size_bytes > 0) || index == NULL)
		return -EINVAL;
	/* Copy and checksum outside the mutex; only the index is filled in. */
	record = malloc((size_t)record_bytes);
	if (record == NULL)
		return -ENOMEM;
	if (size_bytes > 0)
		memcpy(record + WAL_RECORD_HEADER_BYTES, payload, size_bytes);
	payload_crc = crc32c(record + WAL_RECORD_HEADER_BYTES, size_bytes);
	wal_put_le32(record, (uint32_t)size_bytes);

	pthread_mutex_lock(&wal->lock);
	for (;;) {
		if (wal->failed) {
			r = -EIO;
			goto out;
		}
		if (wal->tail_busy) {
			pthread_cond_wait(&wal->changed, &wal->lock);
			continue;
		}
		segment = wal_current(wal);
		if (segment->size_bytes > 0 &&
		    segment->size_bytes + record_bytes > wal->segment_size_bytes) {
			r = wal_rollover_locked(wal);
			if (r < 0)
				goto out;
			continue;
		}
		break;
	}
	r = wal_segment_reserve(segment, segment->record_count + 1);
	if (r < 0)
		goto out;
	uint64_t record_index = wal->last_index + 1;
	wal_put_le32(record + 4, wal_record_crc(payload_crc, record_index));
	wal_put_le64(record + 8, record_index);
	r = io->file_pwrite(io->ctx, segment->file, record, (size_t)record_bytes,
			    segment->size_bytes);
	if (r < 0) {
		r = wal_fail_locked(wal, "append", r);
		goto out;
	}
	segment->offsets[segment->record_count++] = segment->size_bytes;
	segment->size_bytes += record_bytes;
	wal->last_index = record_index;
	*index = record_index;
out:
	pthread_mutex_unlock(&wal->lock);
	free(record);
	return r;
}

int wal_sync(struct wal *wal, uint64_t index)
{
	const struct io *io = wal->io;
	int r;

	pthread_mutex_lock(&wal->lock);
	for (;;) {
		if (wal->failed) {
			r = -EIO;
			break;
		}
		if (index > wal->last_index) {
			r = -ENOENT;
			break;
		}
		if (wal->durable_index >= index) {
			r = 0;
			break;
		}
		if (wal->syncing) {
			pthread_cond_wait(&wal->changed, &wal->lock);
			continue;
		}
		/* Become the syncer for everything appended so far. The current
		 * segment cannot change while the role is held. */
		uint64_t target = wal->last_index;
		int file = wal_current(wal)->file;
		wal->syncing = true;
		pthread_mutex_unlock(&wal->lock);
		r = io->file_sync(io->ctx, file);
		pthread_mutex_lock(&wal->lock);
		wal->syncing = false;
		pthread_cond_broadcast(&wal->changed);
		if (r < 0) {
			r = wal_fail_locked(wal, "sync", r);
			break;
		}
		if (wal->durable_index < target)
			wal->durable_index = target;
	}
	pthread_mutex_unlock(&wal->lock);
	return r;
}

/* Checks a record read back from disk against what the index says. */
static bool wal_record_matches(const uint8_t *record, uint64_t record_bytes, uint64_t index)
{
	uint64_t parsed_index, parsed_bytes;

	return wal_record_parse(record, record_bytes, 0, &parsed_index, &parsed_bytes) &&
	       parsed_index == index && parsed_bytes == record_bytes;
}

int wal_read(struct wal *wal, uint64_t index, void **payload, size_t *size_bytes)
{
	const struct io *io = wal->io;

	for (;;) {
		pthread_mutex_lock(&wal->lock);
		if (wal->failed) {
			pthread_mutex_unlock(&wal->lock);
			return -EIO;
		}
		if (index < wal->first_index || index > wal->last_index) {
			pthread_mutex_unlock(&wal->lock);
			return -ENOENT;
		}
		struct wal_segment *segment = wal->segments[wal_segment_find(wal, index)];
		uint64_t slot = index - segment->first_index;
		uint64_t offset = segment->offsets[slot];
		uint64_t end = slot + 1 < segment->record_count ? segment->offsets[slot + 1]
								 : segment->size_bytes;
		uint64_t truncations = wal->suffix_truncations;
		segment->refs++;
		pthread_mutex_unlock(&wal->lock);

		uint64_t record_bytes = end - offset;
		uint8_t *record = malloc((size_t)record_bytes);
		ssize_t n = -ENOMEM;
		if (record != NULL)
			n = io->file_pread(io->ctx, segment->file, record, (size_t)record_bytes,
					   offset);
		bool good = n >= 0 && (uint64_t)n == record_bytes &&
			    wal_record_matches(record, record_bytes, index);

		pthread_mutex_lock(&wal->lock);
		/* A cut running or done since the lookup explains a bad read. */
		bool cut = truncations != wal->suffix_truncations || wal->tail_busy;
		char *path = NULL;
		if (!good && !cut && n >= 0)
			path = strdup(segment->path);
		wal_segment_put(io, segment);
		while (!good && cut && wal->tail_busy && !wal->failed)
			pthread_cond_wait(&wal->changed, &wal->lock);
		pthread_mutex_unlock(&wal->lock);

		if (good) {
			size_t length = (size_t)record_bytes - WAL_RECORD_HEADER_BYTES;
			/* Move the payload to the front, keeping one allocation. */
			memmove(record, record + WAL_RECORD_HEADER_BYTES, length);
			if (length == 0) {
				free(record);
				record = NULL;
			}
			*payload = record;
			*size_bytes = length;
			return 0;
		}
		free(record);
		if (cut)
			continue;	/* truncate_suffix ran meanwhile: look again */
		if (n < 0)
			return (int)n;
		log_error("wal %s: record %" PRIu64 " at offset %" PRIu64 " is damaged",
			  path != NULL ? path : wal->dir_path, index, offset);
		free(path);
		return -EBADMSG;
	}
}

uint64_t wal_first_index(struct wal *wal)
{
	pthread_mutex_lock(&wal->lock);
	uint64_t index = wal->first_index;
	pthread_mutex_unlock(&wal->lock);
	return index;
}

uint64_t wal_last_index(struct wal *wal)
{
	pthread_mutex_lock(&wal->lock);
	uint64_t index = wal->last_index;
	pthread_mutex_unlock(&wal->lock);
	return index;
}

uint64_t wal_durable_index(struct wal *wal)
{
	pthread_mutex_lock(&wal->lock);
	uint64_t index = wal->durable_index;
	pthread_mutex_unlock(&wal->lock);
	return index;
}

/* Waits until the syncer role and the tail are free, then takes both.
 * Called and returns with the mutex held; fails only when the WAL failed. */
static int wal_claim_exclusive_locked(struct wal *wal)
{
	for (;;) {
		if (wal->failed)
			return -EIO;
		if (!wal->syncing && !wal->tail_busy)
			break;
		pthread_cond_wait(&wal->changed, &wal->lock);
	}
	wal->syncing = true;
	wal->tail_busy = true;
	return 0;
}

static void wal_release_exclusive_locked(struct wal *wal)
{
	wal->syncing = false;
	wal->tail_busy = false;
	pthread_cond_broadcast(&wal->changed);
}

int wal_truncate_prefix(struct wal *wal, uint64_t index)
{
	const struct io *io = wal->io;
	struct wal_segment **dropped;
	size_t count = 0;
	int r = 0;

	pthread_mutex_lock(&wal->lock);
	/* Only the syncer role: appends touch the last segment, which stays. */
	for (;;) {
		if (wal->failed) {
			r = -EIO;
			goto unlock;
		}
		if (!wal->syncing)
			break;
		pthread_cond_wait(&wal->changed, &wal->lock);
	}
	wal->syncing = true;
	while (count + 1 < wal->segment_count && wal->segments[count + 1]->first_index <= index)
		count++;
	if (count == 0)
		goto release;
	dropped = malloc(count * sizeof(*dropped));
	if (dropped == NULL) {
		r = -ENOMEM;
		goto release;
	}
	/* Forget them first: readers of those indexes now get -ENOENT, and
	 * their references keep the files open until they are done. */
	memcpy(dropped, wal->segments, count * sizeof(*dropped));
	memmove(wal->segments, wal->segments + count,
		(wal->segment_count - count) * sizeof(*dropped));
	wal->segment_count -= count;
	wal->first_index = wal->segments[0]->first_index;
	pthread_mutex_unlock(&wal->lock);

	/* Oldest first, so a crash in between leaves a log without holes. */
	for (size_t i = 0; i < count && r == 0; i++)
		r = io->path_unlink(io->ctx, dropped[i]->path);
	if (r == 0)
		r = io->dir_sync(io->ctx, wal->dir_path);

	pthread_mutex_lock(&wal->lock);
	for (size_t i = 0; i < count; i++)
		wal_segment_put(io, dropped[i]);
	free(dropped);
	if (r < 0)
		r = wal_fail_locked(wal, "deleting old segments", r);
	else
		log_info("wal %s: dropped %zu segments, log starts at index %" PRIu64,
			 wal->dir_path, count, wal->first_index);
release:
	wal->syncing = false;
	pthread_cond_broadcast(&wal->changed);
unlock:
	pthread_mutex_unlock(&wal->lock);
	return r;
}

int wal_truncate_suffix(struct wal *wal, uint64_t index)
{
	const struct io *io = wal->io;
	size_t keep;
	size_t count;
	int r;

	pthread_mutex_lock(&wal->lock);
	r = wal_claim_exclusive_locked(wal);
	if (r < 0)
		goto unlock;
	if (index == 0 || index < wal->first_index) {
		r = -EINVAL;
		goto release;
	}
	if (index > wal->last_index)
		goto release;
	keep = wal_segment_find(wal, index);
	struct wal_segment *kept = wal->segments[keep];
	uint64_t cut_offset = kept->offsets[index - kept->first_index];
	count = wal->segment_count - keep - 1;
	/* The role keeps the array as it is while the mutex is dropped. */
	struct wal_segment **later = wal->segments + keep + 1;
	pthread_mutex_unlock(&wal->lock);

	/* Newest first, then the cut: a crash in between leaves a log that is
	 * a prefix of the old one, never one with a hole. */
	for (size_t i = count; i > 0 && r == 0; i--)
		r = io->path_unlink(io->ctx, later[i - 1]->path);
	if (r == 0 && count > 0)
		r = io->dir_sync(io->ctx, wal->dir_path);
	if (r == 0)
		r = io->file_truncate(io->ctx, kept->file, cut_offset);
	if (r == 0)
		r = io->file_sync(io->ctx, kept->file);

	pthread_mutex_lock(&wal->lock);
	if (r < 0) {
		r = wal_fail_locked(wal, "truncating the log", r);
		goto release;
	}
	for (size_t i = 0; i < count; i++)
		wal_segment_put(io, later[i]);
	wal->segment_count = keep + 1;
	kept->record_count = index - kept->first_index;
	kept->size_bytes = cut_offset;
	wal->last_index = index - 1;
	/* Earlier segments were synced at rollover and this one just now. */
	wal->durable_index = index - 1;
	wal->suffix_truncations++;
	log_info("wal %s: cut the log after index %" PRIu64, wal->dir_path, index - 1);
release:
	wal_release_exclusive_locked(wal);
unlock:
	pthread_mutex_unlock(&wal->lock);
	return r;
}

void wal_iter_init(struct wal_iter *iter, struct wal *wal, uint64_t from_index)
{
	iter->wal = wal;
	iter->next_index = from_index;
}

int wal_iter_next(struct wal_iter *iter, uint64_t *index, void **payload, size_t *size_bytes)
{
	if (iter->next_index > wal_last_index(iter->wal))
		return 0;
	int r = wal_read(iter->wal, iter->next_index, payload, size_bytes);
	if (r < 0)
		return r;
	*index = iter->next_index++;
	return 1;
}

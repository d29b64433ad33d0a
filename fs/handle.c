/* handle.c: open-file buffers and directory handles (see handle.h).
 *
 * A file handle's lock guards its buffer and pending metadata and is never
 * held across I/O: flush copies the buffer under the lock and puts the
 * copy, and a change counter tells afterwards whether the buffer changed
 * meanwhile (then it stays dirty). flush_lock keeps two puts of one handle
 * from landing out of order. */
#include "fs/handle.h"

#include "cluster/clock.h"
#include "cluster/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HANDLE_CONTAINER(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Items per router_scan call of a directory listing. */
#define DIR_PAGE_ENTRIES 256
/* Consecutive empty pages tolerated before a scan counts as broken. */
#define DIR_EMPTY_PAGES_MAX 10000

struct file_handle {
	struct inode_link link;    /* on the inode, from new to release */
	uint64_t inode_number;
	int open_flags;
	pthread_mutex_t flush_lock;
	pthread_mutex_t lock;      /* everything below */
	uint8_t *body;
	size_t body_bytes, capacity_bytes;
	struct item_attr attr;     /* pending metadata; attr.size == body_bytes */
	bool dirty;
	int failed_errno;          /* positive; 0 while the handle is healthy */
	uint64_t change_count;     /* bumped by every change of the buffer */
	pid_t truncated_by;        /* opened with O_TRUNC by this task (-1: unknown); 0: not */
};

/* Makes room for size_bytes (doubling, so appends stay linear). */
static int file_handle_reserve(struct file_handle *handle, size_t size_bytes)
{
	size_t capacity = handle->capacity_bytes ? handle->capacity_bytes : 4096;
	uint8_t *body;

	if (size_bytes <= handle->capacity_bytes)
		return 0;
	while (capacity < size_bytes)
		capacity = capacity > SIZE_MAX / 2 ? size_bytes : capacity * 2;
	body = realloc(handle->body, capacity);
	if (!body)
		return -ENOMEM;
	handle->body = body;
	handle->capacity_bytes = capacity;
	return 0;
}

/* Sets the buffer's length, zero-filling when it grows. */
static int file_handle_resize(struct file_handle *handle, size_t size_bytes)
{
	int rc = file_handle_reserve(handle, size_bytes);

	if (rc)
		return rc;
	if (size_bytes > handle->body_bytes)
		memset(handle->body + handle->body_bytes, 0, size_bytes - handle->body_bytes);
	handle->body_bytes = size_bytes;
	handle->attr.size = size_bytes;
	return 0;
}

int file_handle_new(struct inode_table *inodes, uint64_t number, int open_flags,
		    const struct item_attr *attr, const void *body, size_t body_bytes,
		    pid_t truncated_by, struct file_handle **out)
{
	struct file_handle *handle = calloc(1, sizeof(*handle));
	int rc;

	if (!handle)
		return -ENOMEM;
	handle->inode_number = number;
	handle->open_flags = open_flags;
	handle->attr = *attr;
	handle->dirty = truncated_by != 0;
	handle->truncated_by = truncated_by;
	if (body_bytes) {
		rc = file_handle_reserve(handle, body_bytes);
		if (rc) {
			free(handle);
			return rc;
		}
		memcpy(handle->body, body, body_bytes);
	}
	handle->body_bytes = body_bytes;
	handle->attr.size = body_bytes;
	rc = pthread_mutex_init(&handle->lock, NULL);
	if (rc) {
		free(handle->body);
		free(handle);
		return -rc;
	}
	rc = pthread_mutex_init(&handle->flush_lock, NULL);
	if (rc) {
		pthread_mutex_destroy(&handle->lock);
		free(handle->body);
		free(handle);
		return -rc;
	}
	handle->link.is_directory = false;
	rc = inode_attach_handle(inodes, number, &handle->link);
	if (rc) {
		pthread_mutex_destroy(&handle->flush_lock);
		pthread_mutex_destroy(&handle->lock);
		free(handle->body);
		free(handle);
		return rc;
	}
	*out = handle;
	return 0;
}

void file_handle_discard(struct file_handle *handle, struct inode_table *inodes)
{
	inode_detach_handle(inodes, handle->inode_number, &handle->link);
	pthread_mutex_destroy(&handle->flush_lock);
	pthread_mutex_destroy(&handle->lock);
	free(handle->body);
	free(handle);
}

void file_handle_release(struct file_handle *handle, struct router *router,
			 struct inode_table *inodes)
{
	int rc = file_handle_flush(handle, router, inodes, 0);

	/* A failed handle told its writer already (write, flush, fsync). */
	if (rc && -rc != handle->failed_errno)
		log_error("last write of inode %llu at close failed: %s",
			  (unsigned long long)handle->inode_number, strerror(-rc));
	file_handle_discard(handle, inodes);
}

void file_handle_get_attr(struct file_handle *handle, struct item_attr *attr)
{
	pthread_mutex_lock(&handle->lock);
	*attr = handle->attr;
	pthread_mutex_unlock(&handle->lock);
}

int file_handle_read(struct file_handle *handle, uint64_t offset, size_t size,
		     int (*reply)(const void *data, size_t bytes, void *arg), void *arg)
{
	size_t bytes = 0;
	int rc;

	pthread_mutex_lock(&handle->lock);
	if (offset < handle->body_bytes) {
		bytes = handle->body_bytes - (size_t)offset;
		if (bytes > size)
			bytes = size;
	}
	rc = reply(bytes ? handle->body + offset : NULL, bytes, arg);
	pthread_mutex_unlock(&handle->lock);
	return rc;
}

int file_handle_write(struct file_handle *handle, int64_t offset, const void *data,
		      size_t size, uint64_t max_bytes)
{
	uint64_t start, end;
	int rc;

	if (offset < 0)
		return -EINVAL;
	pthread_mutex_lock(&handle->lock);
	if (handle->failed_errno) {
		rc = -handle->failed_errno;
		goto out;
	}
	start = (handle->open_flags & O_APPEND) ? handle->body_bytes : (uint64_t)offset;
	if (start > max_bytes || size > max_bytes - start || max_bytes > SIZE_MAX) {
		/* The item cannot hold this: fail the handle so close and
		 * fsync say so too, and never put a partial body. */
		handle->failed_errno = EFBIG;
		rc = -EFBIG;
		goto out;
	}
	end = start + size;
	if (end > handle->body_bytes) {
		rc = file_handle_resize(handle, (size_t)end);
		if (rc)
			goto out;
	}
	memcpy(handle->body + start, data, size);
	handle->attr.mtime_ns = clock_realtime_ns();
	handle->attr.ctime_ns = handle->attr.mtime_ns;
	handle->dirty = true;
	handle->change_count++;
	rc = 0;
out:
	pthread_mutex_unlock(&handle->lock);
	return rc;
}

int file_handle_flush(struct file_handle *handle, struct router *router,
		      struct inode_table *inodes, pid_t closed_by)
{
	struct router_table table;
	struct inode_name name;
	struct item_attr attr, stored;
	uint64_t change_count;
	int64_t asked_at_ms;
	void *body = NULL;
	size_t body_bytes;
	int rc;

	pthread_mutex_lock(&handle->flush_lock);
	pthread_mutex_lock(&handle->lock);
	if (handle->failed_errno || !handle->dirty ||
	    (closed_by > 0 && handle->truncated_by > 0 && closed_by != handle->truncated_by &&
	     handle->change_count == 0)) {
		rc = -handle->failed_errno;
		pthread_mutex_unlock(&handle->lock);
		goto out;
	}
	attr = handle->attr;
	body_bytes = handle->body_bytes;
	change_count = handle->change_count;
	if (body_bytes) {
		body = malloc(body_bytes);
		if (!body) {
			pthread_mutex_unlock(&handle->lock);
			rc = -ENOMEM;
			goto out;
		}
		memcpy(body, handle->body, body_bytes);
	}
	pthread_mutex_unlock(&handle->lock);

	rc = inode_get_name(inodes, handle->inode_number, &name);
	if (rc == 0 && name.unlinked) {
		/* Removed while open: a put would bring it back. */
		pthread_mutex_lock(&handle->lock);
		handle->dirty = false;
		pthread_mutex_unlock(&handle->lock);
		goto out;
	}
	if (rc == 0)
		rc = router_get_table(router, name.table, &table);
	asked_at_ms = clock_monotonic_ms();
	if (rc == 0)
		rc = router_put_item(router, &table, name.key, &attr, body, body_bytes, NULL, 0,
				     ROUTER_COND_NONE, 0, &stored);
	/* A stat after close needs no request. Max age 0: the reply to our
	 * own put replaces any answer asked before it or of a lower version. */
	if (rc == 0)
		inode_note_attr(inodes, handle->inode_number, &stored, asked_at_ms, 0);
	else
		inode_drop_attr(inodes, handle->inode_number);
	pthread_mutex_lock(&handle->lock);
	if (rc == 0 && change_count == handle->change_count)
		handle->dirty = false;
	/* A put that failed was reported to the caller (close, fsync): it must not be put
	 * again later (at release), behind the back of writes made since. */
	if (rc < 0)
		handle->failed_errno = -rc;
	pthread_mutex_unlock(&handle->lock);
out:
	pthread_mutex_unlock(&handle->flush_lock);
	free(body);
	return rc;
}

/* ------------------------------------------------ changes over all handles */

struct handle_change_visit {
	const struct handle_change *change;
	bool only_count;           /* first pass: look for a dirty handle */
	bool any_dirty;
	int rc;
	bool have_attr;
	struct item_attr attr;
};

static void handle_change_one(struct inode_link *link, void *arg)
{
	struct file_handle *handle = HANDLE_CONTAINER(link, struct file_handle, link);
	struct handle_change_visit *visit = arg;
	const struct handle_change *change = visit->change;
	int rc;

	pthread_mutex_lock(&handle->lock);
	if (visit->only_count) {
		visit->any_dirty |= handle->dirty;
		pthread_mutex_unlock(&handle->lock);
		return;
	}
	if (change->set_size) {
		rc = file_handle_resize(handle, (size_t)change->size);
		if (rc && !visit->rc)
			visit->rc = rc;
	}
	if (change->set_mode)
		handle->attr.mode = (handle->attr.mode & S_IFMT) | (change->mode & 07777);
	if (change->set_uid)
		handle->attr.uid = change->uid;
	if (change->set_gid)
		handle->attr.gid = change->gid;
	if (change->set_mtime)
		handle->attr.mtime_ns = change->mtime_ns;
	handle->attr.ctime_ns = change->ctime_ns;
	/* A put in flight started before this change: keep the handle dirty
	 * so the next put carries it. */
	handle->change_count++;
	if (handle->dirty && !visit->have_attr) {
		visit->attr = handle->attr;
		visit->have_attr = true;
	}
	pthread_mutex_unlock(&handle->lock);
}

int handle_apply_change(struct inode_table *inodes, uint64_t number,
			const struct handle_change *change, bool only_if_dirty,
			uint64_t max_bytes, bool *applied, struct item_attr *attr)
{
	struct handle_change_visit visit = { .change = change };

	*applied = false;
	if (change->set_size && (change->size > max_bytes || change->size > SIZE_MAX))
		return -EFBIG;
	if (only_if_dirty) {
		/* Two passes under the handle locks of one inode visit each;
		 * a handle turning dirty in between only means this change
		 * also goes to the store, which is harmless. */
		visit.only_count = true;
		inode_visit_handles(inodes, number, handle_change_one, &visit);
		if (!visit.any_dirty)
			return 0;
		visit.only_count = false;
	}
	inode_visit_handles(inodes, number, handle_change_one, &visit);
	if (visit.rc)
		return visit.rc;
	*applied = true;
	if (visit.have_attr)
		*attr = visit.attr;
	return 0;
}

struct handle_attr_visit {
	bool any_handle;
	bool found, found_dirty;
	struct item_attr attr;
};

static void handle_attr_one(struct inode_link *link, void *arg)
{
	struct file_handle *handle = HANDLE_CONTAINER(link, struct file_handle, link);
	struct handle_attr_visit *visit = arg;

	pthread_mutex_lock(&handle->lock);
	if (handle->dirty && !visit->found_dirty) {
		visit->attr = handle->attr;
		visit->found = visit->found_dirty = true;
	} else if (visit->any_handle && !visit->found) {
		visit->attr = handle->attr;
		visit->found = true;
	}
	pthread_mutex_unlock(&handle->lock);
}

bool handle_find_attr(struct inode_table *inodes, uint64_t number, bool any_handle,
		      struct item_attr *attr)
{
	struct handle_attr_visit visit = { .any_handle = any_handle };

	inode_visit_handles(inodes, number, handle_attr_one, &visit);
	if (visit.found)
		*attr = visit.attr;
	return visit.found;
}

/* ------------------------------------------------------------ directories */

enum dir_phase {
	DIR_PHASE_DOT,
	DIR_PHASE_DOTDOT,
	DIR_PHASE_LIST,
};

/* Where a listing continues: the phase, and in the list the index of the
 * next table (root) or the scan cursor (table). */
struct dir_position {
	enum dir_phase phase;
	size_t index;
	struct router_cursor cursor;
};

struct dir_mark {
	uint64_t offset;
	struct dir_position after;
};

struct dir_marks {
	struct dir_mark *marks;
	size_t count, capacity;
};

struct dir_handle {
	struct inode_link link;
	uint64_t inode_number;
	bool is_root;
	struct router_table table;
	char partition_key[KEY_NAME_MAX_BYTES + 1];   /* "": the whole table */
	pthread_mutex_t lock;      /* everything below; held across router calls,
				    * but only this handle's readers wait on it */
	uint64_t next_offset;      /* given to the next entry sent; starts at 1 */
	uint64_t last_offset;      /* of the last entry sent; 0: none */
	enum dir_phase phase;
	size_t table_index;        /* root: next table of the snapshot */
	struct router_table *tables;
	size_t table_count;
	bool tables_loaded;
	struct router_scan_entry *page;        /* table: the page being sent */
	size_t page_count, page_index;
	struct router_cursor page_next;        /* where the next page starts */
	struct dir_marks replies[2];           /* [1]: this reply, [0]: the one before */
};

int dir_handle_new(struct inode_table *inodes, uint64_t number, const struct router_table *table,
		   const char *partition_key, struct dir_handle **out)
{
	struct dir_handle *handle;
	int rc;

	if (partition_key && (!table || strlen(partition_key) > KEY_NAME_MAX_BYTES))
		return -EINVAL;
	handle = calloc(1, sizeof(*handle));
	if (!handle)
		return -ENOMEM;
	handle->inode_number = number;
	handle->is_root = table == NULL;
	if (partition_key)
		strcpy(handle->partition_key, partition_key);
	if (table) {
		handle->table = *table;
		handle->page = calloc(DIR_PAGE_ENTRIES, sizeof(*handle->page));
		if (!handle->page) {
			free(handle);
			return -ENOMEM;
		}
	}
	handle->next_offset = 1;
	handle->phase = DIR_PHASE_DOT;
	router_cursor_start(&handle->page_next);
	rc = pthread_mutex_init(&handle->lock, NULL);
	if (rc) {
		free(handle->page);
		free(handle);
		return -rc;
	}
	handle->link.is_directory = true;
	rc = inode_attach_handle(inodes, number, &handle->link);
	if (rc) {
		pthread_mutex_destroy(&handle->lock);
		free(handle->page);
		free(handle);
		return rc;
	}
	*out = handle;
	return 0;
}

void dir_handle_free(struct dir_handle *handle, struct inode_table *inodes)
{
	inode_detach_handle(inodes, handle->inode_number, &handle->link);
	pthread_mutex_destroy(&handle->lock);
	free(handle->replies[0].marks);
	free(handle->replies[1].marks);
	free(handle->tables);
	free(handle->page);
	free(handle);
}

static void dir_handle_move_to(struct dir_handle *handle, const struct dir_position *position)
{
	handle->phase = position->phase;
	handle->table_index = position->index;
	handle->page_next = position->cursor;
	handle->page_count = 0;
	handle->page_index = 0;
}

static const struct dir_mark *dir_handle_find_mark(const struct dir_handle *handle,
						   uint64_t offset)
{
	size_t r, i;

	for (r = 0; r < 2; r++) {
		const struct dir_marks *reply = &handle->replies[r];

		for (i = 0; i < reply->count; i++) {
			if (reply->marks[i].offset == offset)
				return &reply->marks[i];
		}
	}
	return NULL;
}

/* Positions the handle for a request at offset. */
static int dir_handle_seek(struct dir_handle *handle, struct router *router, uint64_t offset)
{
	const struct dir_mark *mark;
	struct dir_position start = { .phase = DIR_PHASE_DOT };
	struct dir_marks older;
	int rc;

	if (offset == 0) {
		router_cursor_start(&start.cursor);
		dir_handle_move_to(handle, &start);
		handle->replies[0].count = 0;
		handle->replies[1].count = 0;
		handle->last_offset = 0;
		if (handle->is_root) {
			/* A rewind sees the tables as they are now. */
			struct router_table *tables = NULL;
			size_t count = 0;

			rc = router_list_tables(router, &tables, &count);
			if (rc)
				return rc;
			free(handle->tables);
			handle->tables = tables;
			handle->table_count = count;
			handle->tables_loaded = true;
		}
	} else if (offset != handle->last_offset) {
		mark = dir_handle_find_mark(handle, offset);
		if (!mark) {
			log_warn("readdir of inode %llu at offset %llu, which this handle "
				 "did not give recently", (unsigned long long)handle->inode_number,
				 (unsigned long long)offset);
			return -EINVAL;
		}
		dir_handle_move_to(handle, &mark->after);
		handle->last_offset = offset;
	}
	if (handle->is_root && !handle->tables_loaded)
		return -EINVAL;
	/* The reply before last is forgotten; this reply starts empty. */
	older = handle->replies[0];
	handle->replies[0] = handle->replies[1];
	handle->replies[1] = older;
	handle->replies[1].count = 0;
	return 0;
}

/* The next entry, or *end. For a table this may fetch a page. */
static int dir_handle_peek(struct dir_handle *handle, struct router *router,
			   struct dir_entry *entry, struct dir_position *after, bool *end)
{
	size_t empty_pages = 0;

	*end = false;
	memset(after, 0, sizeof(*after));
	entry->offset = handle->next_offset;
	entry->table = NULL;
	entry->item = NULL;
	switch (handle->phase) {
	case DIR_PHASE_DOT:
		entry->type = DIR_ENTRY_DOT;
		entry->name = ".";
		after->phase = DIR_PHASE_DOTDOT;
		return 0;
	case DIR_PHASE_DOTDOT:
		entry->type = DIR_ENTRY_DOTDOT;
		entry->name = "..";
		after->phase = DIR_PHASE_LIST;
		router_cursor_start(&after->cursor);
		return 0;
	case DIR_PHASE_LIST:
		break;
	}
	after->phase = DIR_PHASE_LIST;
	if (handle->is_root) {
		if (handle->table_index >= handle->table_count) {
			*end = true;
			return 0;
		}
		entry->type = DIR_ENTRY_TABLE;
		entry->table = &handle->tables[handle->table_index];
		entry->name = entry->table->name;
		after->index = handle->table_index + 1;
		return 0;
	}
	while (handle->page_index >= handle->page_count) {
		struct router_cursor cursor = handle->page_next;
		size_t count = 0;
		int rc;

		if (cursor.done) {
			*end = true;
			return 0;
		}
		if (handle->partition_key[0])
			rc = router_query(router, &handle->table, handle->partition_key, &cursor,
					  handle->page, DIR_PAGE_ENTRIES, &count);
		else
			rc = router_scan(router, &handle->table, &cursor, handle->page,
					 DIR_PAGE_ENTRIES, &count);
		if (rc)
			return rc;
		if (count > DIR_PAGE_ENTRIES) {
			log_error("scan of table %s returned %zu entries for %d",
				  handle->table.name, count, DIR_PAGE_ENTRIES);
			return -EIO;
		}
		if (count == 0 && ++empty_pages > DIR_EMPTY_PAGES_MAX) {
			log_error("scan of table %s makes no progress", handle->table.name);
			return -EIO;
		}
		handle->page_next = cursor;
		handle->page_count = count;
		handle->page_index = 0;
	}
	entry->type = DIR_ENTRY_ITEM;
	entry->item = &handle->page[handle->page_index];
	entry->name = entry->item->key;
	after->cursor = entry->item->next;
	return 0;
}

static int dir_marks_reserve(struct dir_marks *reply)
{
	size_t capacity;
	struct dir_mark *marks;

	if (reply->count < reply->capacity)
		return 0;
	capacity = reply->capacity ? reply->capacity * 2 : 64;
	marks = realloc(reply->marks, capacity * sizeof(*marks));
	if (!marks)
		return -ENOMEM;
	reply->marks = marks;
	reply->capacity = capacity;
	return 0;
}

int dir_handle_fill(struct dir_handle *handle, struct router *router, uint64_t offset,
		    bool (*add)(const struct dir_entry *entry, void *arg), void *arg)
{
	struct dir_entry entry;
	struct dir_position after;
	struct dir_marks *reply;
	bool end = false;
	int rc;

	pthread_mutex_lock(&handle->lock);
	rc = dir_handle_seek(handle, router, offset);
	reply = &handle->replies[1];
	while (rc == 0) {
		rc = dir_handle_peek(handle, router, &entry, &after, &end);
		if (rc || end)
			break;
		rc = dir_marks_reserve(reply);
		if (rc || !add(&entry, arg))
			break;
		reply->marks[reply->count].offset = entry.offset;
		reply->marks[reply->count].after = after;
		reply->count++;
		handle->last_offset = entry.offset;
		handle->next_offset++;
		if (entry.type == DIR_ENTRY_ITEM)
			handle->page_index++;
		else if (entry.type == DIR_ENTRY_TABLE)
			handle->table_index++;
		else
			dir_handle_move_to(handle, &after);
	}
	pthread_mutex_unlock(&handle->lock);
	return rc;
}

/* ---------------------------------------------------------------- shutdown */

void handle_release_link(struct inode_link *link, void *arg)
{
	struct handle_shutdown *shutdown = arg;

	if (link->is_directory)
		dir_handle_free(HANDLE_CONTAINER(link, struct dir_handle, link), shutdown->inodes);
	else
		file_handle_release(HANDLE_CONTAINER(link, struct file_handle, link),
				    shutdown->router, shutdown->inodes);
}

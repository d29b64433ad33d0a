/* io.c: the POSIX implementation of the io seam (io.h). Loops on EINTR and
 * on short reads and writes so callers see all-or-error semantics. */
#include "cluster/io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int posix_file_open(void *ctx, const char *path, int flags)
{
	int os_flags = O_CLOEXEC;
	int fd;

	(void)ctx;
	if (flags & (IO_OPEN_WRITE | IO_OPEN_CREATE))
		os_flags |= O_RDWR;
	else
		os_flags |= O_RDONLY;
	if (flags & IO_OPEN_CREATE)
		os_flags |= O_CREAT;
	if ((flags & IO_OPEN_CREATE) && (flags & IO_OPEN_EXCL))
		os_flags |= O_EXCL;
	do {
		fd = open(path, os_flags, 0644);
	} while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

static ssize_t posix_file_pread(void *ctx, int file, void *buf, size_t size_bytes,
				uint64_t offset)
{
	size_t done = 0;

	(void)ctx;
	if (offset > (uint64_t)INT64_MAX)
		return -EINVAL;
	while (done < size_bytes) {
		ssize_t n = pread(file, (char *)buf + done, size_bytes - done,
				  (off_t)(offset + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int posix_file_pwrite(void *ctx, int file, const void *buf, size_t size_bytes,
			     uint64_t offset)
{
	size_t done = 0;

	(void)ctx;
	if (offset > (uint64_t)INT64_MAX)
		return -EINVAL;
	while (done < size_bytes) {
		ssize_t n = pwrite(file, (const char *)buf + done, size_bytes - done,
				   (off_t)(offset + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* pwrite of a positive count never returns 0 on a regular file;
		 * treat it as out of space rather than loop forever. */
		if (n == 0)
			return -ENOSPC;
		done += (size_t)n;
	}
	return 0;
}

static int posix_file_sync(void *ctx, int file)
{
	(void)ctx;
	/* A failed fsync is not retried: the kernel may have dropped the dirty
	 * pages already, so the caller must treat the data as lost. */
	while (fsync(file) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int posix_file_truncate(void *ctx, int file, uint64_t size_bytes)
{
	(void)ctx;
	if (size_bytes > (uint64_t)INT64_MAX)
		return -EINVAL;
	while (ftruncate(file, (off_t)size_bytes) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int posix_file_size(void *ctx, int file, uint64_t *size_bytes)
{
	struct stat st;

	(void)ctx;
	if (fstat(file, &st) < 0)
		return -errno;
	*size_bytes = (uint64_t)st.st_size;
	return 0;
}

static int posix_file_close(void *ctx, int file)
{
	(void)ctx;
	/* Never retry close on EINTR: on Linux the descriptor is gone. */
	if (close(file) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

static int posix_path_rename(void *ctx, const char *from_path, const char *to_path)
{
	(void)ctx;
	return rename(from_path, to_path) < 0 ? -errno : 0;
}

static int posix_path_unlink(void *ctx, const char *path)
{
	(void)ctx;
	return unlink(path) < 0 ? -errno : 0;
}

void io_names_free(char **names, size_t count)
{
	if (names == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

static int posix_dir_list(void *ctx, const char *dir_path, char ***names_out, size_t *count_out)
{
	char **names = NULL;
	size_t count = 0;
	size_t capacity = 0;
	struct dirent *entry;
	DIR *dir;
	int r = 0;

	(void)ctx;
	dir = opendir(dir_path);
	if (dir == NULL)
		return -errno;
	for (;;) {
		errno = 0;
		entry = readdir(dir);
		if (entry == NULL) {
			r = -errno;
			break;
		}
		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		if (count == capacity) {
			size_t new_capacity = capacity ? capacity * 2 : 16;
			char **grown = realloc(names, new_capacity * sizeof(*names));
			if (grown == NULL) {
				r = -ENOMEM;
				break;
			}
			names = grown;
			capacity = new_capacity;
		}
		names[count] = strdup(entry->d_name);
		if (names[count] == NULL) {
			r = -ENOMEM;
			break;
		}
		count++;
	}
	closedir(dir);
	if (r < 0) {
		io_names_free(names, count);
		return r;
	}
	*names_out = names;
	*count_out = count;
	return 0;
}

static int posix_dir_sync(void *ctx, const char *dir_path)
{
	int fd;
	int r = 0;

	(void)ctx;
	do {
		fd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -errno;
	while (fsync(fd) < 0) {
		if (errno != EINTR) {
			r = -errno;
			break;
		}
	}
	close(fd);
	return r;
}

static const struct io io_posix_impl = {
	.ctx = NULL,
	.file_open = posix_file_open,
	.file_pread = posix_file_pread,
	.file_pwrite = posix_file_pwrite,
	.file_sync = posix_file_sync,
	.file_truncate = posix_file_truncate,
	.file_size = posix_file_size,
	.file_close = posix_file_close,
	.path_rename = posix_path_rename,
	.path_unlink = posix_path_unlink,
	.dir_list = posix_dir_list,
	.dir_sync = posix_dir_sync,
};

const struct io *io_posix(void)
{
	return &io_posix_impl;
}

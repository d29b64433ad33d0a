/* io.h: the seam between the storage code and the disk. Everything the WAL
 * (and later the store) does to files goes through a struct io: io_posix()
 * is the real one; tests/sim/sim_disk.c is a simulated disk that can lose
 * unsynced writes, tear the last write and fail on demand, so crash recovery
 * is tested without real crashes.
 *
 * Contract of every implementation:
 * - Functions return 0 (or a count / a handle >= 0) on success and a
 *   negative errno on failure; EINTR never reaches the caller.
 * - A file handle is an int >= 0 returned by file_open, valid until
 *   file_close; handles are not shared between io implementations.
 * - file_pwrite writes all size_bytes or fails; file_pread returns the bytes
 *   read, fewer than asked only at end of file.
 * - Data is durable only after file_sync; a new name (create, rename,
 *   unlink) is durable only after dir_sync of its directory.
 * - Ownership: dir_list returns malloc'd names that the caller frees with
 *   io_names_free. */
#ifndef QUORUM_IO_H
#define QUORUM_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum io_open_flags {
	IO_OPEN_READ = 0,	/* read only */
	IO_OPEN_WRITE = 1,	/* read and write */
	IO_OPEN_CREATE = 2,	/* create when missing (implies IO_OPEN_WRITE) */
	IO_OPEN_EXCL = 4,	/* with IO_OPEN_CREATE: fail with -EEXIST if present */
};

struct io {
	void *ctx;
	/* Returns a handle >= 0 or a negative errno. */
	int (*file_open)(void *ctx, const char *path, int flags);
	ssize_t (*file_pread)(void *ctx, int file, void *buf, size_t size_bytes, uint64_t offset);
	int (*file_pwrite)(void *ctx, int file, const void *buf, size_t size_bytes,
			   uint64_t offset);
	int (*file_sync)(void *ctx, int file);
	int (*file_truncate)(void *ctx, int file, uint64_t size_bytes);
	int (*file_size)(void *ctx, int file, uint64_t *size_bytes);
	int (*file_close)(void *ctx, int file);
	int (*path_rename)(void *ctx, const char *from_path, const char *to_path);
	int (*path_unlink)(void *ctx, const char *path);
	/* Names in dir_path (without "." and ".."), in no particular order. */
	int (*dir_list)(void *ctx, const char *dir_path, char ***names, size_t *count);
	int (*dir_sync)(void *ctx, const char *dir_path);
};

/* The real disk. The returned struct is static and immutable. */
const struct io *io_posix(void);

void io_names_free(char **names, size_t count);

#endif

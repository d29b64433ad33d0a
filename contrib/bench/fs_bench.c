/* fs_bench.c: the small-file filesystem workload of issue 6, the same for a quorumfs mount
 * and for the filesystems it is compared with (a FUSE passthrough, GlusterFS, a local
 * directory). For each thread count it makes a fresh directory right under DIR (on
 * quorumfs: a table) and times, phase by phase, with the files split among the threads:
 *
 *   create      open(O_CREAT|O_EXCL), write the body, close
 *   stat        stat of every file (the size is checked)
 *   read        open, read the whole body, close (the content is checked)
 *   readdir     whole listings of the directory, names only (3 per thread)
 *   ls-l        whole listings plus an lstat of every entry, as `ls -l` does (3 per thread)
 *   overwrite   open(O_TRUNC), write a new body, close
 *   rename      rename to a new name in the same directory
 *   unlink      unlink every file
 *   rsync-in, rsync-out, rsync-in-again, rsync-out-again
 *               `rsync -a` of a local tree of as many files into a second fresh directory
 *               under DIR, out of it into a local directory, and both again on unchanged
 *               data (the second runs transfer nothing when mtimes are kept)
 *
 * and reports operations per second and p50/p99 latency of each, as a table and as JSON.
 * Before the first phase, a few files are written and removed untimed (a warm-up).
 * Files live directly in the directories it makes, never deeper, because a quorumfs table
 * holds files only. Everything it made is removed at the end. */
#define _GNU_SOURCE
#include "contrib/bench/bench_stats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FS_THREADS_MAX 256
#define FS_THREAD_COUNTS_MAX 8
#define FS_SIZE_MAX_BYTES (1024 * 1024)
#define FS_LISTINGS_PER_THREAD 3
#define FS_WARM_UP_FILES 32
/* Paths are made of DIR or the rsync side plus short names: keep them well under PATH_MAX. */
#define FS_DIR_MAX_BYTES 1024

struct fs_options {
	const char *dir;
	const char *tmp_dir;        /* the local side of the rsync phases */
	const char *json_path;      /* NULL, or "-" for JSON on stdout instead of the table */
	const char *label;
	int threads[FS_THREAD_COUNTS_MAX];
	int thread_count;
	int files;
	size_t size_bytes;
	bool fsync;
	bool rsync;
};

enum fs_phase_kind {
	FS_CREATE, FS_STAT, FS_READ, FS_READDIR, FS_LS_L, FS_OVERWRITE, FS_REREAD, FS_RENAME,
	FS_UNLINK, FS_PHASE_COUNT,
};

static const char *const fs_phase_names[FS_PHASE_COUNT] = {
	"create", "stat", "read", "readdir", "ls-l", "overwrite", "reread", "rename", "unlink",
};

struct fs_result {
	const char *phase;
	int threads;
	uint64_t ops;
	const char *unit;           /* "file" or "entry" */
	double seconds, rate, p50_ms, p99_ms, host_cpu_pct;
	uint64_t errors;
};

struct fs_run;

struct fs_worker {
	struct fs_run *run;
	int index;
	int64_t *latency_ns;        /* one per operation */
	size_t latency_count;
	uint64_t units, errors;
	char first_error[PATH_MAX + 256];
	char *buf;                  /* size_bytes + 1, for reads */
	pthread_t thread;
};

struct fs_run {
	const struct fs_options *options;
	const char *work_dir;
	int threads;
	enum fs_phase_kind kind;
	char *bodies[2];            /* generation 1 (create) and 2 (overwrite) templates */
};

static int64_t fs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The body of file i in a generation: the template with the file's number stamped at the
 * start, so a read that returns another file's bytes is caught. */
static void fs_body(const struct fs_run *run, int generation, int i, char *out)
{
	size_t size = run->options->size_bytes;
	char stamp[24];
	int n = snprintf(stamp, sizeof(stamp), "%d:%08d|", generation, i);

	memcpy(out, run->bodies[generation - 1], size);
	memcpy(out, stamp, (size_t)n < size ? (size_t)n : size);
}

/* Counts a failed operation and keeps the first one's story; returns -err. */
static int fs_worker_error(struct fs_worker *worker, const char *what, const char *path,
			   int err)
{
	if (!worker->errors++)
		snprintf(worker->first_error, sizeof(worker->first_error), "%s %s: %s", what,
			 path, strerror(err));
	return -err;
}

static int fs_write_all(int fd, const char *data, size_t size)
{
	while (size) {
		ssize_t n = write(fd, data, size);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		size -= (size_t)n;
	}
	return 0;
}

/* Writes a whole file; the close counts, since a network filesystem reports there. */
static int fs_write_file(const struct fs_run *run, const char *path, int flags, const char *body)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0644), err;

	if (fd < 0)
		return -errno;
	err = fs_write_all(fd, body, run->options->size_bytes);
	if (!err && run->options->fsync && fsync(fd) != 0)
		err = -errno;
	if (close(fd) != 0 && !err)
		err = -errno;
	return err;
}

static int fs_read_file(const struct fs_run *run, const char *path, char *buf, size_t *got)
{
	size_t capacity = run->options->size_bytes + 1;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	*got = 0;
	while (*got < capacity) {
		ssize_t n = read(fd, buf + *got, capacity - *got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	close(fd);
	return err;
}

/* One whole listing; with lstat of every entry for ls -l. Entries counted, . and .. not. */
static int fs_list(const char *dir, bool with_stat, uint64_t *entries)
{
	DIR *d = opendir(dir);
	struct dirent *entry;
	int fd, err = 0;

	if (!d)
		return -errno;
	fd = dirfd(d);
	errno = 0;
	while ((entry = readdir(d))) {
		struct stat st;

		if (entry->d_name[0] == '.' && (!entry->d_name[1] ||
		    (entry->d_name[1] == '.' && !entry->d_name[2])))
			continue;
		if (with_stat && fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			err = -errno;
			break;
		}
		(*entries)++;
	}
	if (!err && errno)
		err = -errno;
	closedir(d);
	return err;
}

/* One operation of the phase on file i (or listing i): 0, or -errno once counted. */
static int fs_worker_op(struct fs_worker *worker, int i)
{
	const struct fs_run *run = worker->run;
	size_t size = run->options->size_bytes, got;
	char path[PATH_MAX], target[PATH_MAX], expect_buf[64];
	uint64_t entries = 0;
	struct stat st;
	int err = 0;

	snprintf(path, sizeof(path), "%s/f%06d", run->work_dir, i);
	switch (run->kind) {
	case FS_CREATE:
	case FS_OVERWRITE:
		fs_body(run, run->kind == FS_CREATE ? 1 : 2, i, worker->buf);
		err = fs_write_file(run, path, run->kind == FS_CREATE ? O_CREAT | O_EXCL : O_TRUNC,
				    worker->buf);
		if (err)
			return fs_worker_error(worker, fs_phase_names[run->kind], path, -err);
		break;
	case FS_STAT:
		if (stat(path, &st) != 0)
			return fs_worker_error(worker, "stat", path, errno);
		if ((size_t)st.st_size != size)
			return fs_worker_error(worker, "stat (size differs)", path, EBADMSG);
		break;
	case FS_READ:
	case FS_REREAD:
		err = fs_read_file(run, path, worker->buf, &got);
		if (err)
			return fs_worker_error(worker, "read", path, -err);
		/* Compare with what was written: the stamp, then the template. */
		{
			int generation = run->kind == FS_READ ? 1 : 2;
			int n = snprintf(expect_buf, sizeof(expect_buf), "%d:%08d|", generation, i);
			size_t stamp = (size_t)n < size ? (size_t)n : size;

			if (got != size || memcmp(worker->buf, expect_buf, stamp) != 0 ||
			    memcmp(worker->buf + stamp, run->bodies[generation - 1] + stamp,
				   size - stamp) != 0)
				return fs_worker_error(worker, "read (content differs)", path,
						       EBADMSG);
		}
		break;
	case FS_READDIR:
	case FS_LS_L:
		err = fs_list(run->work_dir, run->kind == FS_LS_L, &entries);
		if (err)
			return fs_worker_error(worker, fs_phase_names[run->kind], run->work_dir, -err);
		if (entries != (uint64_t)run->options->files)
			return fs_worker_error(worker, "readdir (entries missing)", run->work_dir,
					       EBADMSG);
		worker->units += entries;
		return 0;
	case FS_RENAME:
		snprintf(target, sizeof(target), "%s/r%06d", run->work_dir, i);
		if (rename(path, target) != 0)
			return fs_worker_error(worker, "rename", path, errno);
		break;
	case FS_UNLINK:
		snprintf(path, sizeof(path), "%s/r%06d", run->work_dir, i);
		if (unlink(path) != 0)
			return fs_worker_error(worker, "unlink", path, errno);
		break;
	case FS_PHASE_COUNT:
		break;
	}
	worker->units++;
	return 0;
}

static void *fs_worker_run(void *arg)
{
	struct fs_worker *worker = arg;
	const struct fs_run *run = worker->run;
	bool listing = run->kind == FS_READDIR || run->kind == FS_LS_L;
	int count = listing ? FS_LISTINGS_PER_THREAD : run->options->files;
	int stride = listing ? 1 : run->threads;

	for (int i = listing ? 0 : worker->index; i < count; i += stride) {
		int64_t start_ns = fs_now_ns();

		fs_worker_op(worker, i);
		worker->latency_ns[worker->latency_count++] = fs_now_ns() - start_ns;
	}
	return NULL;
}

/* ----------------------------------------------------------- figures */

static void fs_result_fill(struct fs_result *r, int64_t *latency_ns, size_t count,
			   int64_t elapsed_ns, unsigned long long busy0,
			   unsigned long long total0)
{
	unsigned long long busy1, total1;

	bench_host_cpu(&busy1, &total1);
	bench_sort_ns(latency_ns, count);
	r->seconds = (double)elapsed_ns / 1e9;
	r->rate = r->seconds > 0 ? (double)r->ops / r->seconds : 0;
	r->p50_ms = bench_percentile_ms(latency_ns, count, 0.50);
	r->p99_ms = bench_percentile_ms(latency_ns, count, 0.99);
	r->host_cpu_pct = total1 > total0 ? 100.0 * (double)(busy1 - busy0) /
					    (double)(total1 - total0) : 0;
}

/* Runs one phase over every file with run->threads threads. */
static int fs_phase(struct fs_run *run, enum fs_phase_kind kind, struct fs_result *r)
{
	struct fs_worker *workers;
	unsigned long long busy0, total0;
	int64_t *merged = NULL, start_ns, elapsed_ns;
	size_t per_thread, total = 0;
	int started = 0, err = 0;

	run->kind = kind;
	per_thread = kind == FS_READDIR || kind == FS_LS_L ? FS_LISTINGS_PER_THREAD :
		     (size_t)run->options->files / (size_t)run->threads + 1;
	workers = calloc((size_t)run->threads, sizeof(*workers));
	if (!workers)
		return -ENOMEM;
	for (int t = 0; t < run->threads; t++) {
		workers[t].run = run;
		workers[t].index = t;
		workers[t].latency_ns = malloc(per_thread * sizeof(int64_t));
		workers[t].buf = malloc(run->options->size_bytes + 1);
		if (!workers[t].latency_ns || !workers[t].buf) {
			err = -ENOMEM;
			goto out;
		}
	}
	bench_host_cpu(&busy0, &total0);
	start_ns = fs_now_ns();
	for (; started < run->threads; started++) {
		err = -pthread_create(&workers[started].thread, NULL, fs_worker_run,
				      &workers[started]);
		if (err)
			break;
	}
	for (int t = 0; t < started; t++)
		pthread_join(workers[t].thread, NULL);
	elapsed_ns = fs_now_ns() - start_ns;
	if (err)
		goto out;

	*r = (struct fs_result){ .phase = fs_phase_names[kind], .threads = run->threads,
				 .unit = kind == FS_READDIR || kind == FS_LS_L ? "entry" : "file" };
	for (int t = 0; t < run->threads; t++)
		total += workers[t].latency_count;
	merged = malloc((total ? total : 1) * sizeof(*merged));
	if (!merged) {
		err = -ENOMEM;
		goto out;
	}
	total = 0;
	for (int t = 0; t < run->threads; t++) {
		struct fs_worker *w = &workers[t];

		memcpy(merged + total, w->latency_ns, w->latency_count * sizeof(*merged));
		total += w->latency_count;
		r->ops += w->units;
		r->errors += w->errors;
		if (w->errors)
			fprintf(stderr, "fs_bench: %s, thread %d: %" PRIu64 " error(s), first: %s\n",
				r->phase, t, w->errors, w->first_error);
	}
	fs_result_fill(r, merged, total, elapsed_ns, busy0, total0);
out:
	for (int t = 0; t < run->threads; t++) {
		free(workers[t].latency_ns);
		free(workers[t].buf);
	}
	free(workers);
	free(merged);
	return err;
}

/* ------------------------------------------------------------- rsync */

/* rsync -a SRC/ DST/, quietly; 0 or -EIO (its exit status is printed). */
static int fs_rsync(const char *src, const char *dst)
{
	char from[PATH_MAX + 16], to[PATH_MAX + 16];
	int status;
	pid_t pid;

	snprintf(from, sizeof(from), "%s/", src);
	snprintf(to, sizeof(to), "%s/", dst);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execlp("rsync", "rsync", "-a", from, to, (char *)NULL);
		fprintf(stderr, "fs_bench: cannot run rsync: %s\n", strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "fs_bench: rsync -a %s %s failed (status %d)\n", from, to, status);
		return -EIO;
	}
	return 0;
}

static void fs_rsync_phase(const struct fs_run *run, const char *name, const char *src,
			   const char *dst, struct fs_result *r)
{
	unsigned long long busy0, total0;
	int64_t start_ns, elapsed_ns;
	int err;

	bench_host_cpu(&busy0, &total0);
	start_ns = fs_now_ns();
	err = fs_rsync(src, dst);
	elapsed_ns = fs_now_ns() - start_ns;
	*r = (struct fs_result){ .phase = name, .threads = run->threads, .unit = "file",
				 .ops = (uint64_t)run->options->files, .errors = err ? 1 : 0 };
	/* One rsync process: its latency is the whole run. */
	fs_result_fill(r, &elapsed_ns, 1, elapsed_ns, busy0, total0);
}

static int fs_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void fs_remove_tree(const char *path)
{
	if (path && path[0])
		nftw(path, fs_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The four rsync phases: a local tree in, out to a local directory, both again. */
static int fs_rsync_phases(struct fs_run *run, struct fs_result *results, int *count)
{
	const struct fs_options *options = run->options;
	char local[PATH_MAX], src[PATH_MAX + 8], out[PATH_MAX + 8], inside[PATH_MAX];
	static const char *const names[] = { "rsync-in", "rsync-out", "rsync-in-again",
					     "rsync-out-again" };
	char *body = malloc(options->size_bytes + 1);
	char *copy = malloc(options->size_bytes + 1);
	int err = 0;

	snprintf(local, sizeof(local), "%s/fs_bench-rsync.XXXXXX", options->tmp_dir);
	snprintf(inside, sizeof(inside), "%s/fsbench-rsync-XXXXXX", options->dir);
	if (!body || !copy) {
		free(body);
		free(copy);
		return -ENOMEM;
	}
	if (!mkdtemp(local)) {
		err = -errno;
		fprintf(stderr, "fs_bench: mkdtemp %s: %s\n", local, strerror(errno));
		free(body);
		free(copy);
		return err;
	}
	if (!mkdtemp(inside)) {
		err = -errno;
		fprintf(stderr, "fs_bench: mkdtemp %s: %s\n", inside, strerror(errno));
		inside[0] = '\0';
		goto out;
	}
	snprintf(src, sizeof(src), "%s/src", local);
	snprintf(out, sizeof(out), "%s/out", local);
	if (mkdir(src, 0755) != 0 || mkdir(out, 0755) != 0) {
		err = -errno;
		goto out;
	}
	for (int i = 0; i < options->files && !err; i++) {
		char path[PATH_MAX + 32];

		snprintf(path, sizeof(path), "%s/f%06d", src, i);
		fs_body(run, 1, i, body);
		err = fs_write_file(run, path, O_CREAT | O_TRUNC, body);
	}
	if (err) {
		fprintf(stderr, "fs_bench: local tree in %s: %s\n", src, strerror(-err));
		goto out;
	}
	for (int i = 0; i < 4; i++) {
		bool in = i % 2 == 0;

		fs_rsync_phase(run, names[i], in ? src : inside, in ? inside : out,
			       &results[(*count)++]);
	}
	/* The round trip must bring back every byte. */
	for (int i = 0; i < options->files; i++) {
		char path[PATH_MAX + 32];
		size_t got;

		snprintf(path, sizeof(path), "%s/f%06d", out, i);
		fs_body(run, 1, i, body);
		if (fs_read_file(run, path, copy, &got) != 0 || got != options->size_bytes ||
		    memcmp(copy, body, got) != 0) {
			fprintf(stderr, "fs_bench: rsync round trip: %s missing or differs\n", path);
			results[*count - 1].errors++;
			break;
		}
	}
out:
	fs_remove_tree(inside);
	fs_remove_tree(local);
	free(body);
	free(copy);
	return err;
}

/* ------------------------------------------------------------- output */

static void fs_print_header(const struct fs_options *options, const char *fs_type)
{
	printf("# fs_bench: %s, %s (%s): %d files of %zu bytes%s\n", options->label, options->dir,
	       fs_type, options->files, options->size_bytes, options->fsync ? ", fsync" : "");
	printf("%-16s %7s %7s %-6s %9s %11s %9s %9s %6s %6s\n", "phase", "threads", "ops",
	       "unit", "seconds", "rate/s", "p50 ms", "p99 ms", "host%", "errors");
}

static void fs_print_row(const struct fs_result *r)
{
	printf("%-16s %7d %7" PRIu64 " %-6s %9.3f %11.1f %9.3f %9.3f %6.0f %6" PRIu64 "\n",
	       r->phase, r->threads, r->ops, r->unit, r->seconds, r->rate, r->p50_ms, r->p99_ms,
	       r->host_cpu_pct, r->errors);
	fflush(stdout);
}

static int fs_write_json(const struct fs_options *options, const char *fs_type,
			 const char *started_at, double loadavg_1m, bool complete,
			 const struct fs_result *results, int count)
{
	char host[256] = "?";
	json_t *root, *list = json_array();
	int err = 0;

	gethostname(host, sizeof(host) - 1);
	root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:f, s:i, s:i, s:b}",
			 "tool", "fs_bench", "system", options->label, "dir", options->dir,
			 "fs_type", fs_type, "time", started_at, "host", host,
			 "cpus", (int)sysconf(_SC_NPROCESSORS_ONLN), "loadavg_1m_at_start",
			 loadavg_1m, "files", options->files, "size", (int)options->size_bytes,
			 "fsync", options->fsync);
	if (!root || !list || json_object_set_new(root, "complete", json_boolean(complete)))
		goto nomem;
	for (int i = 0; i < count; i++) {
		const struct fs_result *r = &results[i];
		json_t *one = json_pack("{s:s, s:i, s:I, s:s, s:f, s:f, s:f, s:f, s:f, s:I}",
					"phase", r->phase, "threads", r->threads,
					"ops", (json_int_t)r->ops, "unit", r->unit,
					"seconds", r->seconds, "rate", r->rate,
					"p50_ms", r->p50_ms, "p99_ms", r->p99_ms,
					"host_cpu_pct", r->host_cpu_pct,
					"errors", (json_int_t)r->errors);

		if (!one || json_array_append_new(list, one))
			goto nomem;
	}
	if (json_object_set(root, "results", list))
		goto nomem;
	if (strcmp(options->json_path, "-") == 0) {
		if (json_dumpf(root, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(7)) || fputc('\n', stdout) == EOF)
			err = -EIO;
	} else if (json_dump_file(root, options->json_path, JSON_INDENT(1) | JSON_REAL_PRECISION(7))) {
		fprintf(stderr, "fs_bench: cannot write %s\n", options->json_path);
		err = -EIO;
	}
	json_decref(list);
	json_decref(root);
	return err;
nomem:
	json_decref(list);
	json_decref(root);
	return -ENOMEM;
}

/* The type of the filesystem that holds dir, from /proc/self/mountinfo (longest prefix). */
static void fs_type_of(const char *dir, char *out, size_t size)
{
	char real[PATH_MAX], line[4096], best[PATH_MAX] = "";
	FILE *f;

	snprintf(out, size, "?");
	if (!realpath(dir, real))
		return;
	f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], type[128], *dash = strstr(line, " - ");
		size_t n;

		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(dash + 3, "%127s", type) != 1)
			continue;
		n = strlen(mnt);
		if (strncmp(real, mnt, n) == 0 && (real[n] == '/' || real[n] == '\0' ||
		    strcmp(mnt, "/") == 0) && n >= strlen(best)) {
			snprintf(best, sizeof(best), "%s", mnt);
			snprintf(out, size, "%s", type);
		}
	}
	fclose(f);
}

/* ------------------------------------------------------------- main */

static void fs_usage(FILE *out)
{
	fprintf(out,
"usage: fs_bench [OPTIONS] DIR\n"
"Small-file workload in fresh directories right under DIR (on a quorumfs mount: tables):\n"
"create, stat, read, readdir, ls -l, overwrite, reread, rename, unlink, then rsync -a in,\n"
"out, and both again; operations per second and p50/p99 per phase.\n"
"  -t, --threads LIST   thread counts, comma-separated (default 1,8; max %d)\n"
"  -n, --files N        files per run (default 2000)\n"
"  -s, --size BYTES     file size (default 1024)\n"
"      --fsync          fsync each file before close in create and overwrite\n"
"      --no-rsync       skip the rsync phases\n"
"      --tmp DIR        the local side of rsync (default $TMPDIR or /var/tmp)\n"
"  -j, --json FILE      also write JSON to FILE; '-': JSON on stdout only\n"
"  -l, --label NAME     the \"system\" field of the JSON (default: the filesystem type)\n"
"  -h, --help\n", FS_THREADS_MAX);
}

static int fs_parse(int argc, char **argv, struct fs_options *options)
{
	enum { OPT_FSYNC = 256, OPT_NO_RSYNC, OPT_TMP };
	static const struct option longs[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "files", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "fsync", no_argument, NULL, OPT_FSYNC },
		{ "no-rsync", no_argument, NULL, OPT_NO_RSYNC },
		{ "tmp", required_argument, NULL, OPT_TMP },
		{ "json", required_argument, NULL, 'j' },
		{ "label", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *tmp = getenv("TMPDIR");
	char *end, *copy, *saveptr = NULL;
	int opt;
	long n;

	*options = (struct fs_options){ .threads = { 1, 8 }, .thread_count = 2, .files = 2000,
					.size_bytes = 1024, .rsync = true,
					.tmp_dir = tmp && *tmp ? tmp : "/var/tmp" };
	while ((opt = getopt_long(argc, argv, "t:n:s:j:l:h", longs, NULL)) != -1) {
		switch (opt) {
		case 't':
			copy = strdup(optarg);
			if (!copy)
				return 2;
			options->thread_count = 0;
			saveptr = NULL;
			for (char *item = strtok_r(copy, ",", &saveptr); item;
			     item = strtok_r(NULL, ",", &saveptr)) {
				n = strtol(item, &end, 10);
				if (*end || n < 1 || n > FS_THREADS_MAX ||
				    options->thread_count == FS_THREAD_COUNTS_MAX) {
					free(copy);
					goto bad;
				}
				options->threads[options->thread_count++] = (int)n;
			}
			free(copy);
			if (!options->thread_count)
				goto bad;
			break;
		case 'n':
			n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 999999)
				goto bad;
			options->files = (int)n;
			break;
		case 's':
			n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > FS_SIZE_MAX_BYTES)
				goto bad;
			options->size_bytes = (size_t)n;
			break;
		case OPT_FSYNC: options->fsync = true; break;
		case OPT_NO_RSYNC: options->rsync = false; break;
		case OPT_TMP: options->tmp_dir = optarg; break;
		case 'j': options->json_path = optarg; break;
		case 'l': options->label = optarg; break;
		case 'h': fs_usage(stdout); return 1;
		default: fs_usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc)
		goto bad;
	options->dir = argv[optind];
	if (strlen(options->dir) > FS_DIR_MAX_BYTES || strlen(options->tmp_dir) > FS_DIR_MAX_BYTES) {
		fprintf(stderr, "fs_bench: DIR and --tmp must be at most %d bytes\n",
			FS_DIR_MAX_BYTES);
		return 2;
	}
	return 0;
bad:
	fprintf(stderr, "fs_bench: bad arguments\n");
	fs_usage(stderr);
	return 2;
}

/* Writes and removes a few files before the clock starts: on quorumfs a fresh table's
 * partitions elect their leaders on first use, which is not what create measures. 32
 * names reach each of a new table's 4 partitions but for a chance of 1 in 2,500. */
static int fs_warm_up(const struct fs_run *run)
{
	char path[PATH_MAX + 16];
	int err = 0;

	for (int i = 0; i < FS_WARM_UP_FILES && !err; i++) {
		snprintf(path, sizeof(path), "%s/w%03d", run->work_dir, i);
		err = fs_write_file(run, path, O_CREAT | O_TRUNC, run->bodies[0]);
		if (!err && unlink(path) != 0)
			err = -errno;
	}
	if (err)
		fprintf(stderr, "fs_bench: warm-up in %s: %s\n", run->work_dir, strerror(-err));
	return err;
}

/* One whole run of the phases with one thread count, in a fresh directory under DIR. */
static int fs_run_threads(struct fs_run *run, int threads, struct fs_result *results,
			  int *count, bool print)
{
	char work[PATH_MAX];
	int err = 0, first = *count;

	snprintf(work, sizeof(work), "%s/fsbench-%dt-XXXXXX", run->options->dir, threads);
	if (!mkdtemp(work)) {
		fprintf(stderr, "fs_bench: cannot make a directory in %s: %s\n", run->options->dir,
			strerror(errno));
		return -errno;
	}
	run->work_dir = work;
	run->threads = threads;
	err = fs_warm_up(run);
	for (int kind = 0; kind < FS_PHASE_COUNT && !err; kind++) {
		err = fs_phase(run, (enum fs_phase_kind)kind, &results[*count]);
		if (!err)
			(*count)++;
	}
	if (!err && run->options->rsync)
		err = fs_rsync_phases(run, results, count);
	if (print)
		for (int i = first; i < *count; i++)
			fs_print_row(&results[i]);
	/* Leftovers of a failed phase, then the directory itself. */
	fs_remove_tree(work);
	return err;
}

int main(int argc, char **argv)
{
	struct fs_result results[FS_THREAD_COUNTS_MAX * (FS_PHASE_COUNT + 4)];
	char fs_type[128], started_at[32] = "?";
	struct fs_options options;
	struct fs_run run = { 0 };
	double loadavg[1] = { -1 };
	time_t now = time(NULL);
	struct tm tm;
	int count = 0, err;
	bool print;

	err = fs_parse(argc, argv, &options);
	if (err)
		return err == 1 ? 0 : 2;
	fs_type_of(options.dir, fs_type, sizeof(fs_type));
	if (!options.label)
		options.label = fs_type;
	if (gmtime_r(&now, &tm))
		strftime(started_at, sizeof(started_at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (getloadavg(loadavg, 1) < 1)
		loadavg[0] = -1;
	run.options = &options;
	for (int g = 0; g < 2; g++) {
		run.bodies[g] = malloc(options.size_bytes);
		if (!run.bodies[g]) {
			fprintf(stderr, "fs_bench: out of memory\n");
			free(run.bodies[0]);
			return 1;
		}
		for (size_t i = 0; i < options.size_bytes; i++)
			run.bodies[g][i] = (char)('a' + (i * (g + 3) + g) % 26);
	}
	print = !options.json_path || strcmp(options.json_path, "-") != 0;
	if (print)
		fs_print_header(&options, fs_type);
	for (int i = 0; i < options.thread_count && !err; i++)
		err = fs_run_threads(&run, options.threads[i], results, &count, print);
	/* The phases that ran are worth keeping when a later one failed: "complete" says. */
	if (options.json_path && (!err || count > 0)) {
		int json_err = fs_write_json(&options, fs_type, started_at, loadavg[0], !err,
					     results, count);

		if (!err)
			err = json_err;
	}
	for (int i = 0; i < count && !err; i++)
		if (results[i].errors)
			err = -EIO;
	free(run.bodies[0]);
	free(run.bodies[1]);
	return err ? 1 : 0;
}

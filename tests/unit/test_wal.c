/* test_wal.c: the write-ahead log over the simulated disk (crashes, torn
 * writes, lost directory entries, injected I/O errors, corruption) and once
 * over the real disk: every record wal_sync returned for survives a crash,
 * nothing after a gap is served, damage is refused rather than dropped, and
 * concurrent syncs share fsyncs. */
#include "cluster/io.h"
#include "cluster/wal.h"
#include "tests/sim/sim_disk.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define DIR_PATH "/data/wal"
#define MODEL_RECORDS_MAX 4096
#define TORN_SEEDS 1000

/* The payload of a record, derived from (tag, index) so a test can tell the
 * record it wrote from any other with the same index. */
static size_t payload_make(uint64_t tag, uint64_t index, uint8_t *buf, size_t size_max)
{
	uint64_t state = tag * 0x100000001b3ull ^ index;
	size_t size_bytes = (size_t)(sim_random_next(&state) % (size_max + 1));

	for (size_t i = 0; i < size_bytes; i++)
		buf[i] = (uint8_t)sim_random_next(&state);
	return size_bytes;
}

static void assert_record(struct wal *wal, uint64_t index, uint64_t tag, size_t size_max)
{
	uint8_t expected[4096];
	size_t expected_bytes = payload_make(tag, index, expected, size_max);
	void *payload = NULL;
	size_t size_bytes = 0;

	assert_int_equal(wal_read(wal, index, &payload, &size_bytes), 0);
	assert_int_equal(size_bytes, expected_bytes);
	if (size_bytes > 0)
		assert_memory_equal(payload, expected, size_bytes);
	free(payload);
}

static uint64_t append_tagged(struct wal *wal, uint64_t tag, uint64_t expect_index,
			      size_t size_max)
{
	uint8_t buf[4096];
	uint64_t index = 0;
	size_t size_bytes = payload_make(tag, expect_index, buf, size_max);

	assert_int_equal(wal_append(wal, buf, size_bytes, &index), 0);
	assert_int_equal(index, expect_index);
	return index;
}

static struct wal *open_sim(struct sim_disk *disk, uint64_t segment_size_bytes)
{
	struct wal_options options;
	struct wal *wal = NULL;

	wal_options_init(&options);
	if (segment_size_bytes > 0)
		options.segment_size_bytes = segment_size_bytes;
	assert_int_equal(wal_open(sim_disk_io(disk), DIR_PATH, &options, &wal), 0);
	return wal;
}

static size_t count_segments(const struct io *io, const char *dir_path)
{
	char **names = NULL;
	size_t count = 0;
	size_t segments = 0;

	assert_int_equal(io->dir_list(io->ctx, dir_path, &names, &count), 0);
	for (size_t i = 0; i < count; i++)
		segments += strncmp(names[i], "wal-", 4) == 0;
	io_names_free(names, count);
	return segments;
}

static void test_round_trip(void **state)
{
	struct sim_disk *disk;
	struct wal *wal;
	uint8_t byte = 7;
	uint64_t index;

	(void)state;
	assert_int_equal(sim_disk_create(1, &disk), 0);
	wal = open_sim(disk, 0);
	assert_int_equal(wal_first_index(wal), 1);
	assert_int_equal(wal_last_index(wal), 0);
	for (uint64_t i = 1; i <= 100; i++)
		append_tagged(wal, 1, i, 3000);
	assert_int_equal(wal_last_index(wal), 100);
	for (uint64_t i = 1; i <= 100; i++)
		assert_record(wal, i, 1, 3000);	/* readable before it is durable */
	assert_int_equal(wal_sync(wal, 100), 0);
	assert_int_equal(wal_durable_index(wal), 100);
	assert_int_equal(wal_sync(wal, 101), -ENOENT);
	/* Bounds: oversized payloads and missing indexes are refused. */
	assert_int_equal(wal_append(wal, &byte, (size_t)WAL_PAYLOAD_BYTES_MAX + 1, &index),
			 -EMSGSIZE);
	void *payload;
	size_t size_bytes;
	assert_int_equal(wal_read(wal, 0, &payload, &size_bytes), -ENOENT);
	assert_int_equal(wal_read(wal, 101, &payload, &size_bytes), -ENOENT);
	wal_close(wal);

	wal = open_sim(disk, 0);
	assert_int_equal(wal_first_index(wal), 1);
	assert_int_equal(wal_last_index(wal), 100);
	assert_int_equal(wal_durable_index(wal), 100);
	struct wal_iter iter;
	uint64_t expect = 50;
	wal_iter_init(&iter, wal, 50);
	while (wal_iter_next(&iter, &index, &payload, &size_bytes) == 1) {
		assert_int_equal(index, expect);
		free(payload);
		assert_record(wal, index, 1, 3000);
		expect++;
	}
	assert_int_equal(expect, 101);
	/* An empty payload is a record too. */
	assert_int_equal(wal_append(wal, NULL, 0, &index), 0);
	assert_int_equal(index, 101);
	assert_int_equal(wal_sync(wal, 101), 0);
	wal_close(wal);
	wal = open_sim(disk, 0);
	assert_int_equal(wal_read(wal, 101, &payload, &size_bytes), 0);
	assert_null(payload);
	assert_int_equal(size_bytes, 0);
	wal_close(wal);
	sim_disk_destroy(disk);
}

/* One seed: rounds of random appends and syncs, each ended by a crash, with
 * a model of which round wrote each index. After every reopen the log must
 * hold every acknowledged record, and every record it holds must be the one
 * last written at that index: a torn or lost record is cut with all after
 * it, never served. */
static void run_torn_seed(uint64_t seed)
{
	static uint64_t round_of[MODEL_RECORDS_MAX];
	struct sim_disk *disk;
	uint64_t random_state = seed ^ 0xabcdef;
	uint64_t acked = 0;
	struct wal *wal;

	assert_int_equal(sim_disk_create(seed, &disk), 0);
	for (uint64_t round = 1; round <= 4; round++) {
		wal = open_sim(disk, 1024 + sim_random_next(&random_state) % 2048);
		uint64_t last = wal_last_index(wal);
		if (last < acked)
			fail_msg("seed %" PRIu64 ": acknowledged %" PRIu64 " but recovered %"
				 PRIu64, seed, acked, last);
		for (uint64_t i = 1; i <= last; i++)
			assert_record(wal, i, seed * 100 + round_of[i], 700);
		acked = last;	/* recovery syncs what it kept */

		uint64_t appends = 1 + sim_random_next(&random_state) % 40;
		for (uint64_t n = 0; n < appends && last + 1 < MODEL_RECORDS_MAX; n++) {
			last = append_tagged(wal, seed * 100 + round, last + 1, 700);
			round_of[last] = round;
			if (sim_random_next(&random_state) % 4 == 0) {
				assert_int_equal(wal_sync(wal, last), 0);
				acked = last;
			}
		}
		sim_disk_crash(disk);
		wal_close(wal);
	}
	wal = open_sim(disk, 4096);
	assert_true(wal_last_index(wal) >= acked);
	for (uint64_t i = 1; i <= wal_last_index(wal); i++)
		assert_record(wal, i, seed * 100 + round_of[i], 700);
	wal_close(wal);
	sim_disk_destroy(disk);
}

/* A process that dies leaves its unsynced records in the page cache; the
 * next open reports them, so it must make them durable before a power cut
 * can take them away. */
static void test_open_makes_recovered_records_durable(void **state)
{
	struct sim_disk *disk;
	struct wal *wal;

	(void)state;
	assert_int_equal(sim_disk_create(15, &disk), 0);
	wal = open_sim(disk, 0);
	for (uint64_t i = 1; i <= 20; i++)
		append_tagged(wal, 15, i, 200);
	wal_close(wal);	/* the process dies; the machine does not */
	wal = open_sim(disk, 0);
	assert_int_equal(wal_last_index(wal), 20);
	assert_int_equal(wal_durable_index(wal), 20);
	sim_disk_crash(disk);	/* now the power goes */
	wal_close(wal);
	wal = open_sim(disk, 0);
	assert_int_equal(wal_last_index(wal), 20);
	for (uint64_t i = 1; i <= 20; i++)
		assert_record(wal, i, 15, 200);
	wal_close(wal);
	sim_disk_destroy(disk);
}

static void test_torn_tail_many_seeds(void **state)
{
	(void)state;
	for (uint64_t seed = 0; seed < TORN_SEEDS; seed++)
		run_torn_seed(seed);
}

/* Offsets of records 1..count appended with tag and size_max in one segment. */
static uint64_t record_offset(uint64_t tag, uint64_t index, size_t size_max)
{
	uint8_t buf[4096];
	uint64_t offset = 0;

	for (uint64_t i = 1; i < index; i++)
		offset += WAL_RECORD_HEADER_BYTES + payload_make(tag, i, buf, size_max);
	return offset;
}

static void test_corrupt_middle_record(void **state)
{
	const char *path = DIR_PATH "/wal-00000000000000000001.seg";
	uint8_t buf[4096];
	uint64_t start = record_offset(3, 5, 200);
	uint64_t size = WAL_RECORD_HEADER_BYTES + payload_make(3, 5, buf, 200);

	(void)state;
	/* Damage to any byte of record 5 of 10 (header or payload) is refused. */
	for (uint64_t at = start; at < start + size; at++) {
		struct sim_disk *disk;
		struct wal *wal = NULL;

		assert_int_equal(sim_disk_create(at, &disk), 0);
		wal = open_sim(disk, 0);
		for (uint64_t i = 1; i <= 10; i++)
			append_tagged(wal, 3, i, 200);
		assert_int_equal(wal_sync(wal, 10), 0);
		wal_close(wal);
		assert_int_equal(sim_disk_corrupt_byte(disk, path, at), 0);
		wal = NULL;
		assert_int_equal(wal_open(sim_disk_io(disk), DIR_PATH, NULL, &wal), -EBADMSG);
		assert_null(wal);
		sim_disk_destroy(disk);
	}
}

static void test_corrupt_record_found_by_read(void **state)
{
	const char *path = DIR_PATH "/wal-00000000000000000001.seg";
	struct sim_disk *disk;
	struct wal *wal;
	void *payload;
	size_t size_bytes;

	(void)state;
	assert_int_equal(sim_disk_create(5, &disk), 0);
	wal = open_sim(disk, 0);
	for (uint64_t i = 1; i <= 10; i++)
		append_tagged(wal, 4, i, 200);
	assert_int_equal(wal_sync(wal, 10), 0);
	/* Damage after open is found when the record is read. */
	assert_int_equal(sim_disk_corrupt_byte(disk, path, record_offset(4, 3, 200) + 17), 0);
	assert_int_equal(wal_read(wal, 3, &payload, &size_bytes), -EBADMSG);
	assert_record(wal, 4, 4, 200);
	wal_close(wal);
	sim_disk_destroy(disk);
}

static void test_corrupt_sealed_segment(void **state)
{
	struct sim_disk *disk;
	struct wal *wal = NULL;

	(void)state;
	assert_int_equal(sim_disk_create(6, &disk), 0);
	wal = open_sim(disk, 600);
	for (uint64_t i = 1; i <= 40; i++)
		append_tagged(wal, 5, i, 100);
	assert_int_equal(wal_sync(wal, 40), 0);
	assert_true(count_segments(sim_disk_io(disk), DIR_PATH) > 2);
	wal_close(wal);
	/* The last byte of the first segment: a tail, but of a sealed segment. */
	const struct io *io = sim_disk_io(disk);
	int file = io->file_open(io->ctx, DIR_PATH "/wal-00000000000000000001.seg", IO_OPEN_READ);
	uint64_t size_bytes;
	assert_true(file >= 0);
	assert_int_equal(io->file_size(io->ctx, file, &size_bytes), 0);
	io->file_close(io->ctx, file);
	assert_int_equal(sim_disk_corrupt_byte(disk, DIR_PATH "/wal-00000000000000000001.seg",
					       size_bytes - 1), 0);
	wal = NULL;
	assert_int_equal(wal_open(io, DIR_PATH, NULL, &wal), -EBADMSG);
	sim_disk_destroy(disk);
}

static void test_missing_segment_refused(void **state)
{
	struct sim_disk *disk;
	struct wal *wal = NULL;
	char **names;
	size_t count;

	(void)state;
	assert_int_equal(sim_disk_create(7, &disk), 0);
	const struct io *io = sim_disk_io(disk);
	wal = open_sim(disk, 600);
	for (uint64_t i = 1; i <= 40; i++)
		append_tagged(wal, 6, i, 100);
	assert_int_equal(wal_sync(wal, 40), 0);
	wal_close(wal);
	assert_int_equal(io->dir_list(io->ctx, DIR_PATH, &names, &count), 0);
	assert_true(count >= 3);
	/* Remove a segment from the middle: the gap is corruption. */
	char *middle = NULL;
	uint64_t lowest = UINT64_MAX, highest = 0;
	for (size_t i = 0; i < count; i++) {
		uint64_t first = strtoull(names[i] + 4, NULL, 10);
		lowest = first < lowest ? first : lowest;
		highest = first > highest ? first : highest;
	}
	for (size_t i = 0; i < count && middle == NULL; i++) {
		uint64_t first = strtoull(names[i] + 4, NULL, 10);
		if (first != lowest && first != highest)
			middle = names[i];
	}
	assert_non_null(middle);
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", DIR_PATH, middle);
	io_names_free(names, count);
	assert_int_equal(io->path_unlink(io->ctx, path), 0);
	assert_int_equal(wal_open(io, DIR_PATH, NULL, &wal), -EBADMSG);
	sim_disk_destroy(disk);
}

static void test_segment_rollover(void **state)
{
	struct sim_disk *disk;
	struct wal *wal;

	(void)state;
	assert_int_equal(sim_disk_create(8, &disk), 0);
	const struct io *io = sim_disk_io(disk);
	wal = open_sim(disk, 1000);
	for (uint64_t i = 1; i <= 200; i++)
		append_tagged(wal, 8, i, 150);
	assert_int_equal(wal_sync(wal, 200), 0);
	size_t segments = count_segments(io, DIR_PATH);
	assert_true(segments >= 10);
	wal_close(wal);

	/* Reopen with another segment size: the format does not depend on it. */
	wal = open_sim(disk, 5000);
	assert_int_equal(wal_last_index(wal), 200);
	for (uint64_t i = 1; i <= 200; i++)
		assert_record(wal, i, 8, 150);
	for (uint64_t i = 201; i <= 300; i++)
		append_tagged(wal, 8, i, 150);
	assert_int_equal(wal_sync(wal, 300), 0);
	sim_disk_crash(disk);
	wal_close(wal);
	wal = open_sim(disk, 1000);
	assert_int_equal(wal_last_index(wal), 300);
	for (uint64_t i = 1; i <= 300; i++)
		assert_record(wal, i, 8, 150);
	assert_true(count_segments(io, DIR_PATH) > segments);
	wal_close(wal);
	sim_disk_destroy(disk);
}

static void test_truncate_prefix_and_suffix(void **state)
{
	struct sim_disk *disk;
	struct wal *wal;
	void *payload;
	size_t size_bytes;

	(void)state;
	assert_int_equal(sim_disk_create(9, &disk), 0);
	const struct io *io = sim_disk_io(disk);
	wal = open_sim(disk, 1000);
	for (uint64_t i = 1; i <= 100; i++)
		append_tagged(wal, 9, i, 100);
	assert_int_equal(wal_sync(wal, 100), 0);
	size_t segments = count_segments(io, DIR_PATH);

	assert_int_equal(wal_truncate_prefix(wal, 50), 0);
	uint64_t first = wal_first_index(wal);
	assert_true(first > 1 && first <= 50);
	assert_true(count_segments(io, DIR_PATH) < segments);
	assert_int_equal(wal_read(wal, first - 1, &payload, &size_bytes), -ENOENT);
	assert_record(wal, first, 9, 100);
	/* Nothing to drop below the first index. */
	assert_int_equal(wal_truncate_prefix(wal, 1), 0);
	assert_int_equal(wal_first_index(wal), first);

	assert_int_equal(wal_truncate_suffix(wal, 70), 0);
	assert_int_equal(wal_last_index(wal), 69);
	assert_int_equal(wal_durable_index(wal), 69);
	assert_int_equal(wal_read(wal, 70, &payload, &size_bytes), -ENOENT);
	assert_int_equal(wal_truncate_suffix(wal, 500), 0);	/* past the end: nothing */
	assert_int_equal(wal_truncate_suffix(wal, first - 1), -EINVAL);
	/* The follower's new suffix replaces the old one. */
	for (uint64_t i = 70; i <= 80; i++)
		append_tagged(wal, 90, i, 100);
	/* A crash before the sync: the cut itself was durable. */
	sim_disk_crash(disk);
	wal_close(wal);
	wal = open_sim(disk, 1000);
	assert_int_equal(wal_first_index(wal), first);
	assert_true(wal_last_index(wal) >= 69 && wal_last_index(wal) <= 80);
	for (uint64_t i = first; i <= 69; i++)
		assert_record(wal, i, 9, 100);
	for (uint64_t i = 70; i <= wal_last_index(wal); i++)
		assert_record(wal, i, 90, 100);

	/* Cut everything: an empty log that goes on at the cut index. */
	assert_int_equal(wal_truncate_suffix(wal, first), 0);
	assert_int_equal(wal_last_index(wal), first - 1);
	wal_close(wal);
	wal = open_sim(disk, 1000);
	assert_int_equal(wal_first_index(wal), first);
	assert_int_equal(wal_last_index(wal), first - 1);
	append_tagged(wal, 91, first, 100);
	assert_int_equal(wal_sync(wal, first), 0);
	wal_close(wal);
	wal = open_sim(disk, 1000);
	assert_record(wal, first, 91, 100);
	wal_close(wal);
	sim_disk_destroy(disk);
}

static void test_sync_failure_is_sticky(void **state)
{
	struct sim_disk *disk;
	struct wal *wal;
	uint8_t byte = 1;
	uint64_t index;
	void *payload;
	size_t size_bytes;

	(void)state;
	assert_int_equal(sim_disk_create(10, &disk), 0);
	wal = open_sim(disk, 0);
	for (uint64_t i = 1; i <= 5; i++)
		append_tagged(wal, 10, i, 100);
	assert_int_equal(wal_sync(wal, 5), 0);
	append_tagged(wal, 10, 6, 100);
	sim_disk_fail_sync(disk, 1);
	assert_int_equal(wal_sync(wal, 6), -EIO);
	/* Never pretend success after a failed fsync, even if a retry would. */
	assert_int_equal(wal_sync(wal, 6), -EIO);
	assert_int_equal(wal_sync(wal, 5), -EIO);
	assert_int_equal(wal_append(wal, &byte, 1, &index), -EIO);
	assert_int_equal(wal_read(wal, 1, &payload, &size_bytes), -EIO);
	assert_int_equal(wal_truncate_suffix(wal, 3), -EIO);
	assert_int_equal(wal_truncate_prefix(wal, 3), -EIO);
	sim_disk_crash(disk);
	wal_close(wal);
	wal = open_sim(disk, 0);
	assert_true(wal_last_index(wal) >= 5);
	for (uint64_t i = 1; i <= wal_last_index(wal); i++)
		assert_record(wal, i, 10, 100);
	wal_close(wal);
	sim_disk_destroy(disk);
}

static void test_write_failure_is_sticky(void **state)
{
	struct sim_disk *disk;
	struct wal *wal;
	uint8_t byte = 1;
	uint64_t index;

	(void)state;
	assert_int_equal(sim_disk_create(11, &disk), 0);
	wal = open_sim(disk, 0);
	append_tagged(wal, 11, 1, 100);
	sim_disk_fail_write(disk, 1);
	assert_int_equal(wal_append(wal, &byte, 1, &index), -EIO);
	assert_int_equal(wal_append(wal, &byte, 1, &index), -EIO);
	assert_int_equal(wal_sync(wal, 1), -EIO);
	wal_close(wal);
	sim_disk_destroy(disk);
}

/* Fails the nth write or sync of a scripted run (appends, syncs, rollovers,
 * cuts at both ends, a reopen), for every n that the run reaches: every call
 * then returns 0 or -EIO, -EIO sticks, and after a crash every acknowledged
 * record is back. SQLite's loop over every failure point, in small. */
static void test_fault_at_every_point(void **state)
{
	(void)state;
	for (int kind = 0; kind < 2; kind++) {
		for (uint64_t nth = 1; nth <= 80; nth++) {
			struct sim_disk *disk;
			struct wal *wal = NULL;
			uint64_t acked = 0;
			uint64_t cut_at = 0;
			bool failed = false;
			int r;

			assert_int_equal(sim_disk_create(nth * 2 + (uint64_t)kind, &disk), 0);
			if (kind == 0)
				sim_disk_fail_write(disk, nth);
			else
				sim_disk_fail_sync(disk, nth);
			r = wal_open(sim_disk_io(disk), DIR_PATH, NULL, &wal);
			assert_true(r == 0 || r == -EIO);
			if (r < 0) {
				sim_disk_destroy(disk);
				continue;
			}
			struct wal_options options = { .segment_size_bytes = 400 };
			wal_close(wal);
			r = wal_open(sim_disk_io(disk), DIR_PATH, &options, &wal);
			assert_true(r == 0 || r == -EIO);
			if (r < 0) {
				sim_disk_destroy(disk);
				continue;
			}
			for (uint64_t i = 1; i <= 30; i++) {
				uint8_t buf[4096];
				size_t size_bytes = payload_make(12, i, buf, 100);
				uint64_t index;

				r = wal_append(wal, buf, size_bytes, &index);
				if (r == 0 && i % 3 == 0) {
					r = wal_sync(wal, index);
					if (r == 0)
						acked = index;
				}
				if (r == 0 && i == 20) {
					r = wal_truncate_suffix(wal, 18);
					if (r == 0)
						acked = cut_at = 17;
				}
				if (r == 0 && i == 25)
					r = wal_truncate_prefix(wal, 10);
				assert_true(r == 0 || r == -EIO);
				if (failed)
					assert_int_equal(r, -EIO);
				failed = failed || r < 0;
				if (r < 0)
					break;
			}
			sim_disk_crash(disk);
			wal_close(wal);
			sim_disk_fail_write(disk, 0);
			sim_disk_fail_sync(disk, 0);
			wal = open_sim(disk, 400);
			assert_true(wal_last_index(wal) >= acked);
			for (uint64_t i = wal_first_index(wal); i <= wal_last_index(wal); i++) {
				/* After a cut at 18 the appends restart there with
				 * the payloads of 21, 22, ... */
				uint64_t source = cut_at && i > cut_at ? i + 3 : i;
				uint8_t expected[4096];
				size_t expected_bytes = payload_make(12, source, expected, 100);
				void *payload;
				size_t size_bytes;
				assert_int_equal(wal_read(wal, i, &payload, &size_bytes), 0);
				assert_int_equal(size_bytes, expected_bytes);
				if (size_bytes > 0)
					assert_memory_equal(payload, expected, size_bytes);
				free(payload);
			}
			wal_close(wal);
			sim_disk_destroy(disk);
		}
	}
}

#define WRITER_THREADS 8
#define WRITER_RECORDS 50

struct writer {
	pthread_t thread;
	struct wal *wal;
	unsigned id;
	int error;
	uint64_t indexes[WRITER_RECORDS];
};

static void *writer_run(void *arg)
{
	struct writer *writer = arg;

	for (unsigned i = 0; i < WRITER_RECORDS; i++) {
		uint8_t payload[64];
		int length = snprintf((char *)payload, sizeof(payload), "writer %u record %u",
				      writer->id, i);
		int r = wal_append(writer->wal, payload, (size_t)length, &writer->indexes[i]);
		if (r == 0)
			r = wal_sync(writer->wal, writer->indexes[i]);
		if (r < 0) {
			writer->error = r;
			break;
		}
	}
	return NULL;
}

static void test_group_commit_shares_fsyncs(void **state)
{
	struct writer writers[WRITER_THREADS];
	struct sim_disk_stats before, after;
	struct sim_disk *disk;
	struct wal *wal;

	(void)state;
	assert_int_equal(sim_disk_create(12, &disk), 0);
	wal = open_sim(disk, 4096);	/* rollovers happen during the run too */
	/* A slow disk, so writers overlap; the property checked is a count. */
	sim_disk_set_sync_delay_us(disk, 2000);
	sim_disk_get_stats(disk, &before);
	for (unsigned t = 0; t < WRITER_THREADS; t++) {
		writers[t] = (struct writer){ .wal = wal, .id = t };
		assert_int_equal(pthread_create(&writers[t].thread, NULL, writer_run,
						&writers[t]), 0);
	}
	for (unsigned t = 0; t < WRITER_THREADS; t++)
		assert_int_equal(pthread_join(writers[t].thread, NULL), 0);
	sim_disk_get_stats(disk, &after);
	for (unsigned t = 0; t < WRITER_THREADS; t++)
		assert_int_equal(writers[t].error, 0);

	uint64_t records = WRITER_THREADS * WRITER_RECORDS;
	uint64_t syncs = after.file_syncs - before.file_syncs;
	print_message("group commit: %" PRIu64 " records, %" PRIu64 " fsyncs\n", records, syncs);
	assert_true(syncs < records / 2);
	assert_int_equal(wal_last_index(wal), records);
	assert_int_equal(wal_durable_index(wal), records);
	sim_disk_set_sync_delay_us(disk, 0);
	sim_disk_crash(disk);
	wal_close(wal);

	/* Every record is there, once, with its writer's payload. */
	wal = open_sim(disk, 4096);
	assert_int_equal(wal_last_index(wal), records);
	for (unsigned t = 0; t < WRITER_THREADS; t++) {
		for (unsigned i = 0; i < WRITER_RECORDS; i++) {
			char expected[64];
			void *payload;
			size_t size_bytes;
			int length = snprintf(expected, sizeof(expected), "writer %u record %u",
					      t, i);
			assert_int_equal(wal_read(wal, writers[t].indexes[i], &payload,
						  &size_bytes), 0);
			assert_int_equal(size_bytes, (size_t)length);
			assert_memory_equal(payload, expected, size_bytes);
			free(payload);
		}
	}
	wal_close(wal);
	sim_disk_destroy(disk);
}

static void remove_tree(const char *dir_path)
{
	const struct io *io = io_posix();
	char **names;
	size_t count;

	if (io->dir_list(io->ctx, dir_path, &names, &count) == 0) {
		for (size_t i = 0; i < count; i++) {
			char path[512];
			snprintf(path, sizeof(path), "%s/%s", dir_path, names[i]);
			io->path_unlink(io->ctx, path);
		}
		io_names_free(names, count);
	}
	rmdir(dir_path);
}

static void test_posix_disk(void **state)
{
	char dir_path[] = "/tmp/test_wal.XXXXXX";
	const struct io *io = io_posix();
	struct wal_options options = { .segment_size_bytes = 4096 };
	struct wal *wal;

	(void)state;
	assert_non_null(mkdtemp(dir_path));
	assert_int_equal(wal_open(io, dir_path, &options, &wal), 0);
	for (uint64_t i = 1; i <= 500; i++)
		append_tagged(wal, 13, i, 300);
	assert_int_equal(wal_sync(wal, 500), 0);
	assert_true(count_segments(io, dir_path) > 10);
	assert_int_equal(wal_truncate_suffix(wal, 401), 0);
	wal_close(wal);

	assert_int_equal(wal_open(io, dir_path, &options, &wal), 0);
	assert_int_equal(wal_last_index(wal), 400);
	for (uint64_t i = 1; i <= 400; i++)
		assert_record(wal, i, 13, 300);
	assert_int_equal(wal_truncate_prefix(wal, 200), 0);
	uint64_t first = wal_first_index(wal);
	assert_true(first > 1 && first <= 200);
	wal_close(wal);

	/* A torn tail on a real file: half a record of garbage is cut. */
	char path[512];
	snprintf(path, sizeof(path), "%s/wal-%020" PRIu64 ".seg", dir_path, (uint64_t)0);
	assert_int_equal(wal_open(io, dir_path, &options, &wal), 0);
	assert_int_equal(wal_first_index(wal), first);
	uint64_t last = wal_last_index(wal);
	wal_close(wal);
	char **names;
	size_t count;
	uint64_t newest = 0;
	assert_int_equal(io->dir_list(io->ctx, dir_path, &names, &count), 0);
	for (size_t i = 0; i < count; i++) {
		uint64_t segment_first = strtoull(names[i] + 4, NULL, 10);
		newest = segment_first > newest ? segment_first : newest;
	}
	io_names_free(names, count);
	snprintf(path, sizeof(path), "%s/wal-%020" PRIu64 ".seg", dir_path, newest);
	int file = io->file_open(io->ctx, path, IO_OPEN_WRITE);
	uint64_t size_bytes;
	assert_true(file >= 0);
	assert_int_equal(io->file_size(io->ctx, file, &size_bytes), 0);
	uint8_t garbage[20] = { 9, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13 };
	assert_int_equal(io->file_pwrite(io->ctx, file, garbage, sizeof(garbage), size_bytes), 0);
	io->file_close(io->ctx, file);
	assert_int_equal(wal_open(io, dir_path, &options, &wal), 0);
	assert_int_equal(wal_last_index(wal), last);
	append_tagged(wal, 14, last + 1, 300);
	assert_int_equal(wal_sync(wal, last + 1), 0);
	wal_close(wal);
	assert_int_equal(wal_open(io, dir_path, &options, &wal), 0);
	assert_record(wal, last + 1, 14, 300);
	wal_close(wal);
	remove_tree(dir_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_torn_tail_many_seeds),
		cmocka_unit_test(test_open_makes_recovered_records_durable),
		cmocka_unit_test(test_corrupt_middle_record),
		cmocka_unit_test(test_corrupt_record_found_by_read),
		cmocka_unit_test(test_corrupt_sealed_segment),
		cmocka_unit_test(test_missing_segment_refused),
		cmocka_unit_test(test_segment_rollover),
		cmocka_unit_test(test_truncate_prefix_and_suffix),
		cmocka_unit_test(test_sync_failure_is_sticky),
		cmocka_unit_test(test_write_failure_is_sticky),
		cmocka_unit_test(test_fault_at_every_point),
		cmocka_unit_test(test_group_commit_shares_fsyncs),
		cmocka_unit_test(test_posix_disk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

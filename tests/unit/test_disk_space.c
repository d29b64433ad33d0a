/* test_disk_space.c: the levels of a node's free-space reserve, the majority rule a leader
 * applies to its group, and the parsing of --disk-reserve-bytes (cluster/disk_space.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cluster/disk_space.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static void test_levels(void **state)
{
	(void)state;
	assert_int_equal(disk_space_level_of(1000, 1000), DISK_SPACE_OK);
	assert_int_equal(disk_space_level_of(999, 1000), DISK_SPACE_NO_WRITES);
	assert_int_equal(disk_space_level_of(500, 1000), DISK_SPACE_NO_WRITES);
	assert_int_equal(disk_space_level_of(499, 1000), DISK_SPACE_NO_DELETES);
	assert_int_equal(disk_space_level_of(250, 1000), DISK_SPACE_NO_DELETES);
	assert_int_equal(disk_space_level_of(249, 1000), DISK_SPACE_NO_LOG);
	/* A reserve of 0 never refuses. */
	assert_int_equal(disk_space_level_of(0, 0), DISK_SPACE_OK);
	assert_true(disk_space_refuses(DISK_SPACE_NO_WRITES, DISK_SPACE_USE_WRITE));
	assert_false(disk_space_refuses(DISK_SPACE_NO_WRITES, DISK_SPACE_USE_DELETE));
	assert_true(disk_space_refuses(DISK_SPACE_NO_DELETES, DISK_SPACE_USE_DELETE));
	assert_false(disk_space_refuses(DISK_SPACE_NO_DELETES, DISK_SPACE_USE_LOG));
	assert_true(disk_space_refuses(DISK_SPACE_NO_LOG, DISK_SPACE_USE_LOG));
}

static void test_group_majority(void **state)
{
	enum disk_space_level one_full[] = { DISK_SPACE_OK, DISK_SPACE_NO_LOG };
	enum disk_space_level two_full[] = { DISK_SPACE_NO_WRITES, DISK_SPACE_NO_LOG };
	enum disk_space_level fine[] = { DISK_SPACE_OK, DISK_SPACE_OK };

	(void)state;

	/* One full follower of three: the other two still make a majority. */
	assert_false(disk_space_group_refuses(DISK_SPACE_OK, one_full, 2, DISK_SPACE_USE_WRITE));
	/* Two: no majority can store a write... */
	assert_true(disk_space_group_refuses(DISK_SPACE_OK, two_full, 2, DISK_SPACE_USE_WRITE));
	/* ...but a delete still fits on the one over half its reserve. */
	assert_false(disk_space_group_refuses(DISK_SPACE_OK, two_full, 2, DISK_SPACE_USE_DELETE));
	/* The leader writes every entry itself: its own shortage refuses. */
	assert_true(disk_space_group_refuses(DISK_SPACE_NO_WRITES, fine, 2, DISK_SPACE_USE_WRITE));
	assert_false(disk_space_group_refuses(DISK_SPACE_NO_WRITES, fine, 2,
					      DISK_SPACE_USE_DELETE));
	/* A group of one. */
	assert_false(disk_space_group_refuses(DISK_SPACE_OK, NULL, 0, DISK_SPACE_USE_WRITE));
}

static void test_parse(void **state)
{
	int64_t bytes = 0;

	(void)state;

	assert_int_equal(disk_space_parse_bytes("0", &bytes), 0);
	assert_int_equal(bytes, 0);
	assert_int_equal(disk_space_parse_bytes("4096", &bytes), 0);
	assert_int_equal(bytes, 4096);
	assert_int_equal(disk_space_parse_bytes("64MiB", &bytes), 0);
	assert_int_equal(bytes, 64 << 20);
	assert_int_equal(disk_space_parse_bytes("2G", &bytes), 0);
	assert_int_equal(bytes, 2ll << 30);
	assert_int_equal(disk_space_parse_bytes("", &bytes), -EINVAL);
	assert_int_equal(disk_space_parse_bytes("-1", &bytes), -EINVAL);
	assert_int_equal(disk_space_parse_bytes("12MB", &bytes), -EINVAL);
	assert_int_equal(disk_space_parse_bytes("99999999999999999999", &bytes), -EINVAL);
	assert_int_equal(disk_space_parse_bytes("9999999999GiB", &bytes), -EINVAL);
}

/* A real filesystem: the default reserve follows its size, an explicit one is kept. */
static void test_real_directory(void **state)
{
	struct disk_space *space;
	char dir[] = "/tmp/test_disk_space.XXXXXX";

	(void)state;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(disk_space_new(dir, -1, &space), 0);
	assert_true(disk_space_reserve_bytes(space) <= DISK_SPACE_RESERVE_BYTES_DEFAULT);
	(void)disk_space_level(space, 1);
	disk_space_free(space);
	assert_int_equal(disk_space_new(dir, 0, &space), 0);
	assert_int_equal(disk_space_reserve_bytes(space), 0);
	assert_int_equal(disk_space_level(space, 1), DISK_SPACE_OK);
	/* More than any filesystem holds: every write refused. */
	disk_space_free(space);
	assert_int_equal(disk_space_new(dir, INT64_MAX / 2, &space), 0);
	assert_int_equal(disk_space_level(space, 1), DISK_SPACE_NO_LOG);
	disk_space_free(space);
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(disk_space_new("/nonexistent/quorum", -1, &space), -ENOENT);
	assert_null(space);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_group_majority),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_real_directory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

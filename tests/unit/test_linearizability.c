/* test_linearizability.c: the history checker of tests/sim on histories known to be
 * linearizable or not (stale reads, new-old inversions, lost and "maybe applied" writes,
 * several keys), and on large histories so it stays fast. */
#include "tests/sim/linearizability.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static struct lin_op put(uint32_t key, uint64_t value, uint64_t invoke, uint64_t complete)
{
	struct lin_op op = { LIN_PUT, key, value, invoke, complete, complete != 0 };

	return op;
}

static struct lin_op get(uint32_t key, uint64_t value, uint64_t invoke, uint64_t complete)
{
	struct lin_op op = { LIN_GET, key, value, invoke, complete, complete != 0 };

	return op;
}

static int check(const struct lin_op *ops, size_t count)
{
	return lin_check(ops, count, NULL);
}

static void test_simple_histories(void **state)
{
	struct lin_op h[4];

	(void)state;
	assert_int_equal(check(NULL, 0), 1);
	h[0] = put(1, 7, 1, 2);
	h[1] = get(1, 7, 3, 4);
	assert_int_equal(check(h, 2), 1);
	h[1] = get(1, 0, 3, 4);			/* stale read after the put completed */
	assert_int_equal(check(h, 2), 0);
	h[1] = get(1, 0, 1, 4);			/* overlapping: either order */
	h[0] = put(1, 7, 2, 3);
	assert_int_equal(check(h, 2), 1);
	h[0] = get(1, 9, 1, 2);			/* a value nobody wrote */
	assert_int_equal(check(h, 1), 0);
	h[0] = get(1, 0, 1, 2);			/* registers start at 0 */
	assert_int_equal(check(h, 1), 1);
}

static void test_sequential_puts(void **state)
{
	struct lin_op h[3];

	(void)state;
	h[0] = put(1, 1, 1, 2);
	h[1] = put(1, 2, 3, 4);
	h[2] = get(1, 1, 5, 6);			/* the older value after the newer one */
	assert_int_equal(check(h, 3), 0);
	h[2] = get(1, 2, 5, 6);
	assert_int_equal(check(h, 3), 1);
	h[1] = put(1, 2, 1, 4);			/* concurrent puts: either may be last */
	h[0] = put(1, 1, 2, 3);
	h[2] = get(1, 1, 5, 6);
	assert_int_equal(check(h, 3), 1);
	h[2] = get(1, 2, 5, 6);
	assert_int_equal(check(h, 3), 1);
}

static void test_new_old_inversion(void **state)
{
	struct lin_op h[3];

	(void)state;
	/* A slow put; a read sees it, a later read does not: not linearizable. */
	h[0] = put(1, 5, 1, 10);
	h[1] = get(1, 5, 2, 3);
	h[2] = get(1, 0, 4, 5);
	assert_int_equal(check(h, 3), 0);
	h[2] = get(1, 5, 4, 5);
	assert_int_equal(check(h, 3), 1);
	/* Two concurrent reads may disagree while the put is in flight. */
	h[1] = get(1, 5, 2, 5);
	h[2] = get(1, 0, 3, 4);
	assert_int_equal(check(h, 3), 1);
}

static void test_incomplete_operations(void **state)
{
	struct lin_op h[4];

	(void)state;
	/* A put that never answered may have happened... */
	h[0] = put(1, 5, 1, 0);
	h[1] = get(1, 5, 10, 11);
	assert_int_equal(check(h, 2), 1);
	/* ...or not. */
	h[1] = get(1, 0, 10, 11);
	assert_int_equal(check(h, 2), 1);
	/* But once seen it cannot vanish. */
	h[1] = get(1, 5, 10, 11);
	h[2] = get(1, 0, 12, 13);
	assert_int_equal(check(h, 3), 0);
	/* It cannot take effect before it was invoked. */
	h[0] = put(1, 5, 20, 0);
	h[1] = get(1, 5, 10, 11);
	assert_int_equal(check(h, 2), 0);
	/* An unanswered get says nothing. */
	h[0] = get(1, 99, 1, 0);
	assert_int_equal(check(h, 1), 1);
	/* A lost acknowledged put: later reads must see it. */
	h[0] = put(1, 3, 1, 2);
	h[1] = put(1, 4, 3, 0);
	h[2] = get(1, 0, 5, 6);
	assert_int_equal(check(h, 3), 0);
}

static void test_keys_are_independent(void **state)
{
	struct lin_op h[4];
	uint32_t bad = 0;

	(void)state;
	h[0] = put(1, 1, 1, 2);
	h[1] = get(2, 0, 3, 4);			/* key 2 was never written: 0 is right */
	h[2] = put(2, 8, 5, 6);
	h[3] = get(1, 1, 7, 8);
	assert_int_equal(lin_check(h, 4, &bad), 1);
	h[1] = get(2, 8, 3, 4);			/* sees key 2's value before it was written */
	assert_int_equal(lin_check(h, 4, &bad), 0);
	assert_int_equal(bad, 2);
}

static void test_invalid_input(void **state)
{
	struct lin_op h[1];

	(void)state;
	h[0] = put(1, 1, 5, 5);
	assert_int_equal(check(h, 1), -EINVAL);
	h[0] = put(1, 1, 5, 6);
	h[0].kind = 0;
	assert_int_equal(check(h, 1), -EINVAL);
}

/* A register run by a "server" that applies each op at a random point inside its interval:
 * linearizable by construction; then one read is corrupted and it must be caught. */
static void test_large_random_histories(void **state)
{
	enum { OPS = 600, CLIENTS = 5 };
	struct lin_op *h = calloc(OPS, sizeof(*h));
	uint64_t seed = 12345;

	(void)state;
	assert_non_null(h);
	for (int round = 0; round < 5; round++) {
		uint64_t value[2] = { 0, 0 }, time = 0, next = 1;
		size_t n = 0;
		struct {
			bool busy;
			size_t op;
			uint64_t applied;
		} c[CLIENTS];

		memset(c, 0, sizeof(c));
		while (n < OPS || c[0].busy || c[1].busy || c[2].busy || c[3].busy || c[4].busy) {
			size_t i;

			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			i = (seed >> 33) % CLIENTS;
			time++;
			if (!c[i].busy && n < OPS) {
				uint32_t key = (uint32_t)((seed >> 20) & 1);

				h[n] = (seed >> 40) & 1 ? put(key, next++, time, 0) :
							  get(key, 0, time, 0);
				h[n].completed = false;
				c[i].busy = true;
				c[i].op = n++;
				c[i].applied = 0;
			} else if (c[i].busy && !c[i].applied) {
				struct lin_op *op = &h[c[i].op];

				if (op->kind == LIN_PUT)
					value[op->key] = op->value;
				else
					op->value = value[op->key];
				c[i].applied = 1;
			} else if (c[i].busy) {
				struct lin_op *op = &h[c[i].op];

				/* Some puts never answer (their effect stays). */
				if (op->kind == LIN_GET || ((seed >> 50) % 10) != 0) {
					op->completed = true;
					op->complete_time = time;
				}
				c[i].busy = false;
			}
		}
		assert_int_equal(check(h, OPS), 1);
		for (size_t i = OPS / 2; i < OPS; i++) {
			if (h[i].kind == LIN_GET && h[i].completed && h[i].value != 0) {
				h[i].value += 1000000;	/* a value nobody wrote */
				break;
			}
		}
		assert_int_equal(check(h, OPS), 0);
	}
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_histories),
		cmocka_unit_test(test_sequential_puts),
		cmocka_unit_test(test_new_old_inversion),
		cmocka_unit_test(test_incomplete_operations),
		cmocka_unit_test(test_keys_are_independent),
		cmocka_unit_test(test_invalid_input),
		cmocka_unit_test(test_large_random_histories),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

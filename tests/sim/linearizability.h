/* linearizability.h: a checker for histories of put/get on integer registers (keys).
 *
 * Each operation has an invoke time and, if it completed, a complete time (all times
 * distinct; the simulation uses an event counter). A put that never completed may or may
 * not have taken effect: it is treated as completing at infinity, so the search may place
 * it anywhere after its invocation (or last, where it affects nothing). A get that never
 * completed is ignored. Registers start at 0.
 *
 * The search is Wing & Gong's, with Lowe's memoisation of (linearized set, register value)
 * as in Porcupine, run per key (a history is linearizable iff each key's sub-history is).
 */
#ifndef QUORUM_LINEARIZABILITY_H
#define QUORUM_LINEARIZABILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LIN_OPS_PER_KEY_MAX 2048

enum lin_kind {
	LIN_PUT = 1,
	LIN_GET = 2,
};

struct lin_op {
	enum lin_kind kind;
	uint32_t key;
	uint64_t value;			/* put: the value written; get: the value returned */
	uint64_t invoke_time;
	uint64_t complete_time;		/* meaningful only if completed */
	bool completed;
};

/* Returns 1 if the history is linearizable, 0 if not (*bad_key set to a key whose
 * sub-history is not), -E2BIG if a key has more than LIN_OPS_PER_KEY_MAX operations,
 * -EINVAL on a malformed operation, -ENOMEM. */
int lin_check(const struct lin_op *ops, size_t count, uint32_t *bad_key);

#endif

/* linearizability.c: Wing & Gong search with memoisation, per key (see the header). */
#include "tests/sim/linearizability.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct key_op {
	enum lin_kind kind;
	uint64_t value;
	uint64_t invoke_time;
	uint64_t complete_time;
};

/* The set of (linearized set, value) states known to lead nowhere. */
struct memo {
	uint64_t *hashes;		/* 0: empty slot */
	size_t *offsets;		/* into words */
	size_t cap;
	size_t count;
	uint64_t *words;
	size_t word_count;
	size_t word_cap;
};

struct search {
	const struct key_op *ops;
	size_t n;
	size_t words;			/* bitset words */
	uint64_t *done;
	struct memo memo;
};

static uint64_t state_hash(const uint64_t *done, size_t words, uint64_t value)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ value;

	for (size_t i = 0; i < words; i++) {
		h ^= done[i];
		h *= 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h ? h : 1;
}

static bool memo_equal(const struct search *s, size_t offset, uint64_t value)
{
	const uint64_t *w = &s->memo.words[offset];

	return w[s->words] == value && memcmp(w, s->done, s->words * sizeof(uint64_t)) == 0;
}

static bool memo_contains(const struct search *s, uint64_t value)
{
	uint64_t h = state_hash(s->done, s->words, value);

	if (s->memo.cap == 0)
		return false;
	for (size_t i = h & (s->memo.cap - 1);; i = (i + 1) & (s->memo.cap - 1)) {
		if (s->memo.hashes[i] == 0)
			return false;
		if (s->memo.hashes[i] == h && memo_equal(s, s->memo.offsets[i], value))
			return true;
	}
}

static int memo_grow(struct memo *m)
{
	size_t cap = m->cap ? 2 * m->cap : 1024;
	uint64_t *hashes = calloc(cap, sizeof(*hashes));
	size_t *offsets = calloc(cap, sizeof(*offsets));

	if (!hashes || !offsets) {
		free(hashes);
		free(offsets);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		size_t j;

		if (!m->hashes[i])
			continue;
		for (j = m->hashes[i] & (cap - 1); hashes[j]; j = (j + 1) & (cap - 1))
			;
		hashes[j] = m->hashes[i];
		offsets[j] = m->offsets[i];
	}
	free(m->hashes);
	free(m->offsets);
	m->hashes = hashes;
	m->offsets = offsets;
	m->cap = cap;
	return 0;
}

static int memo_insert(struct search *s, uint64_t value)
{
	struct memo *m = &s->memo;
	uint64_t h = state_hash(s->done, s->words, value);
	size_t i;

	if (2 * (m->count + 1) > m->cap && memo_grow(m) != 0)
		return -ENOMEM;
	if (m->word_count + s->words + 1 > m->word_cap) {
		size_t cap = m->word_cap ? 2 * m->word_cap : 4096;
		uint64_t *w;

		while (cap < m->word_count + s->words + 1)
			cap *= 2;
		w = realloc(m->words, cap * sizeof(*w));
		if (!w)
			return -ENOMEM;
		m->words = w;
		m->word_cap = cap;
	}
	memcpy(&m->words[m->word_count], s->done, s->words * sizeof(uint64_t));
	m->words[m->word_count + s->words] = value;
	for (i = h & (m->cap - 1); m->hashes[i]; i = (i + 1) & (m->cap - 1))
		;
	m->hashes[i] = h;
	m->offsets[i] = m->word_count;
	m->word_count += s->words + 1;
	m->count++;
	return 0;
}

static bool is_done(const struct search *s, size_t i)
{
	return (s->done[i / 64] >> (i % 64)) & 1;
}

static void flip_done(struct search *s, size_t i)
{
	s->done[i / 64] ^= 1ULL << (i % 64);
}

/* 1: the remaining operations linearize from register value; 0: they do not; <0: error. */
static int search_from(struct search *s, uint64_t value, size_t done_count)
{
	uint64_t complete_min = UINT64_MAX;
	int rc;

	if (done_count == s->n)
		return 1;
	if (memo_contains(s, value))
		return 0;
	for (size_t i = 0; i < s->n; i++)
		if (!is_done(s, i) && s->ops[i].complete_time < complete_min)
			complete_min = s->ops[i].complete_time;
	/* An operation may go next only if no pending one completed before it began. */
	for (size_t i = 0; i < s->n && s->ops[i].invoke_time < complete_min; i++) {
		uint64_t next = value;

		if (is_done(s, i))
			continue;
		if (s->ops[i].kind == LIN_GET && s->ops[i].value != value)
			continue;
		if (s->ops[i].kind == LIN_PUT)
			next = s->ops[i].value;
		flip_done(s, i);
		rc = search_from(s, next, done_count + 1);
		flip_done(s, i);
		if (rc != 0)
			return rc;
	}
	rc = memo_insert(s, value);
	return rc ? rc : 0;
}

static int op_compare(const void *a, const void *b)
{
	const struct key_op *x = a, *y = b;

	if (x->invoke_time != y->invoke_time)
		return x->invoke_time < y->invoke_time ? -1 : 1;
	return 0;
}

static int check_key(const struct lin_op *ops, size_t count, uint32_t key)
{
	struct search s;
	struct key_op *kops;
	size_t n = 0;
	int rc;

	memset(&s, 0, sizeof(s));
	for (size_t i = 0; i < count; i++)
		if (ops[i].key == key && (ops[i].completed || ops[i].kind == LIN_PUT))
			n++;
	if (n > LIN_OPS_PER_KEY_MAX)
		return -E2BIG;
	kops = calloc(n ? n : 1, sizeof(*kops));
	if (!kops)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < count; i++) {
		if (ops[i].key != key || !(ops[i].completed || ops[i].kind == LIN_PUT))
			continue;
		kops[n].kind = ops[i].kind;
		kops[n].value = ops[i].value;
		kops[n].invoke_time = ops[i].invoke_time;
		kops[n].complete_time = ops[i].completed ? ops[i].complete_time : UINT64_MAX;
		n++;
	}
	qsort(kops, n, sizeof(*kops), op_compare);
	s.ops = kops;
	s.n = n;
	s.words = (n + 63) / 64 + 1;
	s.done = calloc(s.words, sizeof(uint64_t));
	if (!s.done) {
		free(kops);
		return -ENOMEM;
	}
	rc = search_from(&s, 0, 0);
	free(s.done);
	free(s.memo.hashes);
	free(s.memo.offsets);
	free(s.memo.words);
	free(kops);
	return rc;
}

int lin_check(const struct lin_op *ops, size_t count, uint32_t *bad_key)
{
	for (size_t i = 0; i < count; i++) {
		if ((ops[i].kind != LIN_PUT && ops[i].kind != LIN_GET) ||
		    (ops[i].completed && ops[i].complete_time <= ops[i].invoke_time))
			return -EINVAL;
	}
	for (size_t i = 0; i < count; i++) {
		bool seen = false;
		int rc;

		/* Check each key once: at its first operation. */
		for (size_t j = 0; j < i && !seen; j++)
			seen = ops[j].key == ops[i].key;
		if (seen)
			continue;
		rc = check_key(ops, count, ops[i].key);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			if (bad_key)
				*bad_key = ops[i].key;
			return 0;
		}
	}
	return 1;
}

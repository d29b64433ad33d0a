/* reports.c: deep copies of heartbeat GroupReports. See reports.h.
 *
 * The repeated fields of one copy each live in one allocation: the array of
 * pointers first, then the messages, then (hot keys) their key bytes, so a
 * copy is freed with one free() per field. */
#include "meta/reports.h"

#include "cluster/keys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Where a copy's repeated fields go: malloc, or an arena. */
struct reports_memory {
	struct arena *arena;	/* NULL: malloc */
};

static void *reports_alloc(const struct reports_memory *memory, size_t size_bytes)
{
	if (size_bytes == 0)
		size_bytes = 1;
	return memory->arena ? arena_alloc(memory->arena, size_bytes) : malloc(size_bytes);
}

static size_t reports_hot_key_bytes(const Quorum__HotKey *hot)
{
	return hot->key.len > KEY_NAME_MAX_BYTES ? KEY_NAME_MAX_BYTES : hot->key.len;
}

/* Copies the scalars of in into out and its repeated fields into memory. */
static int reports_copy_one(const Quorum__GroupReport *in, Quorum__GroupReport *out,
			    const struct reports_memory *memory)
{
	size_t hot_count = in->n_hot_keys > REPORTS_HOT_KEYS_MAX ? REPORTS_HOT_KEYS_MAX :
			   in->n_hot_keys;
	size_t child_count = in->n_children > REPORTS_CHILDREN_MAX ? REPORTS_CHILDREN_MAX :
			     in->n_children;
	size_t block_bytes = 0;
	uint8_t *block;

	*out = *in;
	out->base.n_unknown_fields = 0;
	out->base.unknown_fields = NULL;
	out->n_hot_keys = 0;
	out->hot_keys = NULL;
	out->n_children = 0;
	out->children = NULL;

	if (hot_count) {
		Quorum__HotKey *hots;
		uint8_t *bytes;

		block_bytes = hot_count * (sizeof(Quorum__HotKey *) + sizeof(Quorum__HotKey));
		for (size_t i = 0; i < hot_count; i++)
			block_bytes += reports_hot_key_bytes(in->hot_keys[i]);
		block = reports_alloc(memory, block_bytes);
		if (!block)
			return -ENOMEM;
		out->hot_keys = (Quorum__HotKey **)block;
		hots = (Quorum__HotKey *)(block + hot_count * sizeof(Quorum__HotKey *));
		bytes = (uint8_t *)(hots + hot_count);
		for (size_t i = 0; i < hot_count; i++) {
			size_t key_bytes = reports_hot_key_bytes(in->hot_keys[i]);

			hots[i] = *in->hot_keys[i];
			hots[i].base.n_unknown_fields = 0;
			hots[i].base.unknown_fields = NULL;
			if (key_bytes)
				memcpy(bytes, in->hot_keys[i]->key.data, key_bytes);
			hots[i].key.data = bytes;
			hots[i].key.len = key_bytes;
			bytes += key_bytes;
			out->hot_keys[i] = &hots[i];
		}
		out->n_hot_keys = hot_count;
	}
	if (child_count) {
		Quorum__SplitChild *children;

		block = reports_alloc(memory, child_count * (sizeof(Quorum__SplitChild *) +
							     sizeof(Quorum__SplitChild)));
		if (!block) {
			if (!memory->arena)
				free(out->hot_keys);
			out->hot_keys = NULL;
			out->n_hot_keys = 0;
			return -ENOMEM;
		}
		out->children = (Quorum__SplitChild **)block;
		children = (Quorum__SplitChild *)(block + child_count *
						  sizeof(Quorum__SplitChild *));
		for (size_t i = 0; i < child_count; i++) {
			children[i] = *in->children[i];
			children[i].base.n_unknown_fields = 0;
			children[i].base.unknown_fields = NULL;
			out->children[i] = &children[i];
		}
		out->n_children = child_count;
	}
	return 0;
}

int reports_copy(Quorum__GroupReport *const *reports, size_t count, Quorum__GroupReport **out)
{
	const struct reports_memory memory = { NULL };
	Quorum__GroupReport *copies;

	*out = NULL;
	if (count == 0)
		return 0;
	copies = calloc(count, sizeof(*copies));
	if (!copies)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		if (reports_copy_one(reports[i], &copies[i], &memory) < 0) {
			reports_free(copies, i);
			return -ENOMEM;
		}
	}
	*out = copies;
	return 0;
}

void reports_free(Quorum__GroupReport *reports, size_t count)
{
	if (!reports)
		return;
	for (size_t i = 0; i < count; i++) {
		free(reports[i].hot_keys);
		free(reports[i].children);
	}
	free(reports);
}

Quorum__GroupReport *reports_in_arena(const Quorum__GroupReport *report, struct arena *arena)
{
	const struct reports_memory memory = { arena };
	Quorum__GroupReport *copy = arena_alloc(arena, sizeof(*copy));

	if (!copy || reports_copy_one(report, copy, &memory) < 0)
		return NULL;
	return copy;
}

/* staged_writes.c: a LevelDB write batch that can be read back; see staged_writes.h. */
#include "cluster/staged_writes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct staged_write {
	uint8_t *key;			/* key_bytes, then value_bytes in the same allocation */
	size_t key_bytes;
	size_t value_bytes;
	bool deleted;
};

int staged_writes_init(struct staged_writes *s)
{
	memset(s, 0, sizeof(*s));
	s->batch = leveldb_writebatch_create();
	return s->batch ? 0 : -ENOMEM;
}

void staged_writes_clear(struct staged_writes *s)
{
	for (size_t i = 0; i < s->count; i++)
		free(s->writes[i].key);
	s->count = 0;
	s->size_bytes = 0;
	if (s->batch)
		leveldb_writebatch_clear(s->batch);
}

void staged_writes_destroy(struct staged_writes *s)
{
	staged_writes_clear(s);
	free(s->writes);
	if (s->batch)
		leveldb_writebatch_destroy(s->batch);
	memset(s, 0, sizeof(*s));
}

int staged_writes_put(struct staged_writes *s, const uint8_t *key, size_t key_bytes,
		      const uint8_t *value, size_t value_bytes)
{
	struct staged_write *w;
	size_t value_copied = value ? value_bytes : 0;

	if (s->count == s->capacity) {
		size_t capacity = s->capacity ? 2 * s->capacity : 32;
		struct staged_write *writes = realloc(s->writes, capacity * sizeof(*writes));

		if (!writes)
			return -ENOMEM;
		s->writes = writes;
		s->capacity = capacity;
	}
	w = &s->writes[s->count];
	w->key = malloc(key_bytes + value_copied + 1);
	if (!w->key)
		return -ENOMEM;
	memcpy(w->key, key, key_bytes);
	if (value_copied)
		memcpy(w->key + key_bytes, value, value_copied);
	w->key_bytes = key_bytes;
	w->value_bytes = value_copied;
	w->deleted = !value;
	s->count++;
	s->size_bytes += key_bytes + value_copied;
	if (value)
		leveldb_writebatch_put(s->batch, (const char *)key, key_bytes, (const char *)value,
				       value_bytes);
	else
		leveldb_writebatch_delete(s->batch, (const char *)key, key_bytes);
	return 0;
}

bool staged_writes_get(const struct staged_writes *s, const uint8_t *key, size_t key_bytes,
		       const uint8_t **value, size_t *value_bytes)
{
	for (size_t i = s->count; i-- > 0;) {
		const struct staged_write *w = &s->writes[i];

		if (w->key_bytes != key_bytes || memcmp(w->key, key, key_bytes) != 0)
			continue;
		*value = w->deleted ? NULL : w->key + key_bytes;
		*value_bytes = w->value_bytes;
		return true;
	}
	return false;
}

/* request_ids.c: see request_ids.h. Seqs in flight are kept in an array in
 * ascending order (they are handed out in order and appended), so the floor
 * is its first element; a write that ends is taken out wherever it is. */
#include "fs/request_ids.h"

#include "cluster/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

struct request_ids {
	pthread_mutex_t lock;
	uint64_t client_id;
	uint64_t next_seq;
	uint64_t *in_flight;	/* ascending */
	size_t count, cap;
};

int request_ids_new(struct request_ids **out)
{
	struct request_ids *ids = calloc(1, sizeof(*ids));

	*out = NULL;
	if (!ids)
		return -ENOMEM;
	do {
		if (RAND_bytes((unsigned char *)&ids->client_id, sizeof(ids->client_id)) != 1) {
			log_error("no random bytes for the router's client id");
			free(ids);
			return -EIO;
		}
	} while (ids->client_id == 0);
	ids->next_seq = 1;
	pthread_mutex_init(&ids->lock, NULL);
	*out = ids;
	return 0;
}

void request_ids_free(struct request_ids *ids)
{
	if (!ids)
		return;
	pthread_mutex_destroy(&ids->lock);
	free(ids->in_flight);
	free(ids);
}

int request_ids_begin(struct request_ids *ids, Quorum__RequestId *id)
{
	pthread_mutex_lock(&ids->lock);
	if (ids->count == ids->cap) {
		size_t cap = ids->cap ? 2 * ids->cap : 64;
		uint64_t *grown = realloc(ids->in_flight, cap * sizeof(*grown));

		if (!grown) {
			pthread_mutex_unlock(&ids->lock);
			return -ENOMEM;
		}
		ids->in_flight = grown;
		ids->cap = cap;
	}
	quorum__request_id__init(id);
	id->client_id = ids->client_id;
	id->seq = ids->next_seq++;
	ids->in_flight[ids->count++] = id->seq;
	id->floor = ids->in_flight[0];
	pthread_mutex_unlock(&ids->lock);
	return 0;
}

void request_ids_end(struct request_ids *ids, uint64_t seq)
{
	pthread_mutex_lock(&ids->lock);
	for (size_t i = 0; i < ids->count; i++) {
		if (ids->in_flight[i] == seq) {
			memmove(&ids->in_flight[i], &ids->in_flight[i + 1],
				(ids->count - i - 1) * sizeof(*ids->in_flight));
			ids->count--;
			break;
		}
	}
	pthread_mutex_unlock(&ids->lock);
}

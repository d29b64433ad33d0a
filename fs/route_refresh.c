/* route_refresh.c: see route_refresh.h. Names asked for wait in a small array,
 * deduplicated; the thread swaps it out each round and refreshes them one by one. */
#include "fs/route_refresh.h"

#include "cluster/clock.h"
#include "cluster/keys.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef char route_name[KEY_NAME_MAX_BYTES + 1];

struct route_refresh {
	route_refresh_fn refresh;
	void *ctx;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	route_name pending[ROUTE_REFRESH_BATCH_MAX];
	size_t pending_count;
	route_name round[ROUTE_REFRESH_BATCH_MAX];	/* the thread's */
};

void route_refresh_request(struct route_refresh *rr, const char *name)
{
	size_t bytes = strlen(name);

	if (bytes > KEY_NAME_MAX_BYTES)
		return;
	pthread_mutex_lock(&rr->lock);
	for (size_t i = 0; i < rr->pending_count; i++) {
		if (strcmp(rr->pending[i], name) == 0) {
			pthread_mutex_unlock(&rr->lock);
			return;
		}
	}
	if (rr->pending_count < ROUTE_REFRESH_BATCH_MAX) {
		memcpy(rr->pending[rr->pending_count++], name, bytes + 1);
		if (rr->pending_count == 1)
			pthread_cond_signal(&rr->wake);
	}
	pthread_mutex_unlock(&rr->lock);
}

static void *route_refresh_main(void *arg)
{
	struct route_refresh *rr = arg;
	int64_t next_round_ms = 0;

	pthread_mutex_lock(&rr->lock);
	while (!rr->stop) {
		size_t count;

		/* A round when something is asked for, at most one per ROUND_MS. */
		if (rr->pending_count == 0 || clock_monotonic_ms() < next_round_ms) {
			struct timespec until;
			int64_t wait_ms = rr->pending_count ? next_round_ms :
					  clock_monotonic_ms() + 1000;

			until.tv_sec = wait_ms / 1000;
			until.tv_nsec = (wait_ms % 1000) * 1000000L;
			pthread_cond_timedwait(&rr->wake, &rr->lock, &until);
			continue;
		}
		count = rr->pending_count;
		memcpy(rr->round, rr->pending, count * sizeof(rr->round[0]));
		rr->pending_count = 0;
		next_round_ms = clock_monotonic_ms() + ROUTE_REFRESH_ROUND_MS;
		pthread_mutex_unlock(&rr->lock);
		for (size_t i = 0; i < count && !rr->stop; i++)
			rr->refresh(rr->ctx, rr->round[i]);
		pthread_mutex_lock(&rr->lock);
	}
	pthread_mutex_unlock(&rr->lock);
	return NULL;
}

int route_refresh_start(route_refresh_fn refresh, void *ctx, struct route_refresh **out)
{
	struct route_refresh *rr = calloc(1, sizeof(*rr));
	pthread_condattr_t attr;

	*out = NULL;
	if (!rr)
		return -ENOMEM;
	rr->refresh = refresh;
	rr->ctx = ctx;
	pthread_mutex_init(&rr->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&rr->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&rr->thread, NULL, route_refresh_main, rr) != 0) {
		pthread_cond_destroy(&rr->wake);
		pthread_mutex_destroy(&rr->lock);
		free(rr);
		return -EAGAIN;
	}
	*out = rr;
	return 0;
}

void route_refresh_stop(struct route_refresh *rr)
{
	if (!rr)
		return;
	pthread_mutex_lock(&rr->lock);
	rr->stop = true;
	pthread_cond_signal(&rr->wake);
	pthread_mutex_unlock(&rr->lock);
	pthread_join(rr->thread, NULL);
	pthread_cond_destroy(&rr->wake);
	pthread_mutex_destroy(&rr->lock);
	free(rr);
}

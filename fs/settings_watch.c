/* settings_watch.c: a thread that polls meta's cluster info. See
 * settings_watch.h.
 *
 * A call to meta has a short deadline (a refresh interval at most), so
 * stopping waits for at most that long; between calls the thread sleeps on
 * a condition variable that settings_watch_stop signals. */
#include "fs/settings_watch.h"

#include "cluster/clock.h"
#include "cluster/log.h"
#include "cluster/rpc.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

/* The deadline of one call, at most. */
#define SETTINGS_WATCH_CALL_MS 1000

struct settings_watch {
	struct meta_client *meta;
	int64_t refresh_ms;
	_Atomic uint64_t item_max_bytes;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;        /* CLOCK_MONOTONIC */
	bool stopping;              /* under lock */
};

static void settings_watch_refresh(struct settings_watch *watch)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__ClusterInfoRequest info = QUORUM__CLUSTER_INFO_REQUEST__INIT;
	Quorum__Response *response = NULL;
	int64_t call_ms = watch->refresh_ms < SETTINGS_WATCH_CALL_MS ? watch->refresh_ms :
			  SETTINGS_WATCH_CALL_MS;
	uint64_t item_max_bytes, before;

	request.op_case = QUORUM__REQUEST__OP_CLUSTER_INFO;
	request.cluster_info = &info;
	/* No answer: keep what we know, and ask again next time. */
	if (meta_client_call(watch->meta, &request, clock_monotonic_ms() + call_ms, &response,
			     NULL) < 0)
		return;
	item_max_bytes = response->cluster_info->item_max_bytes;
	quorum__response__free_unpacked(response, NULL);
	/* A limit beyond what a message can carry is not one a node applies either. */
	if (item_max_bytes == 0 || item_max_bytes > NET_MESSAGE_MAX_BYTES / 2)
		return;
	before = atomic_exchange(&watch->item_max_bytes, item_max_bytes);
	if (before != item_max_bytes)
		log_info("item size limit is now %" PRIu64 " bytes (was %" PRIu64 ")",
			 item_max_bytes, before);
}

static void *settings_watch_main(void *arg)
{
	struct settings_watch *watch = arg;
	struct timespec until;

	pthread_mutex_lock(&watch->lock);
	while (!watch->stopping) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += watch->refresh_ms / 1000;
		until.tv_nsec += (watch->refresh_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!watch->stopping &&
		       pthread_cond_timedwait(&watch->wake, &watch->lock, &until) != ETIMEDOUT)
			;
		if (watch->stopping)
			break;
		pthread_mutex_unlock(&watch->lock);
		settings_watch_refresh(watch);
		pthread_mutex_lock(&watch->lock);
	}
	pthread_mutex_unlock(&watch->lock);
	return NULL;
}

int settings_watch_start(struct meta_client *meta, uint64_t item_max_bytes, int64_t refresh_ms,
			 struct settings_watch **out)
{
	struct settings_watch *watch;
	pthread_condattr_t attr;
	int err;

	*out = NULL;
	if (!meta || refresh_ms < 1)
		return -EINVAL;
	watch = calloc(1, sizeof(*watch));
	if (!watch)
		return -ENOMEM;
	watch->meta = meta;
	watch->refresh_ms = refresh_ms;
	atomic_init(&watch->item_max_bytes, item_max_bytes);
	if (pthread_mutex_init(&watch->lock, NULL) != 0) {
		free(watch);
		return -ENOMEM;
	}
	err = pthread_condattr_init(&attr);
	if (err == 0) {
		err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		if (err == 0)
			err = pthread_cond_init(&watch->wake, &attr);
		pthread_condattr_destroy(&attr);
	}
	if (err != 0) {
		pthread_mutex_destroy(&watch->lock);
		free(watch);
		return -ENOMEM;
	}
	err = pthread_create(&watch->thread, NULL, settings_watch_main, watch);
	if (err != 0) {
		pthread_cond_destroy(&watch->wake);
		pthread_mutex_destroy(&watch->lock);
		free(watch);
		return -EAGAIN;
	}
	*out = watch;
	return 0;
}

void settings_watch_stop(struct settings_watch *watch)
{
	if (!watch)
		return;
	pthread_mutex_lock(&watch->lock);
	watch->stopping = true;
	pthread_cond_signal(&watch->wake);
	pthread_mutex_unlock(&watch->lock);
	pthread_join(watch->thread, NULL);
	pthread_cond_destroy(&watch->wake);
	pthread_mutex_destroy(&watch->lock);
	free(watch);
}

uint64_t settings_watch_item_max_bytes(const struct settings_watch *watch)
{
	return atomic_load(&((struct settings_watch *)watch)->item_max_bytes);
}

/* periodic.c: see periodic.h. */
#include "cluster/periodic.h"

#include "cluster/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct periodic {
	int64_t period_ms;
	periodic_fn fn;
	void *ctx;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* on the monotonic clock */
	bool stop;
};

static void *periodic_main(void *arg)
{
	struct periodic *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		int64_t deadline_ms = clock_monotonic_ms() + p->period_ms;
		struct timespec until = { .tv_sec = deadline_ms / 1000,
					  .tv_nsec = (deadline_ms % 1000) * 1000000L };

		while (!p->stop && clock_monotonic_ms() < deadline_ms)
			pthread_cond_timedwait(&p->wake, &p->lock, &until);
		if (p->stop)
			break;
		pthread_mutex_unlock(&p->lock);
		p->fn(p->ctx);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int periodic_start(int64_t period_ms, periodic_fn fn, void *ctx, struct periodic **out)
{
	struct periodic *p;
	pthread_condattr_t attr;
	int err;

	*out = NULL;
	if (period_ms < 1 || !fn)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->period_ms = period_ms;
	p->fn = fn;
	p->ctx = ctx;
	err = pthread_condattr_init(&attr);
	if (err == 0) {
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		err = pthread_cond_init(&p->wake, &attr);
		pthread_condattr_destroy(&attr);
	}
	if (err) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	if (pthread_create(&p->thread, NULL, periodic_main, p) != 0) {
		pthread_cond_destroy(&p->wake);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

void periodic_stop(struct periodic *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

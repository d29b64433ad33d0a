/* clock.c: POSIX clocks. */
#include "cluster/clock.h"

#include <errno.h>
#include <time.h>

int64_t clock_monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t clock_remaining_ms(int64_t deadline_ms)
{
	int64_t left_ms = deadline_ms - clock_monotonic_ms();
	return left_ms > 0 ? left_ms : 0;
}

void clock_sleep_ms(int64_t duration_ms)
{
	struct timespec ts = { .tv_sec = duration_ms / 1000,
			       .tv_nsec = (duration_ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

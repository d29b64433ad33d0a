/* clock.h: the two clocks the processes read. Deadlines use the monotonic
 * clock; item times (mtime, ctime) use the real-time clock. */
#ifndef QUORUM_CLOCK_H
#define QUORUM_CLOCK_H

#include <stdint.h>

int64_t clock_monotonic_ms(void);
int64_t clock_realtime_ns(void);

/* Milliseconds left until deadline_ms (monotonic), never negative. */
int64_t clock_remaining_ms(int64_t deadline_ms);

/* Sleeps for duration_ms, or less when the deadline comes first. */
void clock_sleep_ms(int64_t duration_ms);

#endif

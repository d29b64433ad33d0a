/* periodic.h: a thread that calls a function every period, until stopped: the background
 * rounds of meta (autosplit, replica moves). Stopping wakes the thread at once and waits
 * for the call under way. */
#ifndef QUORUM_PERIODIC_H
#define QUORUM_PERIODIC_H

#include <stdint.h>

struct periodic;

typedef void (*periodic_fn)(void *ctx);

/* Starts the thread; fn(ctx) runs every period_ms (the first time one period from now).
 * Returns 0, -EINVAL, -ENOMEM. */
int periodic_start(int64_t period_ms, periodic_fn fn, void *ctx, struct periodic **out);

/* Stops the thread and frees; NULL is a no-op. */
void periodic_stop(struct periodic *periodic);

#endif

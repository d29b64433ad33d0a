/* route_refresh.h: the constant-work half of the router's table cache.
 *
 * DynamoDB's lesson: a routing cache whose misses go to the metadata service makes
 * meta's load follow the miss rate, which jumps from near nothing to everything when
 * the cache goes cold (a restart, a failover), and can take meta down. So every lookup
 * of a table, hit or miss, also asks for an asynchronous refresh of that table here;
 * a thread sends them to meta in rounds, one request per distinct table asked for
 * since the last round. Meta's load follows the traffic, whatever the hit rate; a hit
 * never waits for meta, and while meta does not answer the cache serves on as it is.
 *
 * Thread-safe. */
#ifndef QUORUM_FS_ROUTE_REFRESH_H
#define QUORUM_FS_ROUTE_REFRESH_H

#include <stdint.h>

/* A round at most this often. */
#define ROUTE_REFRESH_ROUND_MS 200
/* Tables asked for in one round at most (more wait for the next). */
#define ROUTE_REFRESH_BATCH_MAX 256

struct route_refresh;

/* Refreshes one table (by name) from meta; runs on the refresher's thread. */
typedef void (*route_refresh_fn)(void *ctx, const char *name);

/* Starts the thread; ctx must outlive it. -ENOMEM, -EAGAIN (no thread). */
int route_refresh_start(route_refresh_fn refresh, void *ctx, struct route_refresh **out);
/* Stops the thread (after its current call) and frees. */
void route_refresh_stop(struct route_refresh *rr);

/* Asks for a refresh of table name in the next round (once per round however often it
 * is asked). Never blocks on meta. */
void route_refresh_request(struct route_refresh *rr, const char *name);

#endif

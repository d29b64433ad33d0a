/* put_latency.c: measures the replicated write path end to end. Starts a local cluster
 * (fs/local.c: quorum-meta and three quorumd under a temporary data directory), creates a
 * table through the router (fs/router.h), then puts and gets small items with 1 and with 16
 * threads and prints p50/p99 latency and throughput of each.
 *
 * Built by make (never run by make check). From the build directory:
 *   PATH=$PWD/meta:$PWD/cluster:$PATH contrib/bench/put_latency [ops_per_thread] [body_bytes]
 * QUORUM_BENCH_PAUSE_S=N pauses N seconds after the warm-up (to attach strace or perf to the
 * nodes); QUORUM_BENCH_KEEP=1 keeps the data directory and the nodes' logs. */
#define _GNU_SOURCE
#include "cluster/clock.h"
#include "fs/local.h"
#include "fs/router.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BENCH_THREADS_MAX 16

struct bench_run {
	struct router *router;
	const struct router_table *table;
	int thread_index;
	int ops;
	bool put;
	size_t body_bytes;
	int64_t *latency_us;	/* ops entries */
	int failures;
};

static int64_t bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *bench_thread(void *arg)
{
	struct bench_run *run = arg;
	char key[64], body[4096];
	struct item_attr attr = { .mode = 0100644 };

	memset(body, 'x', sizeof(body));
	for (int i = 0; i < run->ops; i++) {
		int64_t start_us;
		int err;

		snprintf(key, sizeof(key), "t%d-k%d", run->thread_index, i);
		start_us = bench_now_us();
		if (run->put) {
			attr.mtime_ns = attr.ctime_ns = clock_realtime_ns();
			err = router_put_item(run->router, run->table, key, &attr, body,
					      run->body_bytes, NULL, 0, ROUTER_COND_NONE, 0, NULL);
		} else {
			struct router_item item;

			err = router_get_item(run->router, run->table, key, false, &item);
			if (!err)
				router_item_free(&item);
		}
		run->latency_us[i] = bench_now_us() - start_us;
		if (err)
			run->failures++;
	}
	return NULL;
}

static int bench_compare(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int bench_phase(struct router *router, const struct router_table *table, int threads,
		       int ops, bool put, size_t body_bytes)
{
	struct bench_run runs[BENCH_THREADS_MAX];
	pthread_t ids[BENCH_THREADS_MAX];
	int64_t *all, start_us, elapsed_us;
	int failures = 0, total = threads * ops;

	all = calloc((size_t)total, sizeof(*all));
	if (!all)
		return -ENOMEM;
	start_us = bench_now_us();
	for (int t = 0; t < threads; t++) {
		runs[t] = (struct bench_run){ .router = router, .table = table, .thread_index = t,
					      .ops = ops, .put = put, .body_bytes = body_bytes,
					      .latency_us = all + (size_t)t * ops };
		if (pthread_create(&ids[t], NULL, bench_thread, &runs[t]) != 0) {
			threads = t;
			break;
		}
	}
	for (int t = 0; t < threads; t++) {
		pthread_join(ids[t], NULL);
		failures += runs[t].failures;
	}
	elapsed_us = bench_now_us() - start_us;
	total = threads * ops;
	qsort(all, (size_t)total, sizeof(*all), bench_compare);
	printf("%-3s threads=%-2d ops=%-6d p50=%7.3f ms p99=%7.3f ms max=%7.3f ms "
	       "throughput=%8.1f ops/s failures=%d\n",
	       put ? "put" : "get", threads, total, all[total / 2] / 1000.0,
	       all[(size_t)total * 99 / 100] / 1000.0, all[total - 1] / 1000.0,
	       total * 1e6 / (double)(elapsed_us ? elapsed_us : 1), failures);
	fflush(stdout);
	free(all);
	return failures ? -EIO : 0;
}

static int bench_remove_entry(const char *path, const struct stat *st, int type,
			      struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

int main(int argc, char **argv)
{
	int ops = argc > 1 ? atoi(argv[1]) : 500;
	size_t body_bytes = argc > 2 ? (size_t)atoi(argv[2]) : 100;
	char data_dir[] = "/tmp/put_latency.XXXXXX", why[LOCAL_WHY_BYTES];
	struct router_options options = { .timeout_ms = 30000 };
	struct local_cluster *cluster = NULL;
	struct router *router = NULL;
	struct router_table table;
	int err;

	if (ops <= 0 || body_bytes > 4096) {
		fprintf(stderr, "usage: %s [ops_per_thread] [body_bytes <= 4096]\n", argv[0]);
		return 2;
	}
	if (!mkdtemp(data_dir)) {
		perror("mkdtemp");
		return 1;
	}
	err = local_start(data_dir, 30000, &cluster, why);
	if (err) {
		fprintf(stderr, "local_start: %s\n", why);
		goto out;
	}
	options.meta_url = local_meta_url(cluster);
	err = router_new(&options, &router);
	if (err) {
		fprintf(stderr, "router_new: %s\n", strerror(-err));
		goto out;
	}
	err = router_create_table(router, "bench", 0755, 0, 0, &table);
	if (err) {
		fprintf(stderr, "create table: %s\n", strerror(-err));
		goto out;
	}
	/* Warm up: the first puts wait for the groups' elections. */
	err = bench_phase(router, &table, 1, 20, true, body_bytes);
	if (getenv("QUORUM_BENCH_PAUSE_S")) {
		/* Time to attach strace or perf to the nodes (pids in DATADIR/cluster.json). */
		printf("pausing; data in %s\n", data_dir);
		fflush(stdout);
		sleep((unsigned)atoi(getenv("QUORUM_BENCH_PAUSE_S")));
	}
	if (!err)
		err = bench_phase(router, &table, 1, ops, true, body_bytes);
	if (!err)
		err = bench_phase(router, &table, 1, ops, false, body_bytes);
	if (!err)
		err = bench_phase(router, &table, 16, ops, true, body_bytes);
	if (!err)
		err = bench_phase(router, &table, 16, ops, false, body_bytes);
	printf("node logs in %s (kept when QUORUM_BENCH_KEEP is set)\n", data_dir);
out:
	router_free(router);
	local_free(cluster);
	if (!getenv("QUORUM_BENCH_KEEP"))
		nftw(data_dir, bench_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return err ? 1 : 0;
}

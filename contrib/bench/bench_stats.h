/* bench_stats.h: the figures both load generators report: latency percentiles (nearest
 * rank) and the host's CPU use (from /proc/stat). */
#ifndef QUORUM_BENCH_STATS_H
#define QUORUM_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Sorts count latencies in nanoseconds, ascending. */
void bench_sort_ns(int64_t *ns, size_t count);

/* Nearest rank: the smallest sample with at least q of them at or below it, in ms; 0 when
 * there is none. sorted must be sorted (bench_sort_ns). */
double bench_percentile_ms(const int64_t *sorted, size_t count, double q);

/* The host's CPU time since boot, in ticks: busy (less idle and iowait) and total. Both 0
 * when /proc/stat cannot be read. */
void bench_host_cpu(unsigned long long *busy, unsigned long long *total);

#endif

/* bench_stats.c: see bench_stats.h. */
#include "contrib/bench/bench_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int bench_compare_ns(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

void bench_sort_ns(int64_t *ns, size_t count)
{
	qsort(ns, count, sizeof(*ns), bench_compare_ns);
}

double bench_percentile_ms(const int64_t *sorted, size_t count, double q)
{
	size_t rank;

	if (!count)
		return 0;
	rank = (size_t)ceil(q * (double)count);
	rank = rank < 1 ? 1 : rank > count ? count : rank;
	return (double)sorted[rank - 1] / 1e6;
}

void bench_host_cpu(unsigned long long *busy, unsigned long long *total)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	*busy = *total = 0;
	if (!f)
		return;
	/* user nice system idle iowait irq softirq steal; guest is counted in user */
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) >= 4) {
		for (int i = 0; i < 8; i++)
			*total += v[i];
		*busy = *total - v[3] - v[4];
	}
	fclose(f);
}

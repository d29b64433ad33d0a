/* kv_bench.c: the key-value load generator of issue 6. Talks to a cluster the way the
 * mount's router does (fs/router.h: routing cache, leader hints, one deadline per call),
 * without FUSE: N client threads each keep one request in flight for a fixed time, putting
 * or getting items of a fixed size with keys drawn at random from a fixed key space, and
 * the tool reports throughput, p50/p99/p999 latency and the CPU used by itself, by the
 * cluster's processes and by the whole host, as a table and as JSON.
 *
 * The cluster is one of: a running `quorumfs --local DATADIR` (-d DATADIR: meta's URL and
 * the processes' pids come from DATADIR/cluster.json), any cluster (--meta URL), or, by
 * default, one the tool starts itself (fs/local.c: quorum-meta and three quorumd in a
 * temporary directory under --local-parent) and stops at the end.
 *
 * The measurement follows the etcd load generator used for the peer (etcd_bench.go next
 * to this file): each phase runs --warmup seconds unmeasured, then --duration seconds
 * measured; a request counts when it started inside the measured window; gets run over a
 * key space in which every key was put first. Not run by make check: tests do not time. */
#define _GNU_SOURCE
#include "cluster/clock.h"
#include "contrib/bench/bench_stats.h"
#include "fs/local.h"
#include "fs/router.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KV_CLIENTS_MAX 256
#define KV_CLIENT_COUNTS_MAX 8
#define KV_PIDS_MAX 16
#define KV_VALUE_MAX_BYTES (1024 * 1024)
#define KV_KEY_BYTES 32

enum kv_op {
	KV_OP_PUT,
	KV_OP_GET,           /* strong: at the partition's leader */
	KV_OP_GET_EVENTUAL,  /* at any replica, as -o consistency=eventual */
	KV_OP_COUNT,
};

static const char *const kv_op_names[KV_OP_COUNT] = { "put", "get", "get-eventual" };

/* Set by SIGINT or SIGTERM: the clients stop, and a cluster of our own is stopped and its
 * directory removed as at a normal end. */
static volatile sig_atomic_t kv_stop_requested;

static void kv_on_signal(int signo)
{
	(void)signo;
	kv_stop_requested = 1;
}

struct kv_options {
	const char *meta_url;
	const char *data_dir;        /* -d: a running quorumfs --local */
	const char *local_parent;    /* where a cluster of our own keeps its state */
	const char *table;
	const char *json_path;       /* NULL: none; "-": stdout instead of the table */
	const char *label;           /* "system" in the JSON */
	double duration_s, warmup_s, pause_s;
	int clients[KV_CLIENT_COUNTS_MAX];
	int client_count;
	bool ops[KV_OP_COUNT];
	size_t value_bytes;
	int keys;
	int64_t timeout_ms;
	bool keep;
	pid_t pids[KV_PIDS_MAX];
	int pid_count;
};

/* One thread's share of a phase. */
struct kv_client {
	struct kv_phase *phase;
	int index;
	uint64_t rng;
	int64_t *latency_ns;        /* requests started in the measured window */
	size_t latency_count, latency_capacity;
	uint64_t errors, wrong_sizes;
	int first_error;            /* negative errno of the first failure, 0 */
	bool out_of_memory;
	pthread_t thread;
};

struct kv_phase {
	struct router *router;
	const struct router_table *table;
	enum kv_op op;
	const char *value;
	size_t value_bytes;
	int keys;
	/* The clients wait for go, so that none starts before all exist. */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool go;
	int64_t measure_from_ns, deadline_ns;   /* CLOCK_MONOTONIC, set before go */
};

/* CPU seconds of this process, of the cluster's processes and jiffies of the host. */
struct kv_cpu {
	int64_t wall_ns;
	double self_s, servers_s;
	unsigned long long host_busy, host_total;
};

struct kv_result {
	enum kv_op op;
	int clients;
	double seconds;
	uint64_t requests, errors;
	int first_error;
	double rate, p50_ms, p99_ms, p999_ms, max_ms;
	double client_cpu_pct, servers_cpu_pct, host_cpu_pct;
};

static int64_t kv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* splitmix64: a cheap per-thread generator; uniformity is all a key choice needs. */
static uint64_t kv_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void kv_key(char *key, int index)
{
	snprintf(key, KV_KEY_BYTES, "k%08d", index);
}

static int kv_put(struct router *router, const struct router_table *table, const char *key,
		  const void *value, size_t value_bytes)
{
	struct item_attr attr = { .mode = S_IFREG | 0644, .uid = getuid(), .gid = getgid() };

	attr.mtime_ns = attr.ctime_ns = clock_realtime_ns();
	return router_put_item(router, table, key, &attr, value, value_bytes, NULL, 0,
			       ROUTER_COND_NONE, 0, NULL);
}

static int kv_client_record(struct kv_client *client, int64_t latency_ns)
{
	if (client->latency_count == client->latency_capacity) {
		size_t capacity = client->latency_capacity ? client->latency_capacity * 2 : 4096;
		int64_t *grown = realloc(client->latency_ns, capacity * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		client->latency_ns = grown;
		client->latency_capacity = capacity;
	}
	client->latency_ns[client->latency_count++] = latency_ns;
	return 0;
}

static void *kv_client_run(void *arg)
{
	struct kv_client *client = arg;
	struct kv_phase *phase = client->phase;
	char key[KV_KEY_BYTES];

	pthread_mutex_lock(&phase->lock);
	while (!phase->go)
		pthread_cond_wait(&phase->wake, &phase->lock);
	pthread_mutex_unlock(&phase->lock);
	for (;;) {
		int64_t start_ns = kv_now_ns(), end_ns;
		size_t got_bytes = 0;
		int err;

		if (start_ns >= phase->deadline_ns || kv_stop_requested)
			break;
		kv_key(key, (int)(kv_random(&client->rng) % (uint64_t)phase->keys));
		if (phase->op == KV_OP_PUT) {
			err = kv_put(phase->router, phase->table, key, phase->value,
				     phase->value_bytes);
		} else {
			struct router_item item;

			err = router_get_item(phase->router, phase->table, key, false, &item);
			if (!err) {
				got_bytes = item.body_bytes;
				router_item_free(&item);
			}
		}
		end_ns = kv_now_ns();
		if (start_ns < phase->measure_from_ns)
			continue;
		if (!err && phase->op != KV_OP_PUT && got_bytes != phase->value_bytes) {
			client->wrong_sizes++;
			err = -EBADMSG;
		}
		if (err) {
			if (!client->first_error)
				client->first_error = err;
			client->errors++;
			continue;
		}
		if (kv_client_record(client, end_ns - start_ns)) {
			client->out_of_memory = true;
			break;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ CPU */

/* utime + stime of pid in seconds; 0 when it is gone. */
static double kv_pid_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *close_paren;
	unsigned long long utime, stime;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: fields start after the last ')'. */
	close_paren = strrchr(buf, ')');
	if (!close_paren || sscanf(close_paren + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
				   "%llu %llu", &utime, &stime) != 2)
		return 0;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static void kv_cpu_sample(const struct kv_options *options, struct kv_cpu *out)
{
	struct rusage usage;

	memset(out, 0, sizeof(*out));
	out->wall_ns = kv_now_ns();
	if (getrusage(RUSAGE_SELF, &usage) == 0)
		out->self_s = (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
			      (double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
	for (int i = 0; i < options->pid_count; i++)
		out->servers_s += kv_pid_cpu_s(options->pids[i]);
	bench_host_cpu(&out->host_busy, &out->host_total);
}

/* ---------------------------------------------------------------- phases */

static void kv_sleep_until_ns(int64_t when_ns)
{
	int64_t left_ns = when_ns - kv_now_ns();

	if (left_ns > 0) {
		struct timespec ts = { .tv_sec = left_ns / 1000000000,
				       .tv_nsec = left_ns % 1000000000 };

		while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !kv_stop_requested)
			;
	}
}

static int kv_phase_run(const struct kv_options *options, struct router *router,
			const struct router_table *table, enum kv_op op, int clients,
			const char *value, struct kv_result *result)
{
	struct kv_phase phase = { .router = router, .table = table, .op = op, .value = value,
				  .value_bytes = options->value_bytes, .keys = options->keys };
	struct kv_client *all;
	struct kv_cpu cpu0, cpu1;
	int64_t *merged = NULL, end_ns;
	size_t total = 0;
	int started = 0, err = 0;

	all = calloc((size_t)clients, sizeof(*all));
	if (!all)
		return -ENOMEM;
	pthread_mutex_init(&phase.lock, NULL);
	pthread_cond_init(&phase.wake, NULL);
	for (; started < clients; started++) {
		all[started] = (struct kv_client){ .phase = &phase, .index = started,
						   .rng = (uint64_t)started * 7919 + op + 1 };
		err = -pthread_create(&all[started].thread, NULL, kv_client_run, &all[started]);
		if (err)
			break;
	}
	pthread_mutex_lock(&phase.lock);
	phase.measure_from_ns = kv_now_ns() + (int64_t)(options->warmup_s * 1e9);
	/* A thread that could not start: the others stop at once. */
	phase.deadline_ns = err ? 0 : phase.measure_from_ns + (int64_t)(options->duration_s * 1e9);
	phase.go = true;
	pthread_cond_broadcast(&phase.wake);
	pthread_mutex_unlock(&phase.lock);
	kv_sleep_until_ns(phase.measure_from_ns);
	kv_cpu_sample(options, &cpu0);
	for (int i = 0; i < started; i++)
		pthread_join(all[i].thread, NULL);
	end_ns = kv_now_ns();
	kv_cpu_sample(options, &cpu1);
	pthread_cond_destroy(&phase.wake);
	pthread_mutex_destroy(&phase.lock);
	if (err)
		goto out;

	memset(result, 0, sizeof(*result));
	result->op = op;
	result->clients = clients;
	for (int i = 0; i < clients; i++) {
		total += all[i].latency_count;
		result->errors += all[i].errors;
		if (!result->first_error)
			result->first_error = all[i].first_error;
		if (all[i].out_of_memory)
			err = -ENOMEM;
	}
	if (err)
		goto out;
	merged = malloc((total ? total : 1) * sizeof(*merged));
	if (!merged) {
		err = -ENOMEM;
		goto out;
	}
	total = 0;
	for (int i = 0; i < clients; i++) {
		memcpy(merged + total, all[i].latency_ns, all[i].latency_count * sizeof(*merged));
		total += all[i].latency_count;
	}
	bench_sort_ns(merged, total);
	result->seconds = (double)(end_ns - phase.measure_from_ns) / 1e9;
	result->requests = total;
	result->rate = result->seconds > 0 ? (double)total / result->seconds : 0;
	result->p50_ms = bench_percentile_ms(merged, total, 0.50);
	result->p99_ms = bench_percentile_ms(merged, total, 0.99);
	result->p999_ms = bench_percentile_ms(merged, total, 0.999);
	result->max_ms = total ? (double)merged[total - 1] / 1e6 : 0;
	{
		double wall_s = (double)(cpu1.wall_ns - cpu0.wall_ns) / 1e9;
		unsigned long long host_total = cpu1.host_total - cpu0.host_total;

		if (wall_s > 0) {
			result->client_cpu_pct = 100 * (cpu1.self_s - cpu0.self_s) / wall_s;
			result->servers_cpu_pct = 100 * (cpu1.servers_s - cpu0.servers_s) / wall_s;
		}
		if (host_total)
			result->host_cpu_pct = 100.0 * (double)(cpu1.host_busy - cpu0.host_busy) /
					       (double)host_total;
	}
out:
	for (int i = 0; i < clients; i++)
		free(all[i].latency_ns);
	free(all);
	free(merged);
	return err;
}

struct kv_fill {
	const struct kv_options *options;
	struct router *router;
	const struct router_table *table;
	const char *value;
	int index, stride;
	int err;
	pthread_t thread;
};

static void *kv_fill_run(void *arg)
{
	struct kv_fill *fill = arg;
	char key[KV_KEY_BYTES];

	for (int i = fill->index; i < fill->options->keys && !fill->err; i += fill->stride) {
		if (kv_stop_requested) {
			fill->err = -EINTR;
			break;
		}
		kv_key(key, i);
		fill->err = kv_put(fill->router, fill->table, key, fill->value,
				   fill->options->value_bytes);
	}
	return NULL;
}

/* Puts every key of the key space once, so that every get finds its item. */
static int kv_prefill(const struct kv_options *options, struct router *router,
		      const struct router_table *table, const char *value, int threads)
{
	struct kv_fill fills[KV_CLIENTS_MAX];
	int started = 0, err = 0;

	for (; started < threads; started++) {
		fills[started] = (struct kv_fill){ .options = options, .router = router,
						   .table = table, .value = value,
						   .index = started, .stride = threads };
		err = -pthread_create(&fills[started].thread, NULL, kv_fill_run, &fills[started]);
		if (err)
			break;
	}
	/* A thread that could not start leaves its keys out: the run fails below. */
	for (int i = 0; i < started; i++) {
		pthread_join(fills[i].thread, NULL);
		if (!err)
			err = fills[i].err;
	}
	return err;
}

/* ---------------------------------------------------------------- output */

static void kv_print_header(const struct kv_options *options, const char *meta_url)
{
	printf("# kv_bench: %s at %s, table %s, %zu-byte values, %d keys, %.1f s measured after "
	       "%.1f s warm-up per phase\n", options->label, meta_url, options->table,
	       options->value_bytes, options->keys, options->duration_s, options->warmup_s);
	printf("%-13s %7s %8s %9s %7s %10s %9s %9s %9s %9s %18s\n", "op", "clients", "seconds",
	       "requests", "errors", "req/s", "p50 ms", "p99 ms", "p999 ms", "max ms",
	       "cpu % cli/srv/host");
	fflush(stdout);
}

static void kv_print_row(const struct kv_result *r)
{
	char cpu[40];

	snprintf(cpu, sizeof(cpu), "%.0f/%.0f/%.0f", r->client_cpu_pct, r->servers_cpu_pct,
		 r->host_cpu_pct);
	printf("%-13s %7d %8.2f %9" PRIu64 " %7" PRIu64 " %10.1f %9.3f %9.3f %9.3f %9.3f %18s\n",
	       kv_op_names[r->op], r->clients, r->seconds, r->requests, r->errors, r->rate,
	       r->p50_ms, r->p99_ms, r->p999_ms, r->max_ms, cpu);
	if (r->errors)
		printf("  first error: %s\n", strerror(-r->first_error));
	fflush(stdout);
}

static json_t *kv_result_json(const struct kv_options *options, const struct kv_result *r)
{
	return json_pack("{s:s, s:i, s:i, s:f, s:I, s:I, s:s?, s:f, s:f, s:f, s:f, s:f, s:f, "
			 "s:f, s:f}",
			 "op", kv_op_names[r->op], "clients", r->clients,
			 "val_size", (int)options->value_bytes, "seconds", r->seconds,
			 "requests", (json_int_t)r->requests, "errors", (json_int_t)r->errors,
			 "first_error", r->errors ? strerror(-r->first_error) : NULL,
			 "rate", r->rate, "p50_ms", r->p50_ms, "p99_ms", r->p99_ms,
			 "p999_ms", r->p999_ms, "max_ms", r->max_ms,
			 "client_cpu_pct", r->client_cpu_pct,
			 "servers_cpu_pct", r->servers_cpu_pct, "host_cpu_pct", r->host_cpu_pct);
}

/* The JSON report: what ran, where and when (with the host's load at the start, since
 * a figure from a busy machine is not one to quote), and one object per phase. */
static int kv_write_json(const struct kv_options *options, const char *meta_url,
			 double loadavg_1m, const char *started_at, bool complete,
			 const struct kv_result *results, int result_count)
{
	char host[256] = "?";
	json_t *root, *list;
	int err = 0;

	gethostname(host, sizeof(host) - 1);
	list = json_array();
	root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:f, s:i, s:i, s:f, s:f}",
			 "tool", "kv_bench", "system", options->label, "meta", meta_url,
			 "time", started_at, "host", host, "cpus", (int)sysconf(_SC_NPROCESSORS_ONLN),
			 "loadavg_1m_at_start", loadavg_1m, "val_size", (int)options->value_bytes,
			 "keys", options->keys, "duration_s", options->duration_s,
			 "warmup_s", options->warmup_s);
	if (!root || !list || json_object_set_new(root, "complete", json_boolean(complete)))
		goto nomem;
	for (int i = 0; i < result_count; i++) {
		json_t *one = kv_result_json(options, &results[i]);

		if (!one || json_array_append_new(list, one))
			goto nomem;
	}
	if (json_object_set(root, "results", list))
		goto nomem;
	if (strcmp(options->json_path, "-") == 0) {
		if (json_dumpf(root, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(7)) || fputc('\n', stdout) == EOF)
			err = -EIO;
	} else if (json_dump_file(root, options->json_path, JSON_INDENT(1) | JSON_REAL_PRECISION(7))) {
		err = errno ? -errno : -EIO;
		fprintf(stderr, "kv_bench: cannot write %s\n", options->json_path);
	}
	json_decref(list);
	json_decref(root);
	return err;
nomem:
	json_decref(list);
	json_decref(root);
	return -ENOMEM;
}

/* ----------------------------------------------------------- the cluster */

/* meta's URL (malloc'd) and the pids of meta and the nodes from DATADIR/cluster.json. */
static int kv_read_cluster_file(const char *data_dir, struct kv_options *options, char **url)
{
	char path[PATH_MAX];
	json_error_t error;
	json_t *root, *meta, *nodes, *node;
	size_t i;

	if ((size_t)snprintf(path, sizeof(path), "%s/cluster.json", data_dir) >= sizeof(path))
		return -ENAMETOOLONG;
	root = json_load_file(path, 0, &error);
	if (!root) {
		fprintf(stderr, "kv_bench: cannot read %s: %s\n", path, error.text);
		return -ENOENT;
	}
	meta = json_object_get(root, "meta");
	if (!json_is_string(meta)) {
		fprintf(stderr, "kv_bench: %s has no \"meta\" address\n", path);
		json_decref(root);
		return -EINVAL;
	}
	*url = strdup(json_string_value(meta));
	if (options->pid_count == 0) {
		json_int_t pid = json_integer_value(json_object_get(root, "meta_pid"));

		if (pid > 0)
			options->pids[options->pid_count++] = (pid_t)pid;
		nodes = json_object_get(root, "nodes");
		json_array_foreach(nodes, i, node) {
			pid = json_integer_value(json_object_get(node, "pid"));
			if (pid > 0 && options->pid_count < KV_PIDS_MAX)
				options->pids[options->pid_count++] = (pid_t)pid;
		}
	}
	json_decref(root);
	return *url ? 0 : -ENOMEM;
}

/* In the build tree quorum-meta and quorumd sit in meta/ and cluster/, next to contrib/:
 * put them on PATH so that local_start finds them (an installed copy is found anyway). */
static void kv_add_build_tree_to_path(void)
{
	char self[PATH_MAX], *slash, *path = NULL;
	const char *old = getenv("PATH");
	ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (length <= 0)
		return;
	self[length] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return;
	*slash = '\0';
	if (asprintf(&path, "%s/../../meta:%s/../../cluster:%s", self, self,
		     old ? old : "/usr/local/bin:/usr/bin:/bin") < 0)
		return;
	setenv("PATH", path, 1);
	free(path);
}

static int kv_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* The table to use: found, or created (retried while the nodes register). */
static int kv_open_table(struct router *router, const char *name, struct router_table *out)
{
	int64_t deadline_ms = clock_monotonic_ms() + 30000;
	int err;

	for (;;) {
		err = router_get_table(router, name, out);
		if (err != -ENOENT)
			return err;
		err = router_create_table(router, name, 0755, getuid(), getgid(), out);
		if (err == -EEXIST)
			continue;
		if (err != -EAGAIN || clock_monotonic_ms() > deadline_ms)
			return err;
		clock_sleep_ms(200);
	}
}

/* ------------------------------------------------------------------ main */

static void kv_usage(FILE *out)
{
	fprintf(out,
"usage: kv_bench [OPTIONS]\n"
"Puts and gets items through the router (fs/router.h) with N client threads for a fixed\n"
"time, and prints throughput and p50/p99/p999 latency per phase.\n"
"\n"
"The cluster (default: one started here, in a temporary directory, stopped at the end):\n"
"  -d, --data DIR        a running `quorumfs --local DIR` (meta and pids from cluster.json)\n"
"  -m, --meta URL        any cluster's quorum-meta (tcp://HOST:PORT)\n"
"      --pids LIST       pids whose CPU to report as the servers' (comma-separated)\n"
"      --local-parent D  where a cluster of our own keeps its state (default /var/tmp)\n"
"      --keep            keep that directory (with the nodes' logs) at the end\n"
"The load:\n"
"  -c, --clients LIST    client threads per phase, comma-separated (default 1,64; max %d)\n"
"  -o, --ops LIST        put, get, get-eventual, comma-separated (default put,get)\n"
"  -t, --duration S      measured seconds per phase (default 10)\n"
"  -w, --warmup S        unmeasured seconds before each (default 1)\n"
"  -s, --value-bytes N   item body size (default 1024)\n"
"  -k, --keys N          key space k00000000..: keys drawn at random (default 10000)\n"
"  -T, --table NAME      table to use, created when missing (default kvbench)\n"
"      --timeout-ms N    deadline of one request (default 30000)\n"
"      --pause S         pause S seconds after the first warm-up (attach perf, strace)\n"
"Output:\n"
"  -j, --json FILE       also write the results as JSON to FILE; '-': JSON on stdout only\n"
"  -l, --label NAME      the \"system\" field of the JSON (default quorumfs)\n"
"  -h, --help\n", KV_CLIENTS_MAX);
}

static int kv_parse_list(const char *text, struct kv_options *options, bool clients)
{
	char *copy = strdup(text), *saveptr = NULL;
	int err = 0;

	if (!copy)
		return -ENOMEM;
	if (clients)
		options->client_count = 0;
	else
		memset(options->ops, 0, sizeof(options->ops));
	for (char *item = strtok_r(copy, ",", &saveptr); item && !err;
	     item = strtok_r(NULL, ",", &saveptr)) {
		if (clients) {
			char *end;
			long n = strtol(item, &end, 10);

			if (*end || n < 1 || n > KV_CLIENTS_MAX ||
			    options->client_count == KV_CLIENT_COUNTS_MAX)
				err = -EINVAL;
			else
				options->clients[options->client_count++] = (int)n;
			continue;
		}
		int op = 0;

		while (op < KV_OP_COUNT && strcmp(item, kv_op_names[op]) != 0)
			op++;
		if (op == KV_OP_COUNT)
			err = -EINVAL;
		else
			options->ops[op] = true;
	}
	free(copy);
	if (!err && clients && options->client_count == 0)
		err = -EINVAL;
	return err;
}

static int kv_parse_pids(const char *text, struct kv_options *options)
{
	char *copy = strdup(text), *saveptr = NULL;
	int err = 0;

	if (!copy)
		return -ENOMEM;
	for (char *item = strtok_r(copy, ",", &saveptr); item && !err;
	     item = strtok_r(NULL, ",", &saveptr)) {
		char *end;
		long pid = strtol(item, &end, 10);

		if (*end || pid < 1 || pid > INT_MAX || options->pid_count == KV_PIDS_MAX)
			err = -EINVAL;
		else
			options->pids[options->pid_count++] = (pid_t)pid;
	}
	free(copy);
	return err;
}

static int kv_parse_seconds(const char *text, double min, double *out)
{
	char *end;
	double v = strtod(text, &end);

	if (*end || !(v >= min) || v > 86400)
		return -EINVAL;
	*out = v;
	return 0;
}

static int kv_parse_long(const char *text, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || *end || !*text || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* 0, 1 for --help, or 2 for a usage error (printed). */
static int kv_parse(int argc, char **argv, struct kv_options *options)
{
	enum { OPT_PIDS = 256, OPT_LOCAL_PARENT, OPT_KEEP, OPT_TIMEOUT, OPT_PAUSE };
	static const struct option longs[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "meta", required_argument, NULL, 'm' },
		{ "pids", required_argument, NULL, OPT_PIDS },
		{ "local-parent", required_argument, NULL, OPT_LOCAL_PARENT },
		{ "keep", no_argument, NULL, OPT_KEEP },
		{ "clients", required_argument, NULL, 'c' },
		{ "ops", required_argument, NULL, 'o' },
		{ "duration", required_argument, NULL, 't' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "value-bytes", required_argument, NULL, 's' },
		{ "keys", required_argument, NULL, 'k' },
		{ "table", required_argument, NULL, 'T' },
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
		{ "pause", required_argument, NULL, OPT_PAUSE },
		{ "json", required_argument, NULL, 'j' },
		{ "label", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int opt, err = 0;
	long n;

	*options = (struct kv_options){ .local_parent = "/var/tmp", .table = "kvbench",
					.label = "quorumfs", .duration_s = 10, .warmup_s = 1,
					.clients = { 1, 64 }, .client_count = 2,
					.ops = { [KV_OP_PUT] = true, [KV_OP_GET] = true },
					.value_bytes = 1024, .keys = 10000, .timeout_ms = 30000 };
	while (!err && (opt = getopt_long(argc, argv, "d:m:c:o:t:w:s:k:T:j:l:h", longs,
					  NULL)) != -1) {
		switch (opt) {
		case 'd': options->data_dir = optarg; break;
		case 'm': options->meta_url = optarg; break;
		case OPT_PIDS: err = kv_parse_pids(optarg, options); break;
		case OPT_LOCAL_PARENT: options->local_parent = optarg; break;
		case OPT_KEEP: options->keep = true; break;
		case 'c': err = kv_parse_list(optarg, options, true); break;
		case 'o': err = kv_parse_list(optarg, options, false); break;
		case 't': err = kv_parse_seconds(optarg, 0.1, &options->duration_s); break;
		case 'w': err = kv_parse_seconds(optarg, 0, &options->warmup_s); break;
		case OPT_PAUSE: err = kv_parse_seconds(optarg, 0, &options->pause_s); break;
		case 's':
			err = kv_parse_long(optarg, 0, KV_VALUE_MAX_BYTES, &n);
			options->value_bytes = (size_t)n;
			break;
		case 'k':
			err = kv_parse_long(optarg, 1, 100000000, &n);
			options->keys = (int)n;
			break;
		case 'T': options->table = optarg; break;
		case OPT_TIMEOUT:
			err = kv_parse_long(optarg, 1, 3600000, &n);
			options->timeout_ms = n;
			break;
		case 'j': options->json_path = optarg; break;
		case 'l': options->label = optarg; break;
		case 'h': kv_usage(stdout); return 1;
		default: kv_usage(stderr); return 2;
		}
	}
	if (err || optind != argc || (options->data_dir && options->meta_url)) {
		fprintf(stderr, "kv_bench: %s\n", err ? "bad option value" :
			optind != argc ? "unexpected argument" : "-d and --meta exclude each other");
		kv_usage(stderr);
		return 2;
	}
	return 0;
}

static void kv_time_now(char *out, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;

	if (!gmtime_r(&now, &tm) || !strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, size, "?");
}

int main(int argc, char **argv)
{
	struct kv_result results[KV_OP_COUNT * KV_CLIENT_COUNTS_MAX];
	char local_dir[PATH_MAX] = "", why[LOCAL_WHY_BYTES], started_at[32];
	struct kv_options options;
	struct router_options router_options = { 0 };
	struct local_cluster *cluster = NULL;
	struct router *router = NULL, *eventual = NULL;
	struct router_table table;
	char *meta_url = NULL, *value = NULL;
	double loadavg[1] = { 0 };
	int result_count = 0, max_clients = 1, err;
	bool filled = false;

	err = kv_parse(argc, argv, &options);
	if (err)
		return err == 1 ? 0 : 2;
	{
		struct sigaction action = { .sa_handler = kv_on_signal };

		sigemptyset(&action.sa_mask);
		sigaction(SIGINT, &action, NULL);
		sigaction(SIGTERM, &action, NULL);
	}
	kv_time_now(started_at, sizeof(started_at));
	if (getloadavg(loadavg, 1) < 1)
		loadavg[0] = -1;
	value = malloc(options.value_bytes ? options.value_bytes : 1);
	if (!value) {
		fprintf(stderr, "kv_bench: out of memory\n");
		return 1;
	}
	memset(value, 'v', options.value_bytes);
	for (int i = 0; i < options.client_count; i++)
		if (options.clients[i] > max_clients)
			max_clients = options.clients[i];

	if (options.data_dir) {
		err = kv_read_cluster_file(options.data_dir, &options, &meta_url);
	} else if (options.meta_url) {
		meta_url = strdup(options.meta_url);
		err = meta_url ? 0 : -ENOMEM;
	} else {
		if ((size_t)snprintf(local_dir, sizeof(local_dir), "%s/kv_bench.XXXXXX",
				     options.local_parent) >= sizeof(local_dir) ||
		    !mkdtemp(local_dir)) {
			fprintf(stderr, "kv_bench: cannot make a directory under %s: %s\n",
				options.local_parent, strerror(errno));
			local_dir[0] = '\0';
			err = -EIO;
			goto out;
		}
		kv_add_build_tree_to_path();
		fprintf(stderr, "kv_bench: starting a local cluster in %s\n", local_dir);
		err = local_start(local_dir, 60000, &cluster, why);
		if (err) {
			fprintf(stderr, "kv_bench: cannot start the cluster: %s\n", why);
			goto out;
		}
		err = kv_read_cluster_file(local_dir, &options, &meta_url);
	}
	if (err)
		goto out;

	router_options.meta_url = meta_url;
	router_options.timeout_ms = options.timeout_ms;
	err = router_new(&router_options, &router);
	if (!err && options.ops[KV_OP_GET_EVENTUAL]) {
		router_options.consistency = ROUTER_CONSISTENCY_EVENTUAL;
		err = router_new(&router_options, &eventual);
	}
	if (err) {
		fprintf(stderr, "kv_bench: no router for %s: %s\n", meta_url, strerror(-err));
		goto out;
	}
	err = kv_open_table(router, options.table, &table);
	if (err) {
		fprintf(stderr, "kv_bench: table %s: %s\n", options.table, strerror(-err));
		goto out;
	}
	/* Untimed: the first writes to a partition wait for its group's first election. */
	for (int i = 0; i < 64 && i < options.keys && !err && !kv_stop_requested; i++) {
		char key[KV_KEY_BYTES];

		kv_key(key, i);
		err = kv_put(router, &table, key, value, options.value_bytes);
	}
	if (err) {
		fprintf(stderr, "kv_bench: first puts: %s\n", strerror(-err));
		goto out;
	}
	if (options.pause_s > 0) {
		fprintf(stderr, "kv_bench: pausing %.0f s (cluster state in %s)\n", options.pause_s,
			options.data_dir ? options.data_dir : local_dir[0] ? local_dir : meta_url);
		clock_sleep_ms((int64_t)(options.pause_s * 1000));
	}
	if (!options.json_path || strcmp(options.json_path, "-") != 0)
		kv_print_header(&options, meta_url);
	for (int op = 0; op < KV_OP_COUNT && !err; op++) {
		if (!options.ops[op])
			continue;
		if (op != KV_OP_PUT && !filled) {
			fprintf(stderr, "kv_bench: putting all %d keys before the gets\n",
				options.keys);
			err = kv_prefill(&options, router, &table, value, max_clients);
			if (err) {
				fprintf(stderr, "kv_bench: prefill: %s\n", strerror(-err));
				break;
			}
			filled = true;
		}
		for (int i = 0; i < options.client_count && !err; i++) {
			struct kv_result *r = &results[result_count];

			err = kv_phase_run(&options, op == KV_OP_GET_EVENTUAL ? eventual : router,
					   &table, (enum kv_op)op, options.clients[i], value, r);
			if (err) {
				fprintf(stderr, "kv_bench: %s with %d clients: %s\n",
					kv_op_names[op], options.clients[i], strerror(-err));
				break;
			}
			if (kv_stop_requested) {
				fprintf(stderr, "kv_bench: interrupted\n");
				err = -EINTR;
				break;
			}
			result_count++;
			if (!options.json_path || strcmp(options.json_path, "-") != 0)
				kv_print_row(r);
		}
	}
	/* The phases that ran are worth keeping when a later one failed: "complete" says. */
	if (options.json_path && (!err || result_count > 0)) {
		int json_err = kv_write_json(&options, meta_url, loadavg[0], started_at, !err,
					     results, result_count);

		if (!err)
			err = json_err;
	}
	for (int i = 0; i < result_count && !err; i++)
		if (results[i].errors)
			err = -EIO;
out:
	router_free(eventual);
	router_free(router);
	local_free(cluster);
	if (local_dir[0]) {
		if (options.keep)
			fprintf(stderr, "kv_bench: cluster state and logs kept in %s\n", local_dir);
		else
			nftw(local_dir, kv_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	free(meta_url);
	free(value);
	return err ? 1 : 0;
}

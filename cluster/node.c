/* node.c: quorumd, the storage node.
 *
 * The process hosts replicas of table partitions, each a member of a
 * replication group (replicas.h: group threads and the peer transport), and
 * serves item requests on --listen: writes (put, delete, update) are
 * proposed to the partition's group and answered once applied; strong reads
 * (get, scan) are served from the store (store.h) at the leader under its
 * lease; eventual reads from the local store at once. A replica that does
 * not lead answers -EREMOTE with the leader it knows, so the router goes
 * there. Paxos messages from peers arrive as Request.paxos on the same
 * address.
 *
 * One thread registers the node with the metadata service (retrying with
 * backoff while meta is away), then heartbeats with the disk's capacity and
 * a report of every hosted group with its load figures (requests served,
 * counted in load.h; items and bytes, counted by census.h after each
 * beat); the reply lists the partitions the node must host, and the groups
 * follow it. It also learns the cluster's item
 * size limit. The node never stops serving because meta is down; an outage
 * is logged when it starts and when it ends.
 *
 * The node id meta hands out is kept in DATADIR/node_id, so a restarted
 * node comes back as itself. The main thread only waits for SIGTERM or
 * SIGINT (blocked in every thread, taken with sigwait), then hands off the
 * leadership of its groups (bounded), stops the meta thread, closes the
 * groups, stops the server and closes the store, in that order. */
#include "config.h"

#include "cluster/census.h"
#include "cluster/clock.h"
#include "cluster/disk_space.h"
#include "cluster/item.h"
#include "cluster/keys.h"
#include "cluster/load.h"
#include "cluster/log.h"
#include "cluster/meta_client.h"
#include "cluster/net.h"
#include "cluster/node_route.h"
#include "cluster/replicas.h"
#include "cluster/rpc.h"
#include "cluster/store.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Workers block while a write waits for its group; some are always kept
 * for Paxos messages (see replicas.h), hence more than a router has threads. */
#define NODE_WORKERS_DEFAULT 32
#define NODE_WORKERS_MIN 2
#define NODE_WORKERS_MAX 256
#define NODE_HEARTBEAT_MS_DEFAULT 1000
#define NODE_HEARTBEAT_MS_MIN 10
#define NODE_HEARTBEAT_MS_MAX (3600 * 1000)
/* Deadline of one call to meta. */
#define NODE_META_CALL_MS 2000
/* Registration retries wait this long, doubling up to the maximum. */
#define NODE_BACKOFF_MIN_MS 100
#define NODE_BACKOFF_MAX_MS 5000
/* An item limit from meta beyond this could not travel in one message. */
#define NODE_ITEM_MAX_BYTES_CEILING (NET_MESSAGE_MAX_BYTES / 2)
/* How long a write waits for its group to apply it before answering
 * -ETIMEDOUT (outcome unknown), and a strong read for its lease. */
#define NODE_PROPOSAL_TIMEOUT_MS 10000
/* SIGTERM: how long the groups this node leads get to hand off. */
#define NODE_HAND_OFF_MS 1000
#define NODE_TICK_MS_MAX 1000
#define NODE_ELECTION_TICKS_MIN 4
#define NODE_ELECTION_TICKS_MAX 10000
/* Room for a key quoted in a reply: each byte at most one character. */
#define NODE_KEY_TEXT_BYTES (2 * KEY_NAME_MAX_BYTES + 8)
/* Items the census (census.h) counts after each heartbeat, at most. */
#define NODE_CENSUS_ITEMS_PER_BEAT 20000

struct node_options {
	const char *listen_url;
	const char *meta_url;
	const char *az;
	const char *data_dir;
	int worker_count;
	int64_t heartbeat_ms;
	int64_t tick_ms;
	uint32_t election_ticks;
	int64_t disk_reserve_bytes;	/* < 0: the default of disk_space.h */
};

struct node {
	struct node_options options;
	struct store *store;
	struct replicas *replicas;
	struct rpc_server *server;
	struct meta_client *meta;   /* one meta, or the replicated metas */
	struct load *load;          /* what the groups serve, for the heartbeat */
	struct census *census;      /* the meta thread's */
	struct disk_space *disk_space;  /* the data filesystem's reserve */
	/* The meta thread owns these once it runs. */
	uint64_t node_id;
	int meta_error;             /* last failure talking to meta, 0 when fine */
	/* stopping is set under lock and wakes the meta thread's waits. */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;
};

/* ---------------------------------------------------------------- options */

static void node_usage(FILE *out)
{
	fprintf(out,
		"Usage: quorumd --listen URL --meta URL --az NAME --data DIR [OPTION]...\n"
		"The quorumfs storage node: holds items of table partitions in LevelDB and\n"
		"serves them to routers; registers with the metadata service and\n"
		"heartbeats to it.\n"
		"\n"
		"  -l, --listen URL        address to serve on (nanomsg URL, e.g.\n"
		"                          tcp://127.0.0.1:7101); also the address\n"
		"                          announced to meta\n"
		"  -m, --meta URL[,URL...] address of quorum-meta (e.g. tcp://127.0.0.1:7100),\n"
		"                          or of each replicated meta, in their --peers order\n"
		"  -a, --az NAME           availability zone label of this node (e.g. a)\n"
		"  -d, --data DIR          data directory, created if missing: items in\n"
		"                          DIR/items (LevelDB), the node id in DIR/node_id\n"
		"  -w, --workers N         request worker threads started (default %d, %d to\n"
		"                          %d); more start while all are busy, up to 1024, of\n"
		"                          which N/4 (at least 1) never wait on a group\n"
		"  -b, --heartbeat-ms N    interval of heartbeats to meta in milliseconds\n"
		"                          (default %d, %d to %d)\n"
		"  -T, --tick-ms N         one Paxos tick in milliseconds (default %d, 1 to %d)\n"
		"  -E, --election-ticks N  election timeout in ticks, drawn in [N, 2N) (default\n"
		"                          %d, %d to %d); the leader lease is 3/5 of it\n"
		"  -R, --disk-reserve-bytes N  free space kept on the data filesystem\n"
		"                          (bytes; KiB, MiB, GiB suffixes): below it new\n"
		"                          writes are refused with ENOSPC, below half of it\n"
		"                          deletes too, below a quarter the node persists no\n"
		"                          replicated entry; 0 disables the checks (default\n"
		"                          64 MiB, or 5%% of the filesystem if that is less)\n"
		"  -h, --help              show this help and exit\n"
		"  -V, --version           show the version and exit\n"
		"\n"
		"SIGTERM or SIGINT stops the node cleanly. Exit status: 0 after a clean\n"
		"stop, 1 when start-up fails, 2 for bad arguments.\n",
		NODE_WORKERS_DEFAULT, NODE_WORKERS_MIN, NODE_WORKERS_MAX, NODE_HEARTBEAT_MS_DEFAULT,
		NODE_HEARTBEAT_MS_MIN, NODE_HEARTBEAT_MS_MAX, REPLICAS_TICK_MS_DEFAULT,
		NODE_TICK_MS_MAX, REPLICAS_ELECTION_TICKS_DEFAULT, NODE_ELECTION_TICKS_MIN,
		NODE_ELECTION_TICKS_MAX);
}

/* Parses a decimal integer in [min, max]; -EINVAL otherwise. */
static int node_parse_int(const char *text, long min, long max, long *value)
{
	char *end;
	long parsed;

	errno = 0;
	parsed = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || parsed < min || parsed > max)
		return -EINVAL;
	*value = parsed;
	return 0;
}

static bool node_url_looks_valid(const char *url)
{
	const char *separator = strstr(url, "://");
	return separator && separator != url && separator[3] != '\0';
}

/* A comma-separated list of URLs (--meta of replicated metas). */
static bool node_url_list_looks_valid(const char *urls)
{
	struct meta_client *client;

	if (meta_client_new(urls, &client) < 0)
		return false;
	meta_client_free(client);
	return true;
}

/* Returns 0 to run, 1 when the process should exit 0 (help, version), or
 * -EINVAL after printing what is wrong. */
static int node_parse_options(int argc, char **argv, struct node_options *options)
{
	static const struct option long_options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "meta", required_argument, NULL, 'm' },
		{ "az", required_argument, NULL, 'a' },
		{ "data", required_argument, NULL, 'd' },
		{ "workers", required_argument, NULL, 'w' },
		{ "heartbeat-ms", required_argument, NULL, 'b' },
		{ "tick-ms", required_argument, NULL, 'T' },
		{ "election-ticks", required_argument, NULL, 'E' },
		{ "disk-reserve-bytes", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	long value;
	int c;

	options->worker_count = NODE_WORKERS_DEFAULT;
	options->heartbeat_ms = NODE_HEARTBEAT_MS_DEFAULT;
	options->tick_ms = REPLICAS_TICK_MS_DEFAULT;
	options->election_ticks = REPLICAS_ELECTION_TICKS_DEFAULT;
	options->disk_reserve_bytes = -1;
	while ((c = getopt_long(argc, argv, "l:m:a:d:w:b:T:E:R:hV", long_options, NULL)) != -1) {
		switch (c) {
		case 'l':
			options->listen_url = optarg;
			break;
		case 'm':
			options->meta_url = optarg;
			break;
		case 'a':
			options->az = optarg;
			break;
		case 'd':
			options->data_dir = optarg;
			break;
		case 'w':
			if (node_parse_int(optarg, NODE_WORKERS_MIN, NODE_WORKERS_MAX, &value) < 0) {
				fprintf(stderr, "quorumd: --workers wants %d to %d, not '%s'\n",
					NODE_WORKERS_MIN, NODE_WORKERS_MAX, optarg);
				return -EINVAL;
			}
			options->worker_count = (int)value;
			break;
		case 'b':
			if (node_parse_int(optarg, NODE_HEARTBEAT_MS_MIN, NODE_HEARTBEAT_MS_MAX,
					   &value) < 0) {
				fprintf(stderr, "quorumd: --heartbeat-ms wants %d to %d, not '%s'\n",
					NODE_HEARTBEAT_MS_MIN, NODE_HEARTBEAT_MS_MAX, optarg);
				return -EINVAL;
			}
			options->heartbeat_ms = value;
			break;
		case 'T':
			if (node_parse_int(optarg, 1, NODE_TICK_MS_MAX, &value) < 0) {
				fprintf(stderr, "quorumd: --tick-ms wants 1 to %d, not '%s'\n",
					NODE_TICK_MS_MAX, optarg);
				return -EINVAL;
			}
			options->tick_ms = value;
			break;
		case 'E':
			if (node_parse_int(optarg, NODE_ELECTION_TICKS_MIN, NODE_ELECTION_TICKS_MAX,
					   &value) < 0) {
				fprintf(stderr, "quorumd: --election-ticks wants %d to %d, not '%s'\n",
					NODE_ELECTION_TICKS_MIN, NODE_ELECTION_TICKS_MAX, optarg);
				return -EINVAL;
			}
			options->election_ticks = (uint32_t)value;
			break;
		case 'R':
			if (disk_space_parse_bytes(optarg, &options->disk_reserve_bytes) < 0) {
				fprintf(stderr, "quorumd: --disk-reserve-bytes wants a size such "
					"as 67108864 or 64MiB, not '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case 'h':
			node_usage(stdout);
			return 1;
		case 'V':
			printf("quorumd (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			return 1;
		default:
			fprintf(stderr, "Try 'quorumd --help' for more information.\n");
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "quorumd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!options->listen_url || !options->meta_url || !options->az || !options->data_dir) {
		fprintf(stderr, "quorumd: --listen, --meta, --az and --data are required\n"
				"Try 'quorumd --help' for more information.\n");
		return -EINVAL;
	}
	if (!node_url_looks_valid(options->listen_url) ||
	    !node_url_list_looks_valid(options->meta_url)) {
		fprintf(stderr, "quorumd: addresses are nanomsg URLs such as tcp://127.0.0.1:7100\n");
		return -EINVAL;
	}
	if (options->az[0] == '\0' || strlen(options->az) > 64) {
		fprintf(stderr, "quorumd: --az wants a name of 1 to 64 characters\n");
		return -EINVAL;
	}
	if (options->data_dir[0] == '\0') {
		fprintf(stderr, "quorumd: --data wants a directory\n");
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------ data dir */

/* mkdir -p: creates path and its missing parents. */
static int node_make_dirs(const char *path)
{
	char buffer[PATH_MAX];
	size_t length = strlen(path);
	struct stat st;

	if (length >= sizeof(buffer))
		return -ENAMETOOLONG;
	memcpy(buffer, path, length + 1);
	for (size_t i = 1; i <= length; i++) {
		if (buffer[i] != '/' && buffer[i] != '\0')
			continue;
		buffer[i] = '\0';
		if (mkdir(buffer, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (i < length)
			buffer[i] = '/';
	}
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int node_path(char *out, size_t out_bytes, const char *dir, const char *name)
{
	int n = snprintf(out, out_bytes, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= out_bytes ? -ENAMETOOLONG : 0;
}

/* The persisted node id, 0 when the node never registered. -EINVAL when
 * the file holds something else than a number. */
static int node_load_id(const char *data_dir, uint64_t *id)
{
	char path[PATH_MAX], text[32], *end;
	unsigned long long parsed;
	ssize_t n;
	int fd, err;

	*id = 0;
	err = node_path(path, sizeof(path), data_dir, "node_id");
	if (err < 0)
		return err;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, text, sizeof(text) - 1);
	err = n < 0 ? -errno : 0;
	close(fd);
	if (err < 0)
		return err;
	text[n] = '\0';
	errno = 0;
	parsed = strtoull(text, &end, 10);
	if (errno != 0 || end == text || (*end != '\0' && strcmp(end, "\n") != 0) || parsed == 0)
		return -EINVAL;
	*id = parsed;
	return 0;
}

/* Writes the node id durably: a temporary file, fsync, rename over the
 * old one, fsync of the directory so the rename itself survives a crash. */
static int node_save_id(const char *data_dir, uint64_t id)
{
	char path[PATH_MAX], temp_path[PATH_MAX], text[32];
	int fd, err = 0, length;

	if (node_path(path, sizeof(path), data_dir, "node_id") < 0 ||
	    node_path(temp_path, sizeof(temp_path), data_dir, "node_id.tmp") < 0)
		return -ENAMETOOLONG;
	length = snprintf(text, sizeof(text), "%" PRIu64 "\n", id);
	fd = open(temp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, (size_t)length) != length)
		err = errno ? -errno : -EIO;
	else if (fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && err == 0)
		err = -errno;
	if (err == 0 && rename(temp_path, path) < 0)
		err = -errno;
	if (err < 0) {
		unlink(temp_path);
		return err;
	}
	fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

/* ---------------------------------------------------------- meta thread */

static bool node_stopping(struct node *node)
{
	bool stopping;

	pthread_mutex_lock(&node->lock);
	stopping = node->stopping;
	pthread_mutex_unlock(&node->lock);
	return stopping;
}

/* Sleeps duration_ms, or less when the node is told to stop. */
static void node_wait(struct node *node, int64_t duration_ms)
{
	int64_t deadline_ms = clock_monotonic_ms() + duration_ms;
	struct timespec until;

	pthread_mutex_lock(&node->lock);
	while (!node->stopping && clock_remaining_ms(deadline_ms) > 0) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		int64_t left_ms = clock_remaining_ms(deadline_ms);
		until.tv_sec += left_ms / 1000;
		until.tv_nsec += (left_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&node->wake, &node->lock, &until);
	}
	pthread_mutex_unlock(&node->lock);
}

/* Logs a failed call to meta once per outage (or when the reason
 * changes), not on every retry. */
static void node_meta_failed(struct node *node, const char *what, int err, const char *why)
{
	if (err != node->meta_error)
		log_warn("meta %s: %s failed: %s; retrying in the background",
			 node->options.meta_url, what, why);
	node->meta_error = err;
}

static void node_meta_answered(struct node *node)
{
	if (node->meta_error != 0)
		log_info("meta %s answers again", node->options.meta_url);
	node->meta_error = 0;
}

/* Calls meta with the per-call deadline. answer_err is an error status
 * the caller handles itself: meta answered, so it is no outage. */
static int node_call_meta(struct node *node, Quorum__Request *request, const char *what,
			  int answer_err, Quorum__Response **response)
{
	struct rpc_error error = { 0 };
	int err;

	err = meta_client_call(node->meta, request, clock_monotonic_ms() + NODE_META_CALL_MS,
			       response, &error);
	if (err < 0 && err == answer_err) {
		node_meta_answered(node);
		return err;
	}
	if (err < 0) {
		node_meta_failed(node, what, err, error.why);
		return err;
	}
	node_meta_answered(node);
	return 0;
}

static int node_register(struct node *node)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__RegisterNodeRequest registration = QUORUM__REGISTER_NODE_REQUEST__INIT;
	Quorum__Response *response;
	uint64_t id;
	int err;

	registration.has_node_id = node->node_id != 0;
	registration.node_id = node->node_id;
	registration.address = (char *)node->options.listen_url;
	registration.az = (char *)node->options.az;
	request.op_case = QUORUM__REQUEST__OP_REGISTER_NODE;
	request.register_node = &registration;
	err = node_call_meta(node, &request, "registration", 0, &response);
	if (err < 0)
		return err;
	id = response->register_node->node_id;
	quorum__response__free_unpacked(response, NULL);
	if (id == 0) {
		node_meta_failed(node, "registration", -EPROTO, "meta answered node id 0");
		return -EPROTO;
	}
	if (id != node->node_id) {
		if (node->node_id != 0)
			log_warn("meta knows this node as %" PRIu64 " now (was %" PRIu64 ")", id,
				 node->node_id);
		err = node_save_id(node->options.data_dir, id);
		if (err < 0)
			/* Keep serving: only a restart would need the file. */
			log_error("cannot save the node id in %s/node_id: %s",
				  node->options.data_dir, strerror(-err));
		node->node_id = id;
	}
	log_info("registered with meta %s as node %" PRIu64 " (az %s)", node->options.meta_url,
		 id, node->options.az);
	return 0;
}

/* Counts requests against the partitions meta assigns to this node. */
static void node_track_load(struct node *node, Quorum__PartitionAssignment *const *assignments,
			    size_t count)
{
	struct load_range *ranges = calloc(count ? count : 1, sizeof(*ranges));
	size_t n = 0;
	int err;

	if (!ranges)
		return;	/* the next heartbeat tries again */
	for (size_t i = 0; i < count; i++) {
		if (!assignments[i]->partition)
			continue;
		ranges[n].table_id = assignments[i]->table_id;
		ranges[n].partition_id = assignments[i]->partition->id;
		ranges[n].hash_first = assignments[i]->partition->hash_first;
		ranges[n].hash_last = assignments[i]->partition->hash_last;
		n++;
	}
	err = load_track(node->load, ranges, n, clock_monotonic_ms());
	if (err < 0)
		log_warn("cannot track the load of %zu partitions: %s", n, strerror(-err));
	free(ranges);
}

static int node_heartbeat(struct node *node)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__HeartbeatRequest heartbeat = QUORUM__HEARTBEAT_REQUEST__INIT;
	Quorum__Response *response;
	struct statvfs fs;
	struct arena *arena;
	int err;

	arena = arena_new();
	if (!arena)
		return -ENOMEM;
	/* A report that cannot be built this time goes without the groups. */
	if (replicas_report(node->replicas, arena, &heartbeat.groups, &heartbeat.n_groups) < 0)
		heartbeat.n_groups = 0;
	/* Figures are best effort too: a group not tracked yet goes without. */
	for (size_t i = 0; i < heartbeat.n_groups; i++)
		load_fill_report(node->load, heartbeat.groups[i], clock_monotonic_ms(), arena);
	heartbeat.node_id = node->node_id;
	heartbeat.address = (char *)node->options.listen_url;
	if (statvfs(node->options.data_dir, &fs) == 0) {
		heartbeat.has_capacity_bytes = true;
		heartbeat.capacity_bytes = (uint64_t)fs.f_blocks * fs.f_frsize;
		heartbeat.has_free_bytes = true;
		heartbeat.free_bytes = (uint64_t)fs.f_bavail * fs.f_frsize;
	}
	request.op_case = QUORUM__REQUEST__OP_HEARTBEAT;
	request.heartbeat = &heartbeat;
	err = node_call_meta(node, &request, "heartbeat", -ENOENT, &response);
	arena_free(arena);
	if (err < 0)
		return err;
	/* Errors are logged inside; the next heartbeat tries again. */
	replicas_assign(node->replicas, node->node_id,
			response->heartbeat->partitions, response->heartbeat->n_partitions,
			response->heartbeat->retired, response->heartbeat->n_retired);
	node_track_load(node, response->heartbeat->partitions, response->heartbeat->n_partitions);
	quorum__response__free_unpacked(response, NULL);
	return 0;
}

/* Learns the cluster settings the store enforces (the item limit). */
static void node_refresh_settings(struct node *node)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__ClusterInfoRequest info = QUORUM__CLUSTER_INFO_REQUEST__INIT;
	Quorum__Response *response;
	uint64_t item_max_bytes;

	request.op_case = QUORUM__REQUEST__OP_CLUSTER_INFO;
	request.cluster_info = &info;
	if (node_call_meta(node, &request, "cluster info", 0, &response) < 0)
		return;
	item_max_bytes = response->cluster_info->item_max_bytes;
	quorum__response__free_unpacked(response, NULL);
	if (item_max_bytes == 0 || item_max_bytes > NODE_ITEM_MAX_BYTES_CEILING) {
		node_meta_failed(node, "cluster info", -EPROTO,
				 "item limit out of range; keeping the current one");
		return;
	}
	if (item_max_bytes != store_item_max_bytes(node->store)) {
		log_info("item size limit: %" PRIu64 " bytes", item_max_bytes);
		store_set_item_max_bytes(node->store, item_max_bytes);
	}
}

static void *node_meta_main(void *arg)
{
	struct node *node = arg;
	int64_t backoff_ms = NODE_BACKOFF_MIN_MS;
	bool registered = false;
	int err;

	while (!node_stopping(node)) {
		if (!registered) {
			if (node_register(node) < 0) {
				node_wait(node, backoff_ms);
				backoff_ms = backoff_ms * 2 > NODE_BACKOFF_MAX_MS ? NODE_BACKOFF_MAX_MS
										  : backoff_ms * 2;
				continue;
			}
			registered = true;
			backoff_ms = NODE_BACKOFF_MIN_MS;
		}
		err = node_heartbeat(node);
		if (err == -ENOENT) {
			/* Meta forgot this node (its state was reset): register
			 * again, right away. */
			log_warn("meta does not know node %" PRIu64 "; registering again",
				 node->node_id);
			registered = false;
			continue;
		}
		if (err == 0) {
			node_refresh_settings(node);
			/* Errors are logged inside; figures stay as they were. */
			census_step(node->census, node->load, NODE_CENSUS_ITEMS_PER_BEAT,
				    clock_monotonic_ms());
		}
		node_wait(node, node->options.heartbeat_ms);
	}
	return NULL;
}

/* ------------------------------------------------------------- requests */

/* A key for a reply message: printable ASCII as is, other bytes as '?'
 * (the message is a protobuf string and should stay text). */
static const char *node_key_text(const ProtobufCBinaryData *name, char *out, size_t out_bytes)
{
	size_t n = name->len < out_bytes - 1 ? name->len : out_bytes - 1;

	for (size_t i = 0; i < n; i++)
		out[i] = name->data[i] >= 0x20 && name->data[i] < 0x7f ? (char)name->data[i] : '?';
	out[n] = '\0';
	return out;
}

/* Checks an item key from a peer; on error the reply says why. */
static int node_check_key(const Quorum__ItemKey *key, Quorum__Response *response,
			  struct arena *arena)
{
	int err;

	if (!key) {
		rpc_fail(response, arena, -EINVAL, "the request names no item");
		return -EINVAL;
	}
	if (key->table_id == 0) {
		rpc_fail(response, arena, -EINVAL, "table id 0 names no table");
		return -EINVAL;
	}
	err = key_validate_name(key->partition_key.data, key->partition_key.len);
	if (err < 0) {
		rpc_fail(response, arena, err, "partition key of %zu bytes is not a valid key: %s",
			 key->partition_key.len, strerror(-err));
		return err;
	}
	if (key->has_sort_key) {
		err = key_validate_sort_key(key->sort_key.data, key->sort_key.len);
		if (err < 0) {
			rpc_fail(response, arena, err, "sort key of %zu bytes is not a valid key: %s",
				 key->sort_key.len, strerror(-err));
			return err;
		}
	}
	return 0;
}

/* Explains a store error in the reply, naming the operation and item. */
static void node_fail_item(struct node *node, Quorum__Response *response, struct arena *arena,
			   const char *operation, const Quorum__ItemKey *key, int err)
{
	char text[NODE_KEY_TEXT_BYTES], sort_text[NODE_KEY_TEXT_BYTES];
	char detail[128];

	switch (err) {
	case -ENOENT:
		snprintf(detail, sizeof(detail), "no such item");
		break;
	case -EFBIG:
		snprintf(detail, sizeof(detail), "larger than the item limit of %" PRIu64 " bytes",
			 store_item_max_bytes(node->store));
		break;
	case -ESTALE:
		snprintf(detail, sizeof(detail), "the item has another version than expected");
		break;
	case -EIO:
		snprintf(detail, sizeof(detail),
			 "the stored item is damaged or the disk failed (see the node's log)");
		break;
	default:
		snprintf(detail, sizeof(detail), "%s", strerror(-err));
		break;
	}
	node_key_text(&key->partition_key, text, sizeof(text));
	if (key->has_sort_key)
		rpc_fail(response, arena, err, "%s of table %" PRIu64 " key '%s' sort key '%s': %s",
			 operation, key->table_id, text,
			 node_key_text(&key->sort_key, sort_text, sizeof(sort_text)), detail);
	else
		rpc_fail(response, arena, err, "%s of table %" PRIu64 " key '%s': %s", operation,
			 key->table_id, text, detail);
}

static void node_ping(Quorum__Response *response, struct arena *arena)
{
	Quorum__PingResponse *ping = arena_alloc(arena, sizeof(*ping));

	if (!ping) {
		rpc_fail(response, arena, -ENOMEM, "out of memory");
		return;
	}
	quorum__ping_response__init(ping);
	ping->role = "node";
	response->result_case = QUORUM__RESPONSE__RESULT_PING;
	response->ping = ping;
}

/* Counts a request this node served on key's partition (load.h). */
static void node_count_load(struct node *node, const Quorum__ItemKey *key, enum load_op op)
{
	load_count(node->load, key->table_id,
		   key_hash(key->partition_key.data, key->partition_key.len), op,
		   key->partition_key.data, key->partition_key.len, clock_monotonic_ms());
}

/* Waits until a strong read of the group holding hash may be served here;
 * on failure the reply says why. */
static int node_read_barrier(struct node *node, uint64_t table_id, uint64_t hash,
			     Quorum__Response *response, struct arena *arena)
{
	Quorum__PartitionAssignment *before = NULL, *after = NULL;
	struct replicas_outcome outcome;
	int err;

	(void)replicas_route(node->replicas, table_id, false, hash, arena, &before);
	err = replicas_read_barrier(node->replicas, table_id, hash, NODE_PROPOSAL_TIMEOUT_MS,
				    &outcome);
	if (err < 0) {
		replicas_fail_response(response, arena, err, &outcome);
		return err;
	}
	/* A split applied while the read waited gave the key to another group, whose replica
	 * here may lag its leader: the router asks again where the key lives now. */
	if (before && (replicas_route(node->replicas, table_id, false, hash, arena, &after) < 0 ||
		       after->partition->id != before->partition->id ||
		       after->partition->epoch != before->partition->epoch)) {
		node_route_moved(node->replicas, table_id, hash, response, arena);
		return -EREMCHG;
	}
	return 0;
}

/* Proposes command (a GroupCommand with op set, stamped here with id, the
 * time and the item limit) to the group of key and waits for it to be
 * applied. Returns 0 with *meta (may be NULL for a delete) or a negative
 * errno with the reply filled. */
static int node_propose(struct node *node, Quorum__GroupCommand *command,
			const Quorum__RequestId *id, const Quorum__ItemKey *key,
			const char *operation, Quorum__Response *response, struct arena *arena,
			Quorum__ItemMeta **meta)
{
	struct replicas_outcome outcome;
	size_t command_bytes;
	uint8_t *packed;
	int err;

	if (meta)
		*meta = NULL;
	command->version = GROUP_COMMAND_VERSION;
	if (id && (id->client_id == 0 || id->floor > id->seq)) {
		rpc_fail(response, arena, -EINVAL, "%s: a request id needs a client id and a floor "
			 "at most its seq", operation);
		return -EINVAL;
	}
	command->request_id = (Quorum__RequestId *)id;
	/* Everything that could differ between replicas is decided here, once. */
	command->now_ns = clock_realtime_ns();
	command->has_item_max_bytes = true;
	command->item_max_bytes = store_item_max_bytes(node->store);
	command_bytes = quorum__group_command__get_packed_size(command);
	packed = arena_alloc(arena, command_bytes ? command_bytes : 1);
	if (!packed) {
		rpc_fail(response, arena, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	quorum__group_command__pack(command, packed);
	/* Refused before it enters the log when the replicas could not store it (see
	 * disk_space.h): a prompt ENOSPC rather than a group failing on a full disk. */
	err = replicas_check_space(node->replicas, key->table_id,
				   key_hash(key->partition_key.data, key->partition_key.len),
				   command->op_case == QUORUM__GROUP_COMMAND__OP_DELETE_ITEM ?
				   DISK_SPACE_USE_DELETE : DISK_SPACE_USE_WRITE, &outcome);
	if (err == 0)
		err = replicas_propose(node->replicas, key->table_id,
				       key_hash(key->partition_key.data, key->partition_key.len),
				       packed, command_bytes, NODE_PROPOSAL_TIMEOUT_MS, &outcome);
	if (err < 0) {
		replicas_fail_response(response, arena, err, &outcome);
		return err;
	}
	/* Applied through the log, whatever the command's own outcome. */
	node_count_load(node, key, LOAD_WRITE);
	if (outcome.apply_status == -EREMCHG) {
		/* The key was split off the group while the command waited in its log. */
		node_route_moved(node->replicas, key->table_id,
				 key_hash(key->partition_key.data, key->partition_key.len),
				 response, arena);
		return -EREMCHG;
	}
	if (outcome.apply_status < 0) {
		node_fail_item(node, response, arena, operation, key, outcome.apply_status);
		return outcome.apply_status;
	}
	if (meta && outcome.result_bytes) {
		*meta = quorum__item_meta__unpack(arena_protobuf_allocator(arena),
						  outcome.result_bytes, outcome.result);
		if (!*meta) {
			rpc_fail(response, arena, -EIO, "%s: the group's result does not decode",
				 operation);
			return -EIO;
		}
	}
	if (meta && !*meta) {
		rpc_fail(response, arena, -EIO, "%s: the group returned no metadata", operation);
		return -EIO;
	}
	return 0;
}

static void node_get_item(struct node *node, const Quorum__GetItemRequest *request,
			  Quorum__Response *response, struct arena *arena)
{
	Quorum__GetItemResponse *result;
	Quorum__ItemRecord *record;
	int err;

	if (node_check_key(request->key, response, arena) < 0)
		return;
	result = arena_alloc(arena, sizeof(*result));
	if (!result) {
		rpc_fail(response, arena, -ENOMEM, "out of memory");
		return;
	}
	if (!(request->has_eventual && request->eventual) &&
	    node_read_barrier(node, request->key->table_id,
			      key_hash(request->key->partition_key.data,
				       request->key->partition_key.len), response, arena) < 0)
		return;
	node_count_load(node, request->key, LOAD_READ);
	err = store_get(node->store, request->key, request->meta_only, arena, &record);
	if (err < 0) {
		node_fail_item(node, response, arena, "get", request->key, err);
		return;
	}
	quorum__get_item_response__init(result);
	result->item = record;
	response->result_case = QUORUM__RESPONSE__RESULT_GET_ITEM;
	response->get_item = result;
}

static void node_put_item(struct node *node, const Quorum__PutItemRequest *request,
			  const Quorum__RequestId *id, Quorum__Response *response,
			  struct arena *arena)
{
	Quorum__GroupCommand command = QUORUM__GROUP_COMMAND__INIT;
	Quorum__PutItemResponse *result;
	Quorum__ItemMeta *meta;

	if (node_check_key(request->key, response, arena) < 0)
		return;
	if (!request->meta) {
		rpc_fail(response, arena, -EINVAL, "put without metadata");
		return;
	}
	/* Refused before it enters the log: a command too large for the limit
	 * would cost every replica a write for nothing. */
	if (request->has_body && request->body.len > store_item_max_bytes(node->store)) {
		node_fail_item(node, response, arena, "put", request->key, -EFBIG);
		return;
	}
	result = arena_alloc(arena, sizeof(*result));
	if (!result) {
		rpc_fail(response, arena, -ENOMEM, "out of memory");
		return;
	}
	command.op_case = QUORUM__GROUP_COMMAND__OP_PUT_ITEM;
	command.put_item = (Quorum__PutItemRequest *)request;
	if (node_propose(node, &command, id, request->key, "put", response, arena, &meta) < 0)
		return;
	quorum__put_item_response__init(result);
	result->meta = meta;
	response->result_case = QUORUM__RESPONSE__RESULT_PUT_ITEM;
	response->put_item = result;
}

static void node_delete_item(struct node *node, const Quorum__DeleteItemRequest *request,
			     const Quorum__RequestId *id, Quorum__Response *response,
			     struct arena *arena)
{
	Quorum__GroupCommand command = QUORUM__GROUP_COMMAND__INIT;

	if (node_check_key(request->key, response, arena) < 0)
		return;
	command.op_case = QUORUM__GROUP_COMMAND__OP_DELETE_ITEM;
	command.delete_item = (Quorum__DeleteItemRequest *)request;
	node_propose(node, &command, id, request->key, "delete", response, arena, NULL);
}

static void node_update_item(struct node *node, const Quorum__UpdateItemRequest *request,
			     const Quorum__RequestId *id, Quorum__Response *response,
			     struct arena *arena)
{
	Quorum__GroupCommand command = QUORUM__GROUP_COMMAND__INIT;
	Quorum__UpdateItemResponse *result;
	Quorum__ItemMeta *meta;

	if (node_check_key(request->key, response, arena) < 0)
		return;
	result = arena_alloc(arena, sizeof(*result));
	if (!result) {
		rpc_fail(response, arena, -ENOMEM, "out of memory");
		return;
	}
	command.op_case = QUORUM__GROUP_COMMAND__OP_UPDATE_ITEM;
	command.update_item = (Quorum__UpdateItemRequest *)request;
	if (node_propose(node, &command, id, request->key, "update", response, arena, &meta) < 0)
		return;
	quorum__update_item_response__init(result);
	result->meta = meta;
	response->result_case = QUORUM__RESPONSE__RESULT_UPDATE_ITEM;
	response->update_item = result;
}

static void node_scan(struct node *node, const Quorum__ScanRequest *request,
		      Quorum__Response *response, struct arena *arena)
{
	Quorum__PartitionAssignment *route;
	Quorum__ScanRequest clamped;
	Quorum__ScanResponse *result;
	uint64_t start_hash, asked_last = request->hash_last;
	int err;

	if (request->table_id == 0) {
		rpc_fail(response, arena, -EINVAL, "scan: table id 0 names no table");
		return;
	}
	if (request->limit == 0) {
		rpc_fail(response, arena, -EINVAL, "scan: limit must be at least 1");
		return;
	}
	if (request->hash_first > request->hash_last) {
		rpc_fail(response, arena, -EINVAL, "scan: empty hash range [%" PRIu64 ", %" PRIu64 "]",
			 request->hash_first, request->hash_last);
		return;
	}
	if (request->has_after &&
	    (request->after.len < 9 || request->after.len > KEY_POSITION_MAX_BYTES)) {
		rpc_fail(response, arena, -EINVAL, "scan: cursor of %zu bytes is not a position",
			 request->after.len);
		return;
	}
	if (request->has_partition_key) {
		err = key_validate_name(request->partition_key.data, request->partition_key.len);
		if (err < 0) {
			rpc_fail(response, arena, err, "scan: partition key is not a valid key: %s",
				 strerror(-err));
			return;
		}
	}
	/* A scan pages through one group's range: the one holding the hash it starts at, and
	 * no further than that group's end (a split may have cut the router's range). */
	start_hash = request->has_after ? key_get_u64(request->after.data) : request->hash_first;
	if (start_hash < request->hash_first || start_hash > request->hash_last) {
		rpc_fail(response, arena, -EINVAL, "scan: cursor outside the range asked");
		return;
	}
	clamped = *request;
	if (replicas_route(node->replicas, request->table_id, false, start_hash, arena,
			   &route) == 0) {
		if (route->partition->hash_first > clamped.hash_first)
			clamped.hash_first = route->partition->hash_first;
		if (route->partition->hash_last < clamped.hash_last)
			clamped.hash_last = route->partition->hash_last;
	}
	request = &clamped;
	if (!(request->has_eventual && request->eventual) &&
	    node_read_barrier(node, request->table_id, start_hash, response, arena) < 0)
		return;
	/* A query counts against its partition key; a scan page against the
	 * range's first hash, without a hot key. */
	load_count(node->load, request->table_id,
		   request->has_partition_key ?
		   key_hash(request->partition_key.data, request->partition_key.len) :
		   request->hash_first, LOAD_READ,
		   request->has_partition_key ? request->partition_key.data : NULL,
		   request->has_partition_key ? request->partition_key.len : 0,
		   clock_monotonic_ms());
	err = store_scan(node->store, request, arena, &result);
	if (err < 0) {
		rpc_fail(response, arena, err, "scan of table %" PRIu64 ": %s", request->table_id,
			 err == -EIO ? "an item is damaged or the disk failed (see the node's log)"
				     : strerror(-err));
		return;
	}
	if (!result->more && request->hash_last < asked_last) {
		result->has_covered_last = true;
		result->covered_last = request->hash_last;
	}
	response->result_case = QUORUM__RESPONSE__RESULT_SCAN;
	response->scan = result;
}

/* The item an item request is about, or NULL. */
static const Quorum__ItemKey *node_request_key(const Quorum__Request *request)
{
	switch (request->op_case) {
	case QUORUM__REQUEST__OP_GET_ITEM:
		return request->get_item->key;
	case QUORUM__REQUEST__OP_PUT_ITEM:
		return request->put_item->key;
	case QUORUM__REQUEST__OP_DELETE_ITEM:
		return request->delete_item->key;
	case QUORUM__REQUEST__OP_UPDATE_ITEM:
		return request->update_item->key;
	default:
		return NULL;
	}
}

static void node_handle(void *ctx, const Quorum__Request *request, Quorum__Response *response,
			struct arena *arena)
{
	struct node *node = ctx;
	const Quorum__ItemKey *key = node_request_key(request);

	if (key && node_route_check(node->replicas, request, key->table_id,
				    key_hash(key->partition_key.data, key->partition_key.len),
				    response, arena) < 0)
		return;
	switch (request->op_case) {
	case QUORUM__REQUEST__OP_PING:
		node_ping(response, arena);
		break;
	case QUORUM__REQUEST__OP_GET_ITEM:
		node_get_item(node, request->get_item, response, arena);
		break;
	case QUORUM__REQUEST__OP_PUT_ITEM:
		node_put_item(node, request->put_item, request->request_id, response, arena);
		break;
	case QUORUM__REQUEST__OP_DELETE_ITEM:
		node_delete_item(node, request->delete_item, request->request_id, response, arena);
		break;
	case QUORUM__REQUEST__OP_UPDATE_ITEM:
		node_update_item(node, request->update_item, request->request_id, response, arena);
		break;
	case QUORUM__REQUEST__OP_SCAN:
		node_scan(node, request->scan, response, arena);
		break;
	case QUORUM__REQUEST__OP_PAXOS:
		replicas_handle_paxos(node->replicas, request->paxos, response, arena);
		break;
	case QUORUM__REQUEST__OP_PAXOS_BATCH:
		replicas_handle_paxos_batch(node->replicas, request->paxos_batch, response, arena);
		break;
	case QUORUM__REQUEST__OP_SPLIT_PARTITION:
		node_route_split(node->replicas, node->store, request->split_partition, response,
				 arena);
		break;
	case QUORUM__REQUEST__OP_CHANGE_MEMBERS:
		node_route_change_members(node->replicas, request->change_members, response,
					  arena);
		break;
	default:
		rpc_fail(response, arena, -EOPNOTSUPP,
			 "operation %d is not served by a storage node (ask quorum-meta)",
			 (int)request->op_case);
		break;
	}
}

/* ----------------------------------------------------------------- main */

static int node_init_sync(struct node *node)
{
	pthread_condattr_t attr;
	int err;

	if (pthread_mutex_init(&node->lock, NULL) != 0)
		return -ENOMEM;
	err = pthread_condattr_init(&attr);
	if (err == 0) {
		/* node_wait measures with the monotonic clock. */
		err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		if (err == 0)
			err = pthread_cond_init(&node->wake, &attr);
		pthread_condattr_destroy(&attr);
	}
	if (err != 0) {
		pthread_mutex_destroy(&node->lock);
		return -err;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct node node = { 0 };
	char items_dir[PATH_MAX];
	pthread_t meta_thread;
	sigset_t signals;
	int err, signal_number = 0;

	log_set_program("quorumd");
	err = node_parse_options(argc, argv, &node.options);
	if (err != 0)
		return err > 0 ? 0 : 2;

	/* Every thread made from here on inherits the mask, so only sigwait
	 * below takes these signals. A peer that goes away must not kill the
	 * process with SIGPIPE. */
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	err = node_make_dirs(node.options.data_dir);
	if (err < 0) {
		log_error("cannot create the data directory %s: %s", node.options.data_dir,
			  strerror(-err));
		return 1;
	}
	err = node_load_id(node.options.data_dir, &node.node_id);
	if (err < 0) {
		log_error("cannot read the node id in %s/node_id: %s", node.options.data_dir,
			  err == -EINVAL ? "not a node id (fix or remove the file)" : strerror(-err));
		return 1;
	}
	if (node_path(items_dir, sizeof(items_dir), node.options.data_dir, "items") < 0) {
		log_error("data directory path too long: %s", node.options.data_dir);
		return 1;
	}
	err = disk_space_new(node.options.data_dir, node.options.disk_reserve_bytes,
			     &node.disk_space);
	if (err < 0) {
		log_error("cannot read the free space of %s: %s", node.options.data_dir,
			  strerror(-err));
		return 1;
	}
	err = store_open(items_dir, &node.store);
	if (err < 0) {
		log_error("cannot open the item store in %s: %s", items_dir, strerror(-err));
		disk_space_free(node.disk_space);
		return 1;
	}
	err = node_init_sync(&node);
	if (err < 0) {
		log_error("cannot initialise: %s", strerror(-err));
		store_close(node.store);
		disk_space_free(node.disk_space);
		return 1;
	}
	{
		struct replicas_options replicas_options = {
			.data_dir = node.options.data_dir,
			.tick_ms = node.options.tick_ms,
			.election_ticks = node.options.election_ticks,
			/* The pool grows while every worker is busy (net.h): a quarter of the
			 * initial count is kept for the peers' messages even when it is full. */
			.waiting_max = NET_SERVER_WORKERS_MAX -
				       (node.options.worker_count / 4 > 1 ?
					node.options.worker_count / 4 : 1),
			.disk_space = node.disk_space,
		};

		err = replicas_new(node.store, &replicas_options, &node.replicas);
	}
	if (err < 0) {
		log_error("cannot initialise the replication groups: %s", strerror(-err));
		store_close(node.store);
		disk_space_free(node.disk_space);
		return 1;
	}
	err = load_new(&node.load);
	if (err == 0)
		err = census_new(node.store, &node.census);
	if (err == 0)
		err = meta_client_new(node.options.meta_url, &node.meta);
	if (err == 0)
		err = rpc_server_start(node.options.listen_url, node.options.worker_count,
				       node_handle, &node, &node.server);
	if (err < 0) {
		log_error("cannot listen on %s: %s", node.options.listen_url,
			  err == -EADDRINUSE ? "address already in use" : strerror(-err));
		census_free(node.census);
		load_free(node.load);
		meta_client_free(node.meta);
		replicas_free(node.replicas);
		store_close(node.store);
		disk_space_free(node.disk_space);
		return 1;
	}
	log_info("data filesystem reserve: %" PRIu64 " bytes%s",
		 disk_space_reserve_bytes(node.disk_space),
		 node.options.disk_reserve_bytes < 0 ? " (default)" : "");
	/* Logged before the meta thread runs: from then on it owns node_id. */
	if (node.node_id != 0)
		log_info("serving on %s, az %s, node id %" PRIu64 ", data %s, meta %s",
			 node.options.listen_url, node.options.az, node.node_id,
			 node.options.data_dir, node.options.meta_url);
	else
		log_info("serving on %s, az %s, new node (id from meta), data %s, meta %s",
			 node.options.listen_url, node.options.az, node.options.data_dir,
			 node.options.meta_url);
	err = pthread_create(&meta_thread, NULL, node_meta_main, &node);
	if (err != 0) {
		log_error("cannot start the meta thread: %s", strerror(err));
		rpc_server_stop(node.server);
		census_free(node.census);
		load_free(node.load);
		meta_client_free(node.meta);
		replicas_free(node.replicas);
		store_close(node.store);
		disk_space_free(node.disk_space);
		return 1;
	}

	while (sigwait(&signals, &signal_number) != 0)
		;
	log_info("%s: stopping", signal_number == SIGINT ? "SIGINT" : "SIGTERM");

	/* Still serving: the peers take over the groups this node leads while
	 * it answers their messages. */
	replicas_hand_off(node.replicas, NODE_HAND_OFF_MS);
	pthread_mutex_lock(&node.lock);
	node.stopping = true;
	pthread_cond_broadcast(&node.wake);
	pthread_mutex_unlock(&node.lock);
	pthread_join(meta_thread, NULL);
	/* Requests waiting on a group are answered (-ETIMEDOUT) when it closes,
	 * so the server's workers can finish. */
	replicas_close_all(node.replicas);
	rpc_server_stop(node.server);
	replicas_free(node.replicas);
	census_free(node.census);
	load_free(node.load);
	meta_client_free(node.meta);
	store_close(node.store);
	disk_space_free(node.disk_space);
	pthread_cond_destroy(&node.wake);
	pthread_mutex_destroy(&node.lock);
	log_info("stopped");
	return 0;
}

/* meta.c: quorum-meta, the metadata service. Parses flags, opens the
 * catalog, serves the metadata operations of quorum.proto over rpc.h until
 * SIGTERM or SIGINT, then closes the catalog and exits 0.
 *
 * Every handler answers from the catalog and builds its response in the
 * request's arena. With --peers the catalog is replicated (meta_group.h) and
 * only the leader of the metas runs the handlers. Item operations belong to
 * the storage nodes: here they get -EOPNOTSUPP. */
#include "config.h"

#include "cluster/clock.h"
#include "cluster/item.h"
#include "cluster/log.h"
#include "cluster/paxos.h"
#include "cluster/rpc.h"
#include "meta/catalog.h"
#include "meta/settings.h"
#include "meta/autosplit.h"
#include "meta/meta_group.h"
#include "meta/mover.h"
#include "meta/splitter.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define META_DEFAULT_WORKERS 4
#define META_WORKERS_MAX 64
#define META_DEFAULT_HEARTBEAT_TIMEOUT_MS 5000
#define META_DEFAULT_PARTITIONS 4
/* quorumctl table split waits this long for the groups at most. */
#define META_SPLIT_DEADLINE_MS 20000
/* SIGTERM: how long the leader of replicated metas gets to hand off. */
#define META_HAND_OFF_MS 1000

struct meta_options {
	const char *listen_url;
	const char *data_dir;
	int worker_count;
	int64_t heartbeat_timeout_ms;
	uint64_t item_max_bytes;
	uint32_t partition_count;
	/* --peers: the replicated metas' URLs (strings in peers_text), self among them. */
	char peers_text[PAXOS_MEMBERS_MAX * META_GROUP_URL_BYTES];
	const char *peer_urls[PAXOS_MEMBERS_MAX];
	size_t peer_count;
	uint32_t self_id;
};

/* The process's one context, passed to every handler. */
struct meta {
	struct meta_options options;
	struct catalog *catalog;
	struct settings *settings;  /* in the catalog's LevelDB; closed before it */
	struct splitter *splitter;
	struct autosplit *autosplit;
	struct mover *mover;
	struct meta_group *group;   /* --peers only */
	/* Client requests in handlers (replicated only): at most worker_count, so one rpc
	 * worker always stays free for the peers' Paxos messages a commit waits for. */
	atomic_int busy;
	/* Requests served, and table lookups among them (ClusterInfoResponse). */
	atomic_uint_fast64_t requests_served, table_lookups;
};

/* The one global: set by the signal handler, read by the main loop. */
static volatile sig_atomic_t meta_stop_requested;

static void meta_on_signal(int signal_number)
{
	(void)signal_number;
	meta_stop_requested = 1;
}

/* ---------------------------------------------------------------- handlers */

static void meta_fail(Quorum__Response *response, struct arena *arena, int err, const char *why)
{
	rpc_fail(response, arena, err, "%s", why[0] ? why : strerror(-err));
}

static void meta_handle_ping(Quorum__Response *response, struct arena *arena)
{
	Quorum__PingResponse *ping = arena_alloc(arena, sizeof(*ping));

	if (!ping) {
		rpc_fail(response, arena, -ENOMEM, "out of memory");
		return;
	}
	quorum__ping_response__init(ping);
	ping->role = "meta";
	response->result_case = QUORUM__RESPONSE__RESULT_PING;
	response->ping = ping;
}

static void meta_handle_register(struct meta *meta, const Quorum__RegisterNodeRequest *request,
				 Quorum__Response *response, struct arena *arena)
{
	Quorum__RegisterNodeResponse *result = arena_alloc(arena, sizeof(*result));
	char why[CATALOG_WHY_BYTES] = "";
	uint64_t node_id = 0;
	int err;

	if (!result) {
		rpc_fail(response, arena, -ENOMEM, "out of memory");
		return;
	}
	err = catalog_register_node(meta->catalog, request->has_node_id ? request->node_id : 0,
				    request->address, request->az, clock_monotonic_ms(),
				    &node_id, why);
	if (err < 0) {
		meta_fail(response, arena, err, why);
		return;
	}
	quorum__register_node_response__init(result);
	result->node_id = node_id;
	response->result_case = QUORUM__RESPONSE__RESULT_REGISTER_NODE;
	response->register_node = result;
}

static void meta_handle_heartbeat(struct meta *meta, const Quorum__HeartbeatRequest *request,
				  Quorum__Response *response, struct arena *arena)
{
	Quorum__HeartbeatResponse *result;
	char why[CATALOG_WHY_BYTES] = "";
	int err;

	err = catalog_heartbeat_node(meta->catalog, request->node_id, request->address,
				     request->has_capacity_bytes, request->capacity_bytes,
				     request->has_free_bytes, request->free_bytes,
				     clock_monotonic_ms(), why);
	if (err < 0) {
		meta_fail(response, arena, err, why);
		return;
	}
	/* Reports are for describe only: one that cannot be kept is no failure. */
	catalog_report_groups(meta->catalog, request->node_id, request->groups,
			      request->n_groups, clock_monotonic_ms());
	/* A split the groups made reaches the map before the assignments are made from it. */
	splitter_adopt_reports(meta->catalog, request->groups, request->n_groups);
	result = arena_alloc(arena, sizeof(*result));
	if (!result) {
		meta_fail(response, arena, -ENOMEM, "out of memory");
		return;
	}
	quorum__heartbeat_response__init(result);
	/* Every partition the node must host, and the reported ones it must remove. */
	err = catalog_node_assignments(meta->catalog, request->node_id, arena,
				       &result->partitions, &result->n_partitions);
	if (!err)
		err = catalog_retired_groups(meta->catalog, request->node_id, request->groups,
					     request->n_groups, arena, &result->retired,
					     &result->n_retired);
	if (err < 0) {
		meta_fail(response, arena, err, "out of memory");
		return;
	}
	response->result_case = QUORUM__RESPONSE__RESULT_HEARTBEAT;
	response->heartbeat = result;
}

static void meta_answer_table(Quorum__Response *response, struct arena *arena, int err,
			      Quorum__TableResponse *table, const char *why)
{
	if (err < 0) {
		meta_fail(response, arena, err, why);
		return;
	}
	response->result_case = QUORUM__RESPONSE__RESULT_TABLE;
	response->table = table;
}

/* config get and config set: both answer with the settings as they are now. */
static void meta_handle_settings(struct meta *meta, const Quorum__Request *request,
				 Quorum__Response *response, struct arena *arena)
{
	char why[SETTINGS_WHY_BYTES] = "";
	const char *key = NULL;
	enum setting_id id;
	int err = 0;

	if (request->op_case == QUORUM__REQUEST__OP_SET_SETTING) {
		key = request->set_setting->key;
		err = settings_set(meta->settings, key, request->set_setting->value, &id, why);
		/* The catalog judges node health itself: tell it the new timeout. */
		if (err == 0 && id == SETTING_HEARTBEAT_TIMEOUT_MS)
			catalog_set_heartbeat_timeout_ms(meta->catalog,
							 (int64_t)settings_get(meta->settings, id));
	} else if (request->get_settings->key && request->get_settings->key[0]) {
		key = request->get_settings->key;
	}
	if (err == 0)
		err = settings_describe(meta->settings, key, arena, &response->settings, why);
	if (err < 0) {
		rpc_fail(response, arena, err, "%s", why[0] ? why : strerror(-err));
		return;
	}
	response->result_case = QUORUM__RESPONSE__RESULT_SETTINGS;
}

static void meta_handle_op(struct meta *meta, const Quorum__Request *request,
			   Quorum__Response *response, struct arena *arena)
{
	Quorum__TableResponse *table = NULL;
	char why[CATALOG_WHY_BYTES] = "";
	int err;

	switch (request->op_case) {
	case QUORUM__REQUEST__OP_PING:
		meta_handle_ping(response, arena);
		break;
	case QUORUM__REQUEST__OP_REGISTER_NODE:
		meta_handle_register(meta, request->register_node, response, arena);
		break;
	case QUORUM__REQUEST__OP_HEARTBEAT:
		meta_handle_heartbeat(meta, request->heartbeat, response, arena);
		break;
	case QUORUM__REQUEST__OP_CREATE_TABLE:
		err = catalog_create_table(meta->catalog, request->create_table,
					   meta->options.partition_count, clock_monotonic_ms(),
					   clock_realtime_ns(), arena, &table, why);
		meta_answer_table(response, arena, err, table, why);
		break;
	case QUORUM__REQUEST__OP_DELETE_TABLE:
		err = catalog_delete_table(meta->catalog, request->delete_table->name.data,
					   request->delete_table->name.len, why);
		if (err < 0)
			meta_fail(response, arena, err, why);
		break;
	case QUORUM__REQUEST__OP_SPLIT_TABLE:
		err = splitter_split_table(meta->splitter, request->split_table,
					   clock_monotonic_ms() + META_SPLIT_DEADLINE_MS, why);
		if (err == 0)
			err = catalog_describe_table(meta->catalog, request->split_table->name.data,
						     request->split_table->name.len,
						     clock_monotonic_ms(), arena, &table, why);
		meta_answer_table(response, arena, err, table, why);
		break;
	case QUORUM__REQUEST__OP_DESCRIBE_TABLE:
		err = catalog_describe_table(meta->catalog, request->describe_table->name.data,
					     request->describe_table->name.len,
					     clock_monotonic_ms(), arena, &table, why);
		meta_answer_table(response, arena, err, table, why);
		break;
	case QUORUM__REQUEST__OP_UPDATE_TABLE:
		err = catalog_update_table(meta->catalog, request->update_table,
					   clock_monotonic_ms(), clock_realtime_ns(), arena,
					   &table, why);
		meta_answer_table(response, arena, err, table, why);
		break;
	case QUORUM__REQUEST__OP_LIST_TABLES:
		err = catalog_list_tables(meta->catalog, arena, &response->list_tables);
		if (err < 0)
			rpc_fail(response, arena, err, "out of memory");
		else
			response->result_case = QUORUM__RESPONSE__RESULT_LIST_TABLES;
		break;
	case QUORUM__REQUEST__OP_LIST_NODES:
		err = catalog_list_nodes(meta->catalog, clock_monotonic_ms(), arena,
					 &response->list_nodes);
		if (err < 0)
			rpc_fail(response, arena, err, "out of memory");
		else
			response->result_case = QUORUM__RESPONSE__RESULT_LIST_NODES;
		break;
	case QUORUM__REQUEST__OP_DRAIN_NODE:
		err = catalog_set_draining(meta->catalog, request->drain_node->node_id,
					   !(request->drain_node->has_undo &&
					     request->drain_node->undo), why);
		if (err == 0)
			err = catalog_list_nodes(meta->catalog, clock_monotonic_ms(), arena,
						 &response->list_nodes);
		if (err < 0)
			meta_fail(response, arena, err, why[0] ? why : strerror(-err));
		else
			response->result_case = QUORUM__RESPONSE__RESULT_LIST_NODES;
		break;
	case QUORUM__REQUEST__OP_CLUSTER_INFO:
		err = catalog_cluster_info(meta->catalog, clock_monotonic_ms(),
					   settings_get(meta->settings, SETTING_ITEM_MAX_BYTES),
					   arena, &response->cluster_info);
		if (err < 0) {
			rpc_fail(response, arena, err, "out of memory");
			break;
		}
		response->result_case = QUORUM__RESPONSE__RESULT_CLUSTER_INFO;
		response->cluster_info->has_requests_served = true;
		response->cluster_info->requests_served = atomic_load(&meta->requests_served);
		response->cluster_info->has_table_lookups = true;
		response->cluster_info->table_lookups = atomic_load(&meta->table_lookups);
		break;
	case QUORUM__REQUEST__OP_GET_SETTINGS:
	case QUORUM__REQUEST__OP_SET_SETTING:
		meta_handle_settings(meta, request, response, arena);
		break;
	default:
		rpc_fail(response, arena, -EOPNOTSUPP,
			 "operation %d is not served by the metadata service",
			 (int)request->op_case);
		break;
	}
}

/* Replicated metas: only the leader serves clients (meta_group.h); peers' Paxos messages
 * go to the group. */
static void meta_handle(void *ctx, const Quorum__Request *request, Quorum__Response *response,
			struct arena *arena)
{
	struct meta *meta = ctx;

	if (request->op_case != QUORUM__REQUEST__OP_PAXOS)
		atomic_fetch_add(&meta->requests_served, 1);
	if (request->op_case == QUORUM__REQUEST__OP_DESCRIBE_TABLE)
		atomic_fetch_add(&meta->table_lookups, 1);
	if (!meta->group || request->op_case == QUORUM__REQUEST__OP_PING) {
		meta_handle_op(meta, request, response, arena);
		return;
	}
	if (request->op_case == QUORUM__REQUEST__OP_PAXOS) {
		meta_group_handle_paxos(meta->group, request->paxos, response, arena);
		return;
	}
	if (!meta_group_serving(meta->group)) {
		meta_group_refuse(meta->group, response, arena);
		return;
	}
	if (atomic_fetch_add(&meta->busy, 1) >= meta->options.worker_count) {
		atomic_fetch_sub(&meta->busy, 1);
		rpc_fail(response, arena, -EBUSY, "metadata service busy; retry");
		return;
	}
	meta_handle_op(meta, request, response, arena);
	atomic_fetch_sub(&meta->busy, 1);
	/* Leadership went during the request: say where it went. */
	if (response->status == -EREMOTE)
		meta_group_refuse(meta->group, response, arena);
}

/* The group's on_lead: memory follows what the group applied while others led. */
static int meta_on_lead(void *ctx)
{
	struct meta *meta = ctx;
	int err = catalog_reload(meta->catalog, clock_monotonic_ms());

	if (err == 0)
		err = settings_reload(meta->settings);
	if (err == 0)
		catalog_set_heartbeat_timeout_ms(
			meta->catalog,
			(int64_t)settings_get(meta->settings, SETTING_HEARTBEAT_TIMEOUT_MS));
	return err;
}

/* ------------------------------------------------------------------- flags */

static void meta_usage(FILE *out)
{
	fprintf(out,
		"Usage: quorum-meta --listen URL --data DIR [OPTION]...\n"
		"The quorumfs metadata service: tables, partitions, storage nodes and\n"
		"replica placement, persisted with fsync in DIR/catalog.\n"
		"\n"
		"  -l, --listen URL              address to serve on, a nanomsg URL such as\n"
		"                                tcp://127.0.0.1:7100 (required)\n"
		"  -D, --data DIR                directory of the catalog; created when\n"
		"                                missing (required)\n"
		"  -w, --workers N               request worker threads, 1..%d (default %d)\n"
		"  -t, --heartbeat-timeout-ms N  a node without a heartbeat for N ms is down\n"
		"                                (default %d; the default of the setting\n"
		"                                heartbeat.timeout_ms)\n"
		"  -m, --item-max-bytes N        largest item the cluster accepts, reported\n"
		"                                to routers (default %u; the default of the\n"
		"                                setting item.max_bytes)\n"
		"  -p, --partitions N            partitions of a new table when the request\n"
		"                                names none, 1..%d (default %d)\n"
		"  -P, --peers URL,URL,URL       run as one of several replicated metadata\n"
		"                                services (at most %d), --listen being one of\n"
		"                                the URLs; each is the member numbered by its\n"
		"                                place in the list, so give every instance the\n"
		"                                same list. The catalog is then replicated\n"
		"                                with Paxos (WAL in DIR/paxos), the leader\n"
		"                                serves, and the others answer with its address\n"
		"                                (clients take the same list: --meta URL,URL,URL)\n"
		"  -h, --help                    print this help and exit\n"
		"  -V, --version                 print the version and exit\n"
		"\n"
		"Cluster settings changed with `quorumctl config set KEY VALUE` are kept\n"
		"in DIR/catalog and win over these flags; `config set KEY default` goes\n"
		"back to the flag's value.\n"
		"\n"
		"SIGTERM or SIGINT stops the service cleanly. Exit status: 0 after a\n"
		"clean stop, 1 when the service cannot start, 2 for bad flags.\n",
		META_WORKERS_MAX, META_DEFAULT_WORKERS, META_DEFAULT_HEARTBEAT_TIMEOUT_MS,
		ITEM_DEFAULT_MAX_BYTES, CATALOG_PARTITIONS_MAX, META_DEFAULT_PARTITIONS,
		PAXOS_MEMBERS_MAX);
}

/* Splits --peers into peer_urls and finds --listen among them. -1 with a message when the
 * list is not one. */
static int meta_parse_peers(struct meta_options *options, const char *text)
{
	char *saveptr = NULL;

	options->peer_count = 0;
	if (strlen(text) >= sizeof(options->peers_text)) {
		fprintf(stderr, "quorum-meta: --peers is too long\n");
		return -1;
	}
	snprintf(options->peers_text, sizeof(options->peers_text), "%s", text);
	for (char *url = strtok_r(options->peers_text, ",", &saveptr); url;
	     url = strtok_r(NULL, ",", &saveptr)) {
		if (options->peer_count == PAXOS_MEMBERS_MAX) {
			fprintf(stderr, "quorum-meta: --peers names more than %d services\n",
				PAXOS_MEMBERS_MAX);
			return -1;
		}
		if (!strstr(url, "://") || strlen(url) >= META_GROUP_URL_BYTES) {
			fprintf(stderr, "quorum-meta: --peers: '%s' is not a nanomsg URL such as "
				"tcp://127.0.0.1:7100\n", url);
			return -1;
		}
		for (size_t i = 0; i < options->peer_count; i++)
			if (strcmp(options->peer_urls[i], url) == 0) {
				fprintf(stderr, "quorum-meta: --peers names %s twice\n", url);
				return -1;
			}
		options->peer_urls[options->peer_count++] = url;
	}
	if (options->peer_count == 0) {
		fprintf(stderr, "quorum-meta: --peers is empty\n");
		return -1;
	}
	return 0;
}

/* Parses a decimal number in [min, max]; false when text is not one. */
static bool meta_parse_number(const char *text, unsigned long long min, unsigned long long max,
			      unsigned long long *out)
{
	unsigned long long value;
	char *end;

	if (!text[0] || text[0] == '-' || text[0] == '+')
		return false;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno || *end || value < min || value > max)
		return false;
	*out = value;
	return true;
}

/* Returns 0 to run, 1 when --help or --version was answered, -1 on a
 * usage error (message printed). */
static int meta_parse_flags(int argc, char **argv, struct meta_options *options)
{
	static const struct option long_options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "data", required_argument, NULL, 'D' },
		{ "workers", required_argument, NULL, 'w' },
		{ "heartbeat-timeout-ms", required_argument, NULL, 't' },
		{ "item-max-bytes", required_argument, NULL, 'm' },
		{ "partitions", required_argument, NULL, 'p' },
		{ "peers", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long value;
	int c;

	options->worker_count = META_DEFAULT_WORKERS;
	options->heartbeat_timeout_ms = META_DEFAULT_HEARTBEAT_TIMEOUT_MS;
	options->item_max_bytes = ITEM_DEFAULT_MAX_BYTES;
	options->partition_count = META_DEFAULT_PARTITIONS;
	while ((c = getopt_long(argc, argv, "l:D:w:t:m:p:P:hV", long_options, NULL)) != -1) {
		switch (c) {
		case 'l':
			options->listen_url = optarg;
			break;
		case 'D':
			options->data_dir = optarg;
			break;
		case 'w':
			if (!meta_parse_number(optarg, 1, META_WORKERS_MAX, &value))
				goto bad_number;
			options->worker_count = (int)value;
			break;
		case 't':
			if (!meta_parse_number(optarg, 1, INT32_MAX, &value))
				goto bad_number;
			options->heartbeat_timeout_ms = (int64_t)value;
			break;
		case 'm':
			/* A message must hold an item with its key and metadata. */
			if (!meta_parse_number(optarg, 1, NET_MESSAGE_MAX_BYTES / 2, &value))
				goto bad_number;
			options->item_max_bytes = value;
			break;
		case 'p':
			if (!meta_parse_number(optarg, 1, CATALOG_PARTITIONS_MAX, &value))
				goto bad_number;
			options->partition_count = (uint32_t)value;
			break;
		case 'P':
			if (meta_parse_peers(options, optarg) < 0)
				return -1;
			break;
		case 'h':
			meta_usage(stdout);
			return 1;
		case 'V':
			printf("quorum-meta %s\n", PACKAGE_VERSION);
			return 1;
		default:
			fprintf(stderr, "Try 'quorum-meta --help' for more information.\n");
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "quorum-meta: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (!options->listen_url || !options->data_dir) {
		fprintf(stderr, "quorum-meta: --listen and --data are required\n"
			"Try 'quorum-meta --help' for more information.\n");
		return -1;
	}
	for (size_t i = 0; i < options->peer_count && !options->self_id; i++)
		if (strcmp(options->peer_urls[i], options->listen_url) == 0)
			options->self_id = (uint32_t)(i + 1);
	if (options->peer_count && !options->self_id) {
		fprintf(stderr, "quorum-meta: --listen %s is not among --peers\n",
			options->listen_url);
		return -1;
	}
	return 0;
bad_number:
	fprintf(stderr, "quorum-meta: invalid value '%s' for --%s (see --help for the range)\n",
		optarg, c == 'w' ? "workers" : c == 't' ? "heartbeat-timeout-ms" :
		c == 'm' ? "item-max-bytes" : "partitions");
	return -1;
}

/* -------------------------------------------------------------------- main */

/* Installs the stop handler and blocks the stop signals in this thread, so
 * every thread started later (workers, LevelDB's) inherits the block and
 * the signal is taken only in main's sigsuspend: no wake-up is lost. */
static int meta_install_signals(sigset_t *wait_mask)
{
	struct sigaction action;
	sigset_t stop_signals;

	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	if (sigprocmask(SIG_BLOCK, &stop_signals, wait_mask) < 0)
		return -errno;
	sigdelset(wait_mask, SIGTERM);
	sigdelset(wait_mask, SIGINT);
	memset(&action, 0, sizeof(action));
	action.sa_handler = meta_on_signal;
	sigemptyset(&action.sa_mask);
	if (sigaction(SIGTERM, &action, NULL) < 0 || sigaction(SIGINT, &action, NULL) < 0)
		return -errno;
	/* A peer closing its socket must not kill us. */
	action.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &action, NULL) < 0)
		return -errno;
	return 0;
}

/* The settings over the flags' defaults; the catalog follows the stored
 * heartbeat timeout. */
static int meta_open_settings(struct meta *meta)
{
	uint64_t defaults[SETTING_COUNT];
	int err;

	settings_default_values(defaults);
	defaults[SETTING_ITEM_MAX_BYTES] = meta->options.item_max_bytes;
	defaults[SETTING_HEARTBEAT_TIMEOUT_MS] = (uint64_t)meta->options.heartbeat_timeout_ms;
	err = settings_open(catalog_leveldb(meta->catalog), defaults, &meta->settings);
	if (err < 0)
		return err;
	catalog_set_heartbeat_timeout_ms(meta->catalog,
					 (int64_t)settings_get(meta->settings,
							       SETTING_HEARTBEAT_TIMEOUT_MS));
	return 0;
}

/* --peers: the catalog's changes go through the group from now on. */
static int meta_start_group(struct meta *meta)
{
	struct meta_group_options options = {
		.data_dir = meta->options.data_dir,
		.peer_urls = meta->options.peer_urls,
		.peer_count = meta->options.peer_count,
		.self_id = meta->options.self_id,
		.on_lead = meta_on_lead,
		.ctx = meta,
	};
	int err;

	if (!meta->options.peer_count)
		return 0;
	err = meta_group_start(&options, catalog_leveldb(meta->catalog), &meta->group);
	if (err < 0)
		return err;
	catalog_set_committer(meta->catalog, meta_group_commit, meta_group_serving, meta->group);
	settings_set_committer(meta->settings, meta_group_commit, meta->group);
	return 0;
}

int main(int argc, char **argv)
{
	struct meta meta = { 0 };
	struct rpc_server *server = NULL;
	sigset_t wait_mask;
	int err;

	log_set_program("quorum-meta");
	err = meta_parse_flags(argc, argv, &meta.options);
	if (err != 0)
		return err > 0 ? 0 : 2;
	err = meta_install_signals(&wait_mask);
	if (err < 0) {
		log_error("cannot install signal handlers: %s", strerror(-err));
		return 1;
	}
	err = catalog_open(meta.options.data_dir, meta.options.heartbeat_timeout_ms,
			   &meta.catalog);
	if (err < 0) {
		log_error("cannot open the catalog in %s: %s", meta.options.data_dir,
			  strerror(-err));
		return 1;
	}
	err = meta_open_settings(&meta);
	if (err < 0) {
		log_error("cannot read the cluster settings in %s: %s", meta.options.data_dir,
			  strerror(-err));
		catalog_close(meta.catalog);
		return 1;
	}
	err = meta_start_group(&meta);
	if (err < 0) {
		log_error("cannot start the replication of the catalog: %s", strerror(-err));
		settings_close(meta.settings);
		catalog_close(meta.catalog);
		return 1;
	}
	err = splitter_new(meta.catalog, &meta.splitter);
	if (err == 0)
		err = autosplit_start(meta.catalog, meta.settings, meta.splitter, &meta.autosplit);
	if (err == 0)
		err = mover_start(meta.catalog, &meta.mover);
	if (err == 0)
		err = rpc_server_start(meta.options.listen_url,
				       meta.options.worker_count + (meta.group ? 1 : 0),
				       meta_handle, &meta, &server);
	if (err < 0) {
		log_error("cannot listen on %s: %s", meta.options.listen_url, strerror(-err));
		mover_stop(meta.mover);
		autosplit_stop(meta.autosplit);
		splitter_free(meta.splitter);
		meta_group_stop(meta.group);
		settings_close(meta.settings);
		catalog_close(meta.catalog);
		return 1;
	}
	log_info("serving on %s with %d workers (data %s, version %s)",
		 meta.options.listen_url, meta.options.worker_count, meta.options.data_dir,
		 PACKAGE_VERSION);

	/* Workers do the work; this thread only waits for a stop signal. */
	while (!meta_stop_requested)
		sigsuspend(&wait_mask);

	log_info("stopping");
	/* While the server still takes the peers' messages: another meta takes over. */
	meta_group_hand_off(meta.group, META_HAND_OFF_MS);
	rpc_server_stop(server);
	mover_stop(meta.mover);
	autosplit_stop(meta.autosplit);
	splitter_free(meta.splitter);
	meta_group_stop(meta.group);
	settings_close(meta.settings);
	catalog_close(meta.catalog);
	log_info("stopped");
	return 0;
}

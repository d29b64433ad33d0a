/* ctl.c: quorumctl, the operator's CLI. Finds the metadata service (from
 * --meta, or DATADIR/cluster.json written by `quorumfs --local`), sends one
 * or two requests, and prints the answer as aligned text or, with --json,
 * as one pretty-printed JSON value for scripts.
 *
 * Exit status: 0 done, 1 the operation failed (one line on stderr), 2 the
 * command line is wrong. */
#include "config.h"

#include "cluster/clock.h"
#include "cluster/meta_client.h"
#include "cluster/rpc.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define CTL_DEFAULT_TIMEOUT_S 10
#define CTL_TIMEOUT_MAX_S 3600
#define CTL_DEFAULT_MODE 0755
/* Escaped names: every byte may become \xNN. */
#define CTL_NAME_TEXT_BYTES (4 * 255 + 1)

enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAILED = 1,
	CTL_EXIT_USAGE = 2,
};

struct ctl_options {
	const char *data_dir;
	const char *meta_url;
	bool json;
	bool force;
	int timeout_s;
	uint32_t partition_count;   /* 0: the service's default */
	bool sort_key;              /* `table create --sort-key` */
	const char *table;          /* `partition list --table T` */
	bool has_split_partition;   /* `table split --partition ID` */
	uint64_t split_partition;
	bool has_split_at;          /* `table split --at HASH` */
	uint64_t split_at;
};

/* The state of one run: options, the connection, the command's words. */
struct ctl {
	struct ctl_options options;
	char *meta_url;             /* malloc'd */
	struct meta_client *client;	/* one meta, or the replicated metas */
	int64_t deadline_ms;
	char **words;
	int word_count;
};

/* ------------------------------------------------------------------- usage */

static void ctl_usage(FILE *out)
{
	fprintf(out,
		"Usage: quorumctl [-d DATADIR | --meta URL] [OPTION]... COMMAND...\n"
		"Operate a quorumfs cluster through its metadata service.\n"
		"\n"
		"Where the cluster is (one of them is required):\n"
		"  -d, --data-dir DATADIR  the DATADIR of `quorumfs --local`; the service's\n"
		"                          address is read from DATADIR/cluster.json\n"
		"  -m, --meta URL[,URL...] the metadata service's address, such as\n"
		"                          tcp://127.0.0.1:7100, or every replicated\n"
		"                          meta's, in their --peers order\n"
		"\n"
		"Options:\n"
		"  -j, --json              print one JSON value (pretty) instead of text\n"
		"  -t, --timeout SECONDS   give up on the service after SECONDS, 1..%d\n"
		"                          (default %d)\n"
		"  -p, --partitions N      `table create`: partitions of the new table\n"
		"                          (default: the service's, 4 unless configured)\n"
		"  -f, --force             `table delete`: delete without checking for items\n"
		"      --sort-key          `table create`: items have a sort key; on the\n"
		"                          mount, T/P/S is the item (P, S)\n"
		"      --table T           `partition list`: only the partitions of table T\n"
		"      --partition ID      `table split`: only partition ID\n"
		"      --at HASH           `table split`: split at this hash (16 hex digits),\n"
		"                          the first of the new partition's range\n"
		"  -h, --help              print this help and exit\n"
		"  -V, --version           print the version and exit\n"
		"\n"
		"Commands:\n"
		"  status                  the cluster (nodes up, space, tables), then a row\n"
		"                          per storage node: id, AZ, address, up or down,\n"
		"                          heartbeat age, replicas held, free and capacity\n"
		"  table list              every table: name, id, mode, owner\n"
		"  table describe T        table T: id, mode, owner, times, and a row per\n"
		"                          partition: id, hash range, epoch, leader,\n"
		"                          ballot, commit and applied slot, then each\n"
		"                          replica: node, AZ, up or down, role, slots and\n"
		"                          the age of its last report\n"
		"  table create T          create table T (mode %04o, owned by the caller)\n"
		"  table split T           split every partition of T in two now (or the one\n"
		"                          of --partition, at --at): each keeps the lower\n"
		"                          half of its bytes, a new partition on the same\n"
		"                          nodes takes the upper half; then as describe\n"
		"  table delete T --force  delete table T and forget its items. quorumctl\n"
		"                          does not check that T is empty: to delete only an\n"
		"                          empty table, use rmdir on the mount instead\n"
		"  node list               every storage node: id, AZ, address, up or down,\n"
		"                          heartbeat age, replicas and leaders held, free\n"
		"                          and capacity\n"
		"  node drain N            move every replica off node N (to nodes in the\n"
		"                          AZs its partitions lack), one partition at a\n"
		"                          time; N takes no new replica. `node undrain N`\n"
		"                          stops. Meta also moves replicas onto nodes that\n"
		"                          hold fewer than the others (a node added)\n"
		"  partition list          every partition (of --table T): table, id, hash\n"
		"                          range, epoch, replicas (node/AZ), leader, size,\n"
		"                          items, reads and writes per second over the last\n"
		"                          10 s, and the hottest partition keys (--json:\n"
		"                          per replica too)\n"
		"  config get [KEY]        the cluster settings (or one): value, default and\n"
		"                          whether an operator set it\n"
		"  config set KEY VALUE    change a setting at once, cluster-wide and kept\n"
		"                          across restarts; VALUE is a number with an\n"
		"                          optional unit (64MiB, 30s, 500ms) or 'default'.\n"
		"                          Keys: item.max_bytes (largest item; bigger writes\n"
		"                          fail with EFBIG), split.bytes (a partition larger\n"
		"                          than this splits), split.rate and split.window_s\n"
		"                          (a partition serving more reads + writes per\n"
		"                          second than split.rate for split.window_s splits\n"
		"                          for consumption), heartbeat.timeout_ms (a node\n"
		"                          silent this long is down)\n"
		"\n"
		"Exit status: 0 success, 1 the operation failed (or no answer), 2 usage error.\n",
		CTL_TIMEOUT_MAX_S, CTL_DEFAULT_TIMEOUT_S, CTL_DEFAULT_MODE);
}

static int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "quorumctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'quorumctl --help' for more information.\n");
	return CTL_EXIT_USAGE;
}

static int ctl_fail(const char *what, const char *why)
{
	fprintf(stderr, "quorumctl: %s: %s\n", what, why);
	return CTL_EXIT_FAILED;
}

/* ------------------------------------------------------------- formatting */

/* A name (any bytes but '/' and NUL) made printable: control bytes and
 * backslashes as \xNN, other bytes as they are. out holds
 * CTL_NAME_TEXT_BYTES; names longer than 255 bytes are cut. */
static const char *ctl_name_text(const uint8_t *name, size_t name_bytes, char *out,
				 bool escape_high)
{
	size_t used = 0;

	for (size_t i = 0; i < name_bytes && i < 255; i++) {
		uint8_t c = name[i];

		if (c < 0x20 || c == 0x7f || c == '\\' || (escape_high && c >= 0x80)) {
			snprintf(out + used, 5, "\\x%02x", c);
			used += 4;
		} else {
			out[used++] = (char)c;
		}
	}
	out[used] = '\0';
	return out;
}

/* A JSON string of a name: as is when it is UTF-8, escaped otherwise. */
static json_t *ctl_json_name(const ProtobufCBinaryData *name)
{
	char text[CTL_NAME_TEXT_BYTES];
	json_t *string = json_stringn((const char *)name->data, name->len);

	if (string)
		return string;
	return json_string(ctl_name_text(name->data, name->len, text, true));
}

/* Integers above JSON's safe range would lose precision in most readers. */
static json_t *ctl_json_u64(uint64_t value)
{
	return json_integer((json_int_t)(value > INT64_MAX ? INT64_MAX : value));
}

static void ctl_format_bytes(uint64_t bytes, char *out, size_t out_bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double value = (double)bytes;
	size_t unit = 0;

	while (value >= 1024 && unit + 1 < sizeof(units) / sizeof(units[0])) {
		value /= 1024;
		unit++;
	}
	if (unit == 0)
		snprintf(out, out_bytes, "%" PRIu64 " B", bytes);
	else
		snprintf(out, out_bytes, "%.1f %s", value, units[unit]);
}

/* ISO 8601 in UTC with nanoseconds. */
static void ctl_format_time(int64_t time_ns, char *out, size_t out_bytes)
{
	time_t seconds = (time_t)(time_ns / 1000000000);
	long nanoseconds = (long)(time_ns % 1000000000);
	struct tm tm;
	char stamp[32];

	if (nanoseconds < 0) {
		nanoseconds += 1000000000;
		seconds--;
	}
	if (!gmtime_r(&seconds, &tm) || !strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S",
						  &tm)) {
		snprintf(out, out_bytes, "%" PRId64 " ns", time_ns);
		return;
	}
	snprintf(out, out_bytes, "%s.%09ldZ", stamp, nanoseconds);
}

static void ctl_format_age(const Quorum__NodeInfo *node, char *out, size_t out_bytes)
{
	if (!node->has_heartbeat_age_ms)
		snprintf(out, out_bytes, "never");
	else
		snprintf(out, out_bytes, "%.1fs ago", (double)node->heartbeat_age_ms / 1000);
}

static int ctl_print_json(json_t *value)
{
	int err;

	if (!value)
		return ctl_fail("json", "out of memory");
	err = json_dumpf(value, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(value);
	if (err < 0 || fputc('\n', stdout) == EOF)
		return ctl_fail("output", strerror(errno));
	return CTL_EXIT_OK;
}

/* ------------------------------------------------------------- connection */

/* Reads the metadata service's URL from DATADIR/cluster.json. */
static int ctl_read_cluster_file(const char *data_dir, char **url)
{
	char path[4096];
	json_error_t error;
	json_t *root, *meta;

	if ((size_t)snprintf(path, sizeof(path), "%s/cluster.json", data_dir) >= sizeof(path))
		return ctl_fail(data_dir, "path too long");
	root = json_load_file(path, 0, &error);
	if (!root) {
		fprintf(stderr, "quorumctl: cannot read %s: %s (is DATADIR the one given to "
			"`quorumfs --local`?)\n", path, error.text);
		return CTL_EXIT_FAILED;
	}
	meta = json_is_object(root) ? json_object_get(root, "meta") : NULL;
	if (!json_is_string(meta) || json_string_length(meta) == 0) {
		json_decref(root);
		fprintf(stderr, "quorumctl: %s has no \"meta\" address\n", path);
		return CTL_EXIT_FAILED;
	}
	*url = strdup(json_string_value(meta));
	json_decref(root);
	if (!*url)
		return ctl_fail(path, "out of memory");
	return CTL_EXIT_OK;
}

/* Sends request; on failure prints one line and returns the exit status. */
static int ctl_call(struct ctl *ctl, const char *what, Quorum__Request *request,
		    Quorum__Response **response)
{
	struct rpc_error error = { 0 };
	int err = meta_client_call(ctl->client, request, ctl->deadline_ms, response, &error);

	if (err == -ETIMEDOUT) {
		fprintf(stderr, "quorumctl: no answer from %s within %d s\n", ctl->meta_url,
			ctl->options.timeout_s);
		return CTL_EXIT_FAILED;
	}
	if (err < 0)
		return ctl_fail(what, error.why[0] ? error.why : strerror(-err));
	return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ status */

static json_t *ctl_json_node(const Quorum__NodeInfo *node)
{
	json_t *object = json_object();

	if (!object)
		return NULL;
	json_object_set_new(object, "id", ctl_json_u64(node->id));
	json_object_set_new(object, "az", json_string(node->az));
	json_object_set_new(object, "address", json_string(node->address));
	json_object_set_new(object, "up", json_boolean(node->up));
	json_object_set_new(object, "heartbeat_age_ms", node->has_heartbeat_age_ms ?
			    ctl_json_u64(node->heartbeat_age_ms) : json_null());
	json_object_set_new(object, "replicas", ctl_json_u64(node->replica_count));
	json_object_set_new(object, "draining", json_boolean(node->draining));
	json_object_set_new(object, "free_bytes", ctl_json_u64(node->free_bytes));
	json_object_set_new(object, "capacity_bytes", ctl_json_u64(node->capacity_bytes));
	return object;
}

/* A list of node ids; null when empty. */
static json_t *ctl_json_ids(const uint64_t *ids, size_t count)
{
	json_t *array;

	if (count == 0)
		return json_null();
	array = json_array();
	for (size_t i = 0; array && i < count; i++)
		json_array_append_new(array, ctl_json_u64(ids[i]));
	return array;
}

static int ctl_status_json(const Quorum__ClusterInfoResponse *info,
			   const Quorum__ListNodesResponse *nodes)
{
	json_t *root = json_object(), *cluster = json_object(), *list = json_array();

	if (!root || !cluster || !list) {
		json_decref(root);
		json_decref(cluster);
		json_decref(list);
		return ctl_print_json(NULL);
	}
	json_object_set_new(cluster, "nodes_up", ctl_json_u64(info->nodes_up));
	json_object_set_new(cluster, "nodes_total", ctl_json_u64(info->nodes_total));
	json_object_set_new(cluster, "capacity_bytes", ctl_json_u64(info->capacity_bytes));
	json_object_set_new(cluster, "free_bytes", ctl_json_u64(info->free_bytes));
	json_object_set_new(cluster, "tables", ctl_json_u64(info->table_count));
	json_object_set_new(cluster, "item_max_bytes", ctl_json_u64(info->item_max_bytes));
	json_object_set_new(cluster, "meta_requests_served",
			    ctl_json_u64(info->requests_served));
	json_object_set_new(cluster, "meta_table_lookups", ctl_json_u64(info->table_lookups));
	for (size_t i = 0; i < nodes->n_nodes; i++)
		json_array_append_new(list, ctl_json_node(nodes->nodes[i]));
	json_object_set_new(root, "cluster", cluster);
	json_object_set_new(root, "nodes", list);
	return ctl_print_json(root);
}

static void ctl_status_text(const Quorum__ClusterInfoResponse *info,
			    const Quorum__ListNodesResponse *nodes)
{
	char capacity[32], free_text[32], item_max[32], age[32];
	int address_width = (int)strlen("ADDRESS"), az_width = (int)strlen("AZ");

	ctl_format_bytes(info->capacity_bytes, capacity, sizeof(capacity));
	ctl_format_bytes(info->free_bytes, free_text, sizeof(free_text));
	ctl_format_bytes(info->item_max_bytes, item_max, sizeof(item_max));
	printf("cluster: %u/%u nodes up, %u table%s, %s free of %s, items up to %s\n",
	       info->nodes_up, info->nodes_total, info->table_count,
	       info->table_count == 1 ? "" : "s", free_text, capacity, item_max);
	printf("meta: %" PRIu64 " requests served since it started, %" PRIu64
	       " of them table lookups\n", info->requests_served, info->table_lookups);
	if (nodes->n_nodes == 0) {
		printf("no storage node has registered\n");
		return;
	}
	for (size_t i = 0; i < nodes->n_nodes; i++) {
		int address_bytes = (int)strlen(nodes->nodes[i]->address);
		int az_bytes = (int)strlen(nodes->nodes[i]->az);

		if (address_bytes > address_width)
			address_width = address_bytes;
		if (az_bytes > az_width)
			az_width = az_bytes;
	}
	printf("\n%-6s %-*s %-*s %-5s %-12s %8s  %s\n", "NODE", az_width, "AZ", address_width,
	       "ADDRESS", "STATE", "HEARTBEAT", "REPLICAS", "FREE/CAPACITY");
	for (size_t i = 0; i < nodes->n_nodes; i++) {
		const Quorum__NodeInfo *node = nodes->nodes[i];

		ctl_format_bytes(node->free_bytes, free_text, sizeof(free_text));
		ctl_format_bytes(node->capacity_bytes, capacity, sizeof(capacity));
		ctl_format_age(node, age, sizeof(age));
		printf("%-6" PRIu64 " %-*s %-*s %-5s %-12s %8u  %s / %s\n", node->id, az_width,
		       node->az, address_width, node->address, node->up ? "up" : "down", age,
		       node->replica_count, free_text, capacity);
	}
}

static int ctl_status(struct ctl *ctl)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__ClusterInfoRequest info_request = QUORUM__CLUSTER_INFO_REQUEST__INIT;
	Quorum__ListNodesRequest nodes_request = QUORUM__LIST_NODES_REQUEST__INIT;
	Quorum__Response *info = NULL, *nodes = NULL;
	int status;

	if (ctl->word_count != 1)
		return ctl_usage_error("%s takes no arguments", "status");
	request.op_case = QUORUM__REQUEST__OP_CLUSTER_INFO;
	request.cluster_info = &info_request;
	status = ctl_call(ctl, "status", &request, &info);
	if (status != CTL_EXIT_OK)
		return status;
	request.op_case = QUORUM__REQUEST__OP_LIST_NODES;
	request.list_nodes = &nodes_request;
	status = ctl_call(ctl, "status", &request, &nodes);
	if (status == CTL_EXIT_OK) {
		if (ctl->options.json) {
			status = ctl_status_json(info->cluster_info, nodes->list_nodes);
		} else {
			ctl_status_text(info->cluster_info, nodes->list_nodes);
			if (fflush(stdout) == EOF)
				status = ctl_fail("output", strerror(errno));
		}
		quorum__response__free_unpacked(nodes, NULL);
	}
	quorum__response__free_unpacked(info, NULL);
	return status;
}

/* ------------------------------------------------------------------ tables */

static json_t *ctl_json_table_head(const Quorum__TableInfo *table)
{
	json_t *object = json_object();

	if (!object)
		return NULL;
	json_object_set_new(object, "name", ctl_json_name(&table->name));
	json_object_set_new(object, "id", ctl_json_u64(table->id));
	json_object_set_new(object, "mode", json_integer(table->mode));
	json_object_set_new(object, "uid", json_integer(table->uid));
	json_object_set_new(object, "gid", json_integer(table->gid));
	json_object_set_new(object, "mtime_ns", json_integer(table->mtime_ns));
	json_object_set_new(object, "ctime_ns", json_integer(table->ctime_ns));
	json_object_set_new(object, "has_sort_key", json_boolean(table->has_sort_key));
	return object;
}

static int ctl_table_list(struct ctl *ctl)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__ListTablesRequest list_request = QUORUM__LIST_TABLES_REQUEST__INIT;
	Quorum__ListTablesResponse *list;
	Quorum__Response *response;
	char name[CTL_NAME_TEXT_BYTES];
	int status;

	if (ctl->word_count != 2)
		return ctl_usage_error("%s takes no arguments", "table list");
	request.op_case = QUORUM__REQUEST__OP_LIST_TABLES;
	request.list_tables = &list_request;
	status = ctl_call(ctl, "table list", &request, &response);
	if (status != CTL_EXIT_OK)
		return status;
	list = response->list_tables;
	if (ctl->options.json) {
		json_t *array = json_array();

		for (size_t i = 0; array && i < list->n_tables; i++)
			json_array_append_new(array, ctl_json_table_head(list->tables[i]));
		status = ctl_print_json(array);
	} else if (list->n_tables == 0) {
		printf("no tables\n");
	} else {
		int name_width = (int)strlen("NAME");

		for (size_t i = 0; i < list->n_tables; i++) {
			const Quorum__TableInfo *table = list->tables[i];
			int width = (int)strlen(ctl_name_text(table->name.data, table->name.len,
							      name, false));
			if (width > name_width)
				name_width = width;
		}
		printf("%-*s %8s %5s %6s %6s\n", name_width, "NAME", "ID", "MODE", "UID", "GID");
		for (size_t i = 0; i < list->n_tables; i++) {
			const Quorum__TableInfo *table = list->tables[i];

			printf("%-*s %8" PRIu64 "  %04o %6u %6u\n", name_width,
			       ctl_name_text(table->name.data, table->name.len, name, false),
			       table->id, table->mode, table->uid, table->gid);
		}
	}
	quorum__response__free_unpacked(response, NULL);
	if (status == CTL_EXIT_OK && fflush(stdout) == EOF)
		status = ctl_fail("output", strerror(errno));
	return status;
}

static const Quorum__NodeInfo *ctl_find_node(const Quorum__TableResponse *table, uint64_t id)
{
	for (size_t i = 0; i < table->n_nodes; i++)
		if (table->nodes[i]->id == id)
			return table->nodes[i];
	return NULL;
}

/* The last report of node_id's replica of partition_id, or NULL. */
static const Quorum__ReplicaStatus *ctl_find_report(const Quorum__TableResponse *table,
						    uint64_t partition_id, uint64_t node_id)
{
	for (size_t i = 0; i < table->n_replicas; i++)
		if (table->replicas[i]->partition_id == partition_id &&
		    table->replicas[i]->node_id == node_id && table->replicas[i]->report)
			return table->replicas[i];
	return NULL;
}

static const char *ctl_role_name(uint32_t role)
{
	switch (role) {
	case 0: return "follower";
	case 1: return "precandidate";
	case 2: return "candidate";
	case 3: return "leader";
	default: return "unknown";
	}
}

/* What the replicas of a partition agree on: the leader (the replica that
 * reports itself leader, else what most report), and the leader's view of
 * ballot and commit slot (else the highest reported). */
struct ctl_partition_view {
	uint64_t leader_id;
	uint64_t ballot_round;
	uint32_t ballot_node_id;
	uint64_t commit_slot;
	uint64_t applied_slot;		/* the leader's */
	bool known;
};

static void ctl_partition_view(const Quorum__TableResponse *table,
			       const Quorum__PartitionInfo *partition,
			       struct ctl_partition_view *view)
{
	const Quorum__GroupReport *leader = NULL;

	memset(view, 0, sizeof(*view));
	for (size_t r = 0; r < partition->n_replicas; r++) {
		const Quorum__ReplicaStatus *status =
			ctl_find_report(table, partition->id, partition->replicas[r]);
		const Quorum__GroupReport *report = status ? status->report : NULL;

		if (!report)
			continue;
		view->known = true;
		if (report->role == 3 && (!leader || report->ballot_round > leader->ballot_round))
			leader = report;
		if (!view->leader_id && report->leader_id)
			view->leader_id = report->leader_id;
		if (report->ballot_round > view->ballot_round ||
		    (report->ballot_round == view->ballot_round &&
		     report->ballot_node_id > view->ballot_node_id)) {
			view->ballot_round = report->ballot_round;
			view->ballot_node_id = report->ballot_node_id;
		}
		if (report->commit_slot > view->commit_slot)
			view->commit_slot = report->commit_slot;
	}
	if (leader) {
		for (size_t r = 0; r < partition->n_replicas; r++) {
			const Quorum__ReplicaStatus *status =
				ctl_find_report(table, partition->id, partition->replicas[r]);

			if (status && status->report == leader)
				view->leader_id = partition->replicas[r];
		}
		view->ballot_round = leader->ballot_round;
		view->ballot_node_id = leader->ballot_node_id;
		view->commit_slot = leader->commit_slot;
		view->applied_slot = leader->applied_slot;
	}
}

static void ctl_hex(uint64_t value, char out[17])
{
	snprintf(out, 17, "%016" PRIx64, value);
}

static int ctl_table_json(const Quorum__TableResponse *response)
{
	const Quorum__TableInfo *table = response->table;
	json_t *root = ctl_json_table_head(table), *partitions = json_array();
	json_t *nodes = json_array();
	struct ctl_partition_view view;
	char hex[17];

	if (!root || !partitions || !nodes) {
		json_decref(root);
		json_decref(partitions);
		json_decref(nodes);
		return ctl_print_json(NULL);
	}
	for (size_t p = 0; p < table->n_partitions; p++) {
		const Quorum__PartitionInfo *partition = table->partitions[p];
		json_t *object = json_object(), *replicas = json_array();

		if (!object || !replicas) {
			json_decref(object);
			json_decref(replicas);
			json_decref(root);
			json_decref(partitions);
			json_decref(nodes);
			return ctl_print_json(NULL);
		}
		json_object_set_new(object, "id", ctl_json_u64(partition->id));
		ctl_hex(partition->hash_first, hex);
		json_object_set_new(object, "hash_first", json_string(hex));
		ctl_hex(partition->hash_last, hex);
		json_object_set_new(object, "hash_last", json_string(hex));
		json_object_set_new(object, "epoch", ctl_json_u64(partition->epoch));
		json_object_set_new(object, "moving_to",
				    ctl_json_ids(partition->target_replicas,
						 partition->n_target_replicas));
		ctl_partition_view(response, partition, &view);
		json_object_set_new(object, "leader_id", view.leader_id ?
				    ctl_json_u64(view.leader_id) : json_null());
		json_object_set_new(object, "ballot_round", ctl_json_u64(view.ballot_round));
		json_object_set_new(object, "ballot_node_id", ctl_json_u64(view.ballot_node_id));
		json_object_set_new(object, "commit_slot", ctl_json_u64(view.commit_slot));
		json_object_set_new(object, "applied_slot", ctl_json_u64(view.applied_slot));
		for (size_t r = 0; r < partition->n_replicas; r++) {
			const Quorum__NodeInfo *node = ctl_find_node(response,
								     partition->replicas[r]);
			const Quorum__ReplicaStatus *status =
				ctl_find_report(response, partition->id, partition->replicas[r]);
			json_t *replica = json_object();

			if (!replica)
				continue;
			json_object_set_new(replica, "node_id",
					    ctl_json_u64(partition->replicas[r]));
			json_object_set_new(replica, "az", node ? json_string(node->az) :
					    json_null());
			json_object_set_new(replica, "up", json_boolean(node && node->up));
			if (status) {
				const Quorum__GroupReport *report = status->report;

				json_object_set_new(replica, "role",
						    json_string(ctl_role_name(report->role)));
				json_object_set_new(replica, "leader_id",
						    ctl_json_u64(report->leader_id));
				json_object_set_new(replica, "ballot_round",
						    ctl_json_u64(report->ballot_round));
				json_object_set_new(replica, "ballot_node_id",
						    ctl_json_u64(report->ballot_node_id));
				json_object_set_new(replica, "commit_slot",
						    ctl_json_u64(report->commit_slot));
				json_object_set_new(replica, "applied_slot",
						    ctl_json_u64(report->applied_slot));
				json_object_set_new(replica, "lease_valid",
						    json_boolean(report->lease_valid));
				json_object_set_new(replica, "report_age_ms",
						    ctl_json_u64(status->report_age_ms));
			} else {
				json_object_set_new(replica, "role", json_null());
			}
			json_array_append_new(replicas, replica);
		}
		json_object_set_new(object, "replicas", replicas);
		json_array_append_new(partitions, object);
	}
	for (size_t i = 0; i < response->n_nodes; i++)
		json_array_append_new(nodes, ctl_json_node(response->nodes[i]));
	json_object_set_new(root, "partitions", partitions);
	json_object_set_new(root, "nodes", nodes);
	return ctl_print_json(root);
}

static void ctl_table_text(const Quorum__TableResponse *response)
{
	const Quorum__TableInfo *table = response->table;
	char name[CTL_NAME_TEXT_BYTES], mtime[64], ctime[64], first[17], last[17];

	ctl_format_time(table->mtime_ns, mtime, sizeof(mtime));
	ctl_format_time(table->ctime_ns, ctime, sizeof(ctime));
	printf("table %s\n", ctl_name_text(table->name.data, table->name.len, name, false));
	printf("  id %" PRIu64 ", mode %04o, uid %u, gid %u, sort key: %s\n", table->id,
	       table->mode, table->uid, table->gid, table->has_sort_key ? "yes" : "no");
	printf("  mtime %s\n  ctime %s\n", mtime, ctime);
	printf("  %zu partition%s\n\n", table->n_partitions, table->n_partitions == 1 ? "" : "s");
	printf("%-9s %-34s %5s %6s %12s %10s %10s\n", "PARTITION", "HASH RANGE", "EPOCH",
	       "LEADER", "BALLOT", "COMMIT", "APPLIED");
	for (size_t p = 0; p < table->n_partitions; p++) {
		const Quorum__PartitionInfo *partition = table->partitions[p];
		struct ctl_partition_view view;
		char leader[24], ballot[48];

		ctl_partition_view(response, partition, &view);
		ctl_hex(partition->hash_first, first);
		ctl_hex(partition->hash_last, last);
		if (view.leader_id)
			snprintf(leader, sizeof(leader), "%" PRIu64, view.leader_id);
		else
			snprintf(leader, sizeof(leader), "-");
		snprintf(ballot, sizeof(ballot), "%" PRIu64 ".%" PRIu32, view.ballot_round,
			 view.ballot_node_id);
		printf("%-9" PRIu64 " %s..%s %5" PRIu64 " %6s %12s %10" PRIu64 " %10" PRIu64 "\n",
		       partition->id, first, last, partition->epoch, leader,
		       view.known ? ballot : "-", view.commit_slot, view.applied_slot);
		for (size_t r = 0; r < partition->n_replicas; r++) {
			const Quorum__NodeInfo *node = ctl_find_node(response,
								     partition->replicas[r]);
			const Quorum__ReplicaStatus *status =
				ctl_find_report(response, partition->id, partition->replicas[r]);

			printf("    node %-4" PRIu64 " az %-4s %-4s", partition->replicas[r],
			       node ? node->az : "?", node && node->up ? "up" : "down");
			if (status)
				printf(" %-12s commit %" PRIu64 " applied %" PRIu64
				       "%s, reported %" PRIu64 " ms ago\n",
				       ctl_role_name(status->report->role),
				       status->report->commit_slot, status->report->applied_slot,
				       status->report->lease_valid ? ", lease" : "",
				       status->report_age_ms);
			else
				printf(" no report\n");
		}
	}
}

static int ctl_table_show(struct ctl *ctl, Quorum__Response *response)
{
	int status = CTL_EXIT_OK;

	if (ctl->options.json) {
		status = ctl_table_json(response->table);
	} else {
		ctl_table_text(response->table);
		if (fflush(stdout) == EOF)
			status = ctl_fail("output", strerror(errno));
	}
	quorum__response__free_unpacked(response, NULL);
	return status;
}

static int ctl_table_describe(struct ctl *ctl, const char *name)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__TableRequest table_request = QUORUM__TABLE_REQUEST__INIT;
	Quorum__Response *response;
	char what[300];
	int status;

	snprintf(what, sizeof(what), "table describe %s", name);
	table_request.name.data = (uint8_t *)name;
	table_request.name.len = strlen(name);
	request.op_case = QUORUM__REQUEST__OP_DESCRIBE_TABLE;
	request.describe_table = &table_request;
	status = ctl_call(ctl, what, &request, &response);
	if (status != CTL_EXIT_OK)
		return status;
	return ctl_table_show(ctl, response);
}

static int ctl_table_create(struct ctl *ctl, const char *name)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__CreateTableRequest create = QUORUM__CREATE_TABLE_REQUEST__INIT;
	Quorum__Response *response;
	char what[300];
	int status;

	snprintf(what, sizeof(what), "table create %s", name);
	create.name.data = (uint8_t *)name;
	create.name.len = strlen(name);
	create.mode = CTL_DEFAULT_MODE;
	create.uid = (uint32_t)getuid();
	create.gid = (uint32_t)getgid();
	if (ctl->options.partition_count) {
		create.has_partition_count = true;
		create.partition_count = ctl->options.partition_count;
	}
	create.has_has_sort_key = ctl->options.sort_key;
	create.has_sort_key = ctl->options.sort_key;
	request.op_case = QUORUM__REQUEST__OP_CREATE_TABLE;
	request.create_table = &create;
	status = ctl_call(ctl, what, &request, &response);
	if (status != CTL_EXIT_OK)
		return status;
	return ctl_table_show(ctl, response);
}

static int ctl_table_delete(struct ctl *ctl, const char *name)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__TableRequest table_request = QUORUM__TABLE_REQUEST__INIT;
	Quorum__Response *response;
	char what[300], text[CTL_NAME_TEXT_BYTES];
	int status;

	if (!ctl->options.force) {
		fprintf(stderr, "quorumctl: table delete %s: quorumctl does not check that the "
			"table is empty; remove it with rmdir on the mount, or add --force to "
			"delete it with any items it holds\n", name);
		return CTL_EXIT_USAGE;
	}
	snprintf(what, sizeof(what), "table delete %s", name);
	table_request.name.data = (uint8_t *)name;
	table_request.name.len = strlen(name);
	request.op_case = QUORUM__REQUEST__OP_DELETE_TABLE;
	request.delete_table = &table_request;
	status = ctl_call(ctl, what, &request, &response);
	if (status != CTL_EXIT_OK)
		return status;
	quorum__response__free_unpacked(response, NULL);
	if (ctl->options.json) {
		ProtobufCBinaryData deleted = { strlen(name), (uint8_t *)name };
		json_t *object = json_object();

		if (object)
			json_object_set_new(object, "deleted", ctl_json_name(&deleted));
		return ctl_print_json(object);
	}
	printf("table %s deleted\n",
	       ctl_name_text((const uint8_t *)name, strlen(name), text, false));
	if (fflush(stdout) == EOF)
		return ctl_fail("output", strerror(errno));
	return CTL_EXIT_OK;
}

static int ctl_table_split(struct ctl *ctl, const char *name)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__SplitTableRequest split = QUORUM__SPLIT_TABLE_REQUEST__INIT;
	Quorum__Response *response;
	char what[300];
	int status;

	snprintf(what, sizeof(what), "table split %s", name);
	split.name.data = (uint8_t *)name;
	split.name.len = strlen(name);
	split.has_partition_id = ctl->options.has_split_partition;
	split.partition_id = ctl->options.split_partition;
	split.has_split_hash = ctl->options.has_split_at;
	split.split_hash = ctl->options.split_at;
	request.op_case = QUORUM__REQUEST__OP_SPLIT_TABLE;
	request.split_table = &split;
	status = ctl_call(ctl, what, &request, &response);
	if (status != CTL_EXIT_OK)
		return status;
	return ctl_table_show(ctl, response);
}

static int ctl_table(struct ctl *ctl)
{
	const char *verb = ctl->word_count > 1 ? ctl->words[1] : NULL;

	if (!verb)
		return ctl_usage_error("%s needs a verb: list, describe, create, split or delete",
				       "table");
	if (strcmp(verb, "list") == 0)
		return ctl_table_list(ctl);
	if (strcmp(verb, "describe") != 0 && strcmp(verb, "create") != 0 &&
	    strcmp(verb, "delete") != 0 && strcmp(verb, "split") != 0)
		return ctl_usage_error("unknown table command '%s'", verb);
	if (ctl->word_count != 3)
		return ctl_usage_error("table %s takes one table name", verb);
	if (strcmp(verb, "describe") == 0)
		return ctl_table_describe(ctl, ctl->words[2]);
	if (strcmp(verb, "create") == 0)
		return ctl_table_create(ctl, ctl->words[2]);
	if (strcmp(verb, "split") == 0)
		return ctl_table_split(ctl, ctl->words[2]);
	return ctl_table_delete(ctl, ctl->words[2]);
}

/* ---------------------------------------------------------------- settings */

static json_t *ctl_json_setting(const Quorum__Setting *setting)
{
	json_t *object = json_object();

	if (!object)
		return NULL;
	json_object_set_new(object, "value", ctl_json_u64(setting->value));
	json_object_set_new(object, "unit", json_string(setting->unit));
	json_object_set_new(object, "default", ctl_json_u64(setting->default_value));
	json_object_set_new(object, "is_set", json_boolean(setting->is_set));
	json_object_set_new(object, "min", ctl_json_u64(setting->min));
	json_object_set_new(object, "max", ctl_json_u64(setting->max));
	json_object_set_new(object, "description", setting->description ?
			    json_string(setting->description) : json_null());
	return object;
}

/* "1048576 bytes (1.0 MiB)", "30 s". */
static void ctl_format_setting(uint64_t value, const char *unit, char *out, size_t out_bytes)
{
	char human[32];

	if (strcmp(unit, "bytes") == 0 && value >= 1024) {
		ctl_format_bytes(value, human, sizeof(human));
		snprintf(out, out_bytes, "%" PRIu64 " bytes (%s)", value, human);
	} else {
		snprintf(out, out_bytes, "%" PRIu64 " %s", value, unit);
	}
}

static int ctl_print_settings(struct ctl *ctl, const Quorum__SettingsResponse *settings)
{
	char value[64], default_value[64];

	if (ctl->options.json) {
		json_t *root = json_object();

		for (size_t i = 0; root && i < settings->n_settings; i++)
			json_object_set_new(root, settings->settings[i]->key,
					    ctl_json_setting(settings->settings[i]));
		return ctl_print_json(root);
	}
	printf("%-22s %-28s %-28s %s\n", "KEY", "VALUE", "DEFAULT", "SOURCE");
	for (size_t i = 0; i < settings->n_settings; i++) {
		const Quorum__Setting *setting = settings->settings[i];

		ctl_format_setting(setting->value, setting->unit, value, sizeof(value));
		ctl_format_setting(setting->default_value, setting->unit, default_value,
				   sizeof(default_value));
		printf("%-22s %-28s %-28s %s\n", setting->key, value, default_value,
		       setting->is_set ? "set" : "default");
	}
	if (fflush(stdout) == EOF)
		return ctl_fail("output", strerror(errno));
	return CTL_EXIT_OK;
}

static int ctl_config(struct ctl *ctl)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__GetSettingsRequest get = QUORUM__GET_SETTINGS_REQUEST__INIT;
	Quorum__SetSettingRequest set = QUORUM__SET_SETTING_REQUEST__INIT;
	const char *verb = ctl->word_count > 1 ? ctl->words[1] : NULL;
	Quorum__Response *response;
	char what[300];
	int status;

	if (!verb)
		return ctl_usage_error("%s needs a verb: get or set", "config");
	if (strcmp(verb, "get") == 0) {
		if (ctl->word_count > 3)
			return ctl_usage_error("%s", "config get takes at most one KEY");
		get.key = ctl->word_count == 3 ? ctl->words[2] : NULL;
		request.op_case = QUORUM__REQUEST__OP_GET_SETTINGS;
		request.get_settings = &get;
		snprintf(what, sizeof(what), "config get%s%.200s", get.key ? " " : "",
			 get.key ? get.key : "");
	} else if (strcmp(verb, "set") == 0) {
		if (ctl->word_count != 4)
			return ctl_usage_error("%s", "config set takes a KEY and a VALUE "
					       "(or 'default')");
		set.key = ctl->words[2];
		set.value = ctl->words[3];
		request.op_case = QUORUM__REQUEST__OP_SET_SETTING;
		request.set_setting = &set;
		snprintf(what, sizeof(what), "config set %.200s", set.key);
	} else {
		return ctl_usage_error("unknown config command '%s'", verb);
	}
	status = ctl_call(ctl, what, &request, &response);
	if (status != CTL_EXIT_OK)
		return status;
	status = ctl_print_settings(ctl, response->settings);
	quorum__response__free_unpacked(response, NULL);
	return status;
}

/* ------------------------------------------------------------------- nodes */

static int ctl_node_list(struct ctl *ctl)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__ListNodesRequest list = QUORUM__LIST_NODES_REQUEST__INIT;
	const Quorum__ListNodesResponse *nodes;
	char capacity[32], free_text[32], age[32];
	int address_width = (int)strlen("ADDRESS"), az_width = (int)strlen("AZ");
	Quorum__Response *response;
	int status;

	if (ctl->word_count != 2)
		return ctl_usage_error("%s takes no arguments", "node list");
	request.op_case = QUORUM__REQUEST__OP_LIST_NODES;
	request.list_nodes = &list;
	status = ctl_call(ctl, "node list", &request, &response);
	if (status != CTL_EXIT_OK)
		return status;
	nodes = response->list_nodes;
	if (ctl->options.json) {
		json_t *array = json_array();

		for (size_t i = 0; array && i < nodes->n_nodes; i++) {
			json_t *node = ctl_json_node(nodes->nodes[i]);

			if (node)
				json_object_set_new(node, "leaders",
						    ctl_json_u64(nodes->nodes[i]->leader_count));
			json_array_append_new(array, node);
		}
		quorum__response__free_unpacked(response, NULL);
		return ctl_print_json(array);
	}
	for (size_t i = 0; i < nodes->n_nodes; i++) {
		int address_bytes = (int)strlen(nodes->nodes[i]->address);
		int az_bytes = (int)strlen(nodes->nodes[i]->az);

		address_width = address_bytes > address_width ? address_bytes : address_width;
		az_width = az_bytes > az_width ? az_bytes : az_width;
	}
	if (nodes->n_nodes == 0)
		printf("no storage node has registered\n");
	else
		printf("%-6s %-*s %-*s %-5s %-12s %8s %7s  %s\n", "NODE", az_width, "AZ",
		       address_width, "ADDRESS", "STATE", "HEARTBEAT", "REPLICAS", "LEADERS",
		       "FREE/CAPACITY");
	for (size_t i = 0; i < nodes->n_nodes; i++) {
		const Quorum__NodeInfo *node = nodes->nodes[i];

		ctl_format_bytes(node->free_bytes, free_text, sizeof(free_text));
		ctl_format_bytes(node->capacity_bytes, capacity, sizeof(capacity));
		ctl_format_age(node, age, sizeof(age));
		printf("%-6" PRIu64 " %-*s %-*s %-5s %-12s %8u %7u  %s / %s\n", node->id, az_width,
		       node->az, address_width, node->address,
		       !node->up ? "down" : node->draining ? "drain" : "up", age,
		       node->replica_count, node->leader_count, free_text, capacity);
	}
	quorum__response__free_unpacked(response, NULL);
	if (fflush(stdout) == EOF)
		return ctl_fail("output", strerror(errno));
	return CTL_EXIT_OK;
}

/* node drain N / node undrain N: meta moves N's replicas away (or stops). */
static int ctl_node_drain(struct ctl *ctl, bool undo)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__DrainNodeRequest drain = QUORUM__DRAIN_NODE_REQUEST__INIT;
	const char *what = undo ? "node undrain" : "node drain";
	Quorum__Response *response;
	char *end;
	int status;

	if (ctl->word_count != 3)
		return ctl_usage_error("%s takes one node id", what);
	errno = 0;
	drain.node_id = strtoull(ctl->words[2], &end, 10);
	if (errno || *end || end == ctl->words[2] || drain.node_id == 0)
		return ctl_usage_error("%s: invalid node id '%s'", what, ctl->words[2]);
	drain.has_undo = undo;
	drain.undo = undo;
	request.op_case = QUORUM__REQUEST__OP_DRAIN_NODE;
	request.drain_node = &drain;
	status = ctl_call(ctl, what, &request, &response);
	if (status != CTL_EXIT_OK)
		return status;
	quorum__response__free_unpacked(response, NULL);
	if (!ctl->options.json)
		printf("node %" PRIu64 " %s\n", drain.node_id,
		       undo ? "no longer drains" : "drains: its replicas move to other nodes; "
		       "`quorumctl node list` shows them leave");
	return ctl->options.json ? ctl_print_json(json_pack("{s:I,s:b}", "node_id",
							    (json_int_t)drain.node_id,
							    "draining", !undo)) :
				   CTL_EXIT_OK;
}

static int ctl_node(struct ctl *ctl)
{
	const char *verb = ctl->word_count > 1 ? ctl->words[1] : NULL;

	if (!verb)
		return ctl_usage_error("%s needs a verb: list, drain or undrain", "node");
	if (strcmp(verb, "list") == 0)
		return ctl_node_list(ctl);
	if (strcmp(verb, "drain") == 0 || strcmp(verb, "undrain") == 0)
		return ctl_node_drain(ctl, verb[0] == 'u');
	return ctl_usage_error("unknown node command '%s'", verb);
}

/* -------------------------------------------------------------- partitions */

#define CTL_HOT_KEYS_SHOWN 4
#define CTL_HOT_KEYS_MERGED 32

/* A partition's load as its replicas report it: rates summed (the leader
 * serves writes and strong reads, any replica eventual reads), items and
 * size from the leader (else the largest report), hot keys merged. */
struct ctl_partition_load {
	bool known;
	double read_ops_per_s, write_ops_per_s;
	bool has_census;
	uint64_t item_count, size_bytes;
	size_t hot_count;
	const Quorum__HotKey *hot[CTL_HOT_KEYS_SHOWN];
	uint64_t hot_counts[CTL_HOT_KEYS_SHOWN];
};

static void ctl_partition_load(const Quorum__TableResponse *table,
			       const Quorum__PartitionInfo *partition, uint64_t leader_id,
			       struct ctl_partition_load *load)
{
	/* Every replica's hot keys, merged by hash. */
	const Quorum__HotKey *keys[CTL_HOT_KEYS_MERGED];
	uint64_t counts[CTL_HOT_KEYS_MERGED];
	size_t key_count = 0;

	memset(load, 0, sizeof(*load));
	for (size_t r = 0; r < partition->n_replicas; r++) {
		const Quorum__ReplicaStatus *status =
			ctl_find_report(table, partition->id, partition->replicas[r]);
		const Quorum__GroupReport *report = status ? status->report : NULL;
		bool leader = partition->replicas[r] == leader_id;

		if (!report)
			continue;
		load->known = true;
		load->read_ops_per_s += report->read_ops_per_s;
		load->write_ops_per_s += report->write_ops_per_s;
		if (report->has_item_count &&
		    (leader || !load->has_census || report->item_count > load->item_count)) {
			load->has_census = true;
			load->item_count = report->item_count;
			load->size_bytes = report->size_bytes;
		}
		for (size_t h = 0; h < report->n_hot_keys; h++) {
			size_t k = 0;

			while (k < key_count && keys[k]->hash != report->hot_keys[h]->hash)
				k++;
			if (k == key_count) {
				if (key_count == CTL_HOT_KEYS_MERGED)
					continue;
				keys[key_count] = report->hot_keys[h];
				counts[key_count++] = 0;
			}
			counts[k] += report->hot_keys[h]->count;
		}
	}
	/* The highest counts first: a selection, the lists are short. */
	while (load->hot_count < CTL_HOT_KEYS_SHOWN && key_count > 0) {
		size_t best = 0;

		for (size_t k = 1; k < key_count; k++)
			if (counts[k] > counts[best])
				best = k;
		load->hot[load->hot_count] = keys[best];
		load->hot_counts[load->hot_count++] = counts[best];
		keys[best] = keys[key_count - 1];
		counts[best] = counts[--key_count];
	}
}

static json_t *ctl_json_partition(const Quorum__TableResponse *response,
				  const Quorum__PartitionInfo *partition)
{
	json_t *object = json_object(), *replicas = json_array(), *hot = json_array();
	struct ctl_partition_view view;
	struct ctl_partition_load load;
	char hex[17];

	if (!object || !replicas || !hot) {
		json_decref(object);
		json_decref(replicas);
		json_decref(hot);
		return NULL;
	}
	ctl_partition_view(response, partition, &view);
	ctl_partition_load(response, partition, view.leader_id, &load);
	json_object_set_new(object, "table", ctl_json_name(&response->table->name));
	json_object_set_new(object, "table_id", ctl_json_u64(response->table->id));
	json_object_set_new(object, "id", ctl_json_u64(partition->id));
	ctl_hex(partition->hash_first, hex);
	json_object_set_new(object, "hash_first", json_string(hex));
	ctl_hex(partition->hash_last, hex);
	json_object_set_new(object, "hash_last", json_string(hex));
	json_object_set_new(object, "epoch", ctl_json_u64(partition->epoch));
	json_object_set_new(object, "leader_id", view.leader_id ? ctl_json_u64(view.leader_id) :
			    json_null());
	json_object_set_new(object, "size_bytes", load.has_census ?
			    ctl_json_u64(load.size_bytes) : json_null());
	json_object_set_new(object, "item_count", load.has_census ?
			    ctl_json_u64(load.item_count) : json_null());
	json_object_set_new(object, "read_ops_per_s", json_real(load.read_ops_per_s));
	json_object_set_new(object, "write_ops_per_s", json_real(load.write_ops_per_s));
	for (size_t r = 0; r < partition->n_replicas; r++) {
		const Quorum__NodeInfo *node = ctl_find_node(response, partition->replicas[r]);
		const Quorum__ReplicaStatus *status =
			ctl_find_report(response, partition->id, partition->replicas[r]);
		json_t *replica = json_object();

		if (!replica)
			continue;
		json_object_set_new(replica, "node_id", ctl_json_u64(partition->replicas[r]));
		json_object_set_new(replica, "az", node ? json_string(node->az) : json_null());
		json_object_set_new(replica, "up", json_boolean(node && node->up));
		json_object_set_new(replica, "role", status ?
				    json_string(ctl_role_name(status->report->role)) : json_null());
		if (status) {
			const Quorum__GroupReport *report = status->report;

			json_object_set_new(replica, "size_bytes", report->has_size_bytes ?
					    ctl_json_u64(report->size_bytes) : json_null());
			json_object_set_new(replica, "item_count", report->has_item_count ?
					    ctl_json_u64(report->item_count) : json_null());
			json_object_set_new(replica, "read_ops_per_s",
					    json_real(report->read_ops_per_s));
			json_object_set_new(replica, "write_ops_per_s",
					    json_real(report->write_ops_per_s));
			json_object_set_new(replica, "report_age_ms",
					    ctl_json_u64(status->report_age_ms));
		}
		json_array_append_new(replicas, replica);
	}
	json_object_set_new(object, "replicas", replicas);
	json_object_set_new(object, "moving_to", ctl_json_ids(partition->target_replicas,
							       partition->n_target_replicas));
	for (size_t h = 0; h < load.hot_count; h++) {
		json_t *key = json_object();

		if (!key)
			continue;
		json_object_set_new(key, "key", ctl_json_name(&load.hot[h]->key));
		json_object_set_new(key, "key_bytes", json_integer(load.hot[h]->key_bytes));
		json_object_set_new(key, "truncated",
				    json_boolean(load.hot[h]->key_bytes > load.hot[h]->key.len));
		ctl_hex(load.hot[h]->hash, hex);
		json_object_set_new(key, "hash", json_string(hex));
		json_object_set_new(key, "count", ctl_json_u64(load.hot_counts[h]));
		json_array_append_new(hot, key);
	}
	json_object_set_new(object, "hot_keys", hot);
	return object;
}

static void ctl_partition_text(const Quorum__TableResponse *response,
			       const Quorum__PartitionInfo *partition, int name_width)
{
	char name[CTL_NAME_TEXT_BYTES], first[17], last[17], size[32], items[32];
	char replicas[128], leader[24];
	struct ctl_partition_view view;
	struct ctl_partition_load load;
	size_t used = 0;

	ctl_partition_view(response, partition, &view);
	ctl_partition_load(response, partition, view.leader_id, &load);
	ctl_hex(partition->hash_first, first);
	ctl_hex(partition->hash_last, last);
	replicas[0] = '\0';
	for (size_t r = 0; r < partition->n_replicas && used < sizeof(replicas); r++) {
		const Quorum__NodeInfo *node = ctl_find_node(response, partition->replicas[r]);

		used += (size_t)snprintf(replicas + used, sizeof(replicas) - used, "%s%" PRIu64
					 "/%s%s", r ? "," : "", partition->replicas[r],
					 node ? node->az : "?", node && !node->up ? "(down)" : "");
	}
	if (view.leader_id)
		snprintf(leader, sizeof(leader), "%" PRIu64, view.leader_id);
	else
		snprintf(leader, sizeof(leader), "-");
	if (load.has_census) {
		ctl_format_bytes(load.size_bytes, size, sizeof(size));
		snprintf(items, sizeof(items), "%" PRIu64, load.item_count);
	} else {
		snprintf(size, sizeof(size), "-");
		snprintf(items, sizeof(items), "-");
	}
	printf("%-*s %9" PRIu64 " %s..%s %5" PRIu64 " %-20s %6s %10s %9s %8.1f %8.1f\n",
	       name_width, ctl_name_text(response->table->name.data, response->table->name.len,
					 name, false),
	       partition->id, first, last, partition->epoch, replicas, leader, size, items,
	       load.read_ops_per_s, load.write_ops_per_s);
	if (partition->n_target_replicas) {
		printf("%*s moving to", name_width, "");
		for (size_t r = 0; r < partition->n_target_replicas; r++)
			printf("%s%" PRIu64, r ? "," : " ", partition->target_replicas[r]);
		printf("\n");
	}
	for (size_t h = 0; h < load.hot_count; h++)
		printf("%*s hot key %s%s: %" PRIu64 " accesses\n", name_width, "",
		       ctl_name_text(load.hot[h]->key.data, load.hot[h]->key.len, name, false),
		       load.hot[h]->key_bytes > load.hot[h]->key.len ? "..." : "",
		       load.hot_counts[h]);
}

/* Describes name; NULL when it went away meanwhile (or with a failure printed). */
static int ctl_describe(struct ctl *ctl, const ProtobufCBinaryData *name,
			Quorum__Response **response)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__TableRequest table_request = QUORUM__TABLE_REQUEST__INIT;
	struct rpc_error error = { 0 };
	char text[CTL_NAME_TEXT_BYTES], what[CTL_NAME_TEXT_BYTES + 32];
	int err;

	table_request.name = *name;
	request.op_case = QUORUM__REQUEST__OP_DESCRIBE_TABLE;
	request.describe_table = &table_request;
	err = meta_client_call(ctl->client, &request, ctl->deadline_ms, response, &error);
	if (err == -ENOENT && !error.transport)
		return CTL_EXIT_OK;	/* deleted since it was listed */
	if (err < 0) {
		snprintf(what, sizeof(what), "partition list: table %s",
			 ctl_name_text(name->data, name->len, text, false));
		return ctl_fail(what, err == -ETIMEDOUT ? "no answer in time" :
				error.why[0] ? error.why : strerror(-err));
	}
	return CTL_EXIT_OK;
}

static int ctl_partition_list(struct ctl *ctl)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__ListTablesRequest list_request = QUORUM__LIST_TABLES_REQUEST__INIT;
	Quorum__Response *list = NULL, **tables;
	size_t table_count = 0;
	json_t *array = NULL;
	int status = CTL_EXIT_OK, name_width = (int)strlen("TABLE");
	char text[CTL_NAME_TEXT_BYTES];

	if (ctl->word_count != 2)
		return ctl_usage_error("%s takes no arguments (but --table T)", "partition list");
	if (ctl->options.table) {
		table_count = 1;
	} else {
		request.op_case = QUORUM__REQUEST__OP_LIST_TABLES;
		request.list_tables = &list_request;
		status = ctl_call(ctl, "partition list", &request, &list);
		if (status != CTL_EXIT_OK)
			return status;
		table_count = list->list_tables->n_tables;
	}
	tables = calloc(table_count ? table_count : 1, sizeof(*tables));
	if (!tables) {
		if (list)
			quorum__response__free_unpacked(list, NULL);
		return ctl_fail("partition list", "out of memory");
	}
	for (size_t t = 0; t < table_count && status == CTL_EXIT_OK; t++) {
		ProtobufCBinaryData name;

		if (list) {
			name = list->list_tables->tables[t]->name;
		} else {
			name.data = (uint8_t *)ctl->options.table;
			name.len = strlen(ctl->options.table);
		}
		status = ctl_describe(ctl, &name, &tables[t]);
		if (status == CTL_EXIT_OK && !tables[t] && !list)
			status = ctl_fail("partition list", "no such table");
	}
	if (status == CTL_EXIT_OK && ctl->options.json) {
		array = json_array();
		for (size_t t = 0; array && t < table_count; t++) {
			const Quorum__TableResponse *table = tables[t] ? tables[t]->table : NULL;

			for (size_t p = 0; table && p < table->table->n_partitions; p++)
				json_array_append_new(array, ctl_json_partition(
							      table, table->table->partitions[p]));
		}
		status = ctl_print_json(array);
	} else if (status == CTL_EXIT_OK) {
		size_t partitions = 0;

		for (size_t t = 0; t < table_count; t++) {
			const Quorum__TableInfo *info = tables[t] ? tables[t]->table->table : NULL;
			int width;

			if (!info)
				continue;
			partitions += info->n_partitions;
			width = (int)strlen(ctl_name_text(info->name.data, info->name.len, text,
							  false));
			name_width = width > name_width ? width : name_width;
		}
		if (partitions == 0)
			printf("no partitions\n");
		else
			printf("%-*s %9s %-34s %5s %-20s %6s %10s %9s %8s %8s\n", name_width,
			       "TABLE", "PARTITION", "HASH RANGE", "EPOCH", "REPLICAS (NODE/AZ)",
			       "LEADER", "SIZE", "ITEMS", "READ/S", "WRITE/S");
		for (size_t t = 0; t < table_count; t++) {
			const Quorum__TableResponse *table = tables[t] ? tables[t]->table : NULL;

			for (size_t p = 0; table && p < table->table->n_partitions; p++)
				ctl_partition_text(table, table->table->partitions[p], name_width);
		}
		if (fflush(stdout) == EOF)
			status = ctl_fail("output", strerror(errno));
	}
	for (size_t t = 0; t < table_count; t++)
		if (tables[t])
			quorum__response__free_unpacked(tables[t], NULL);
	free(tables);
	if (list)
		quorum__response__free_unpacked(list, NULL);
	return status;
}

static int ctl_partition(struct ctl *ctl)
{
	const char *verb = ctl->word_count > 1 ? ctl->words[1] : NULL;

	if (!verb)
		return ctl_usage_error("%s needs a verb: list", "partition");
	if (strcmp(verb, "list") == 0)
		return ctl_partition_list(ctl);
	return ctl_usage_error("unknown partition command '%s'", verb);
}

/* -------------------------------------------------------------------- main */

/* A whole number in base (10 or 16) that fits 64 bits, nothing else around it. */
static bool ctl_parse_u64(const char *text, int base, uint64_t *out)
{
	unsigned long long value;
	char *end;

	if (!*text || *text == '-' || *text == '+')
		return false;
	errno = 0;
	value = strtoull(text, &end, base);
	if (errno || *end)
		return false;
	*out = value;
	return true;
}

static bool ctl_parse_number(const char *text, unsigned long min, unsigned long max,
			     unsigned long *out)
{
	unsigned long value;
	char *end;

	if (!text[0] || text[0] == '-' || text[0] == '+')
		return false;
	errno = 0;
	value = strtoul(text, &end, 10);
	if (errno || *end || value < min || value > max)
		return false;
	*out = value;
	return true;
}

/* Returns -1 to go on, or an exit status (--help, --version, bad flags). */
static int ctl_parse_flags(int argc, char **argv, struct ctl_options *options)
{
	static const struct option long_options[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "meta", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "partitions", required_argument, NULL, 'p' },
		{ "force", no_argument, NULL, 'f' },
		{ "sort-key", no_argument, NULL, 'S' },
		{ "table", required_argument, NULL, 'T' },
		{ "partition", required_argument, NULL, 'P' },
		{ "at", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long value;
	int c;

	options->timeout_s = CTL_DEFAULT_TIMEOUT_S;
	while ((c = getopt_long(argc, argv, "d:m:jt:p:fhV", long_options, NULL)) != -1) {
		switch (c) {
		case 'd':
			options->data_dir = optarg;
			break;
		case 'm':
			options->meta_url = optarg;
			break;
		case 'j':
			options->json = true;
			break;
		case 't':
			if (!ctl_parse_number(optarg, 1, CTL_TIMEOUT_MAX_S, &value))
				return ctl_usage_error("invalid --timeout '%s'", optarg);
			options->timeout_s = (int)value;
			break;
		case 'p':
			if (!ctl_parse_number(optarg, 1, 256, &value))
				return ctl_usage_error("invalid --partitions '%s' (1..256)",
						       optarg);
			options->partition_count = (uint32_t)value;
			break;
		case 'f':
			options->force = true;
			break;
		case 'S':
			options->sort_key = true;
			break;
		case 'T':
			options->table = optarg;
			break;
		case 'P':
			if (!ctl_parse_u64(optarg, 10, &options->split_partition))
				return ctl_usage_error("invalid --partition '%s'", optarg);
			options->has_split_partition = true;
			break;
		case 'A':
			if (!ctl_parse_u64(optarg, 16, &options->split_at) ||
			    options->split_at == 0)
				return ctl_usage_error("invalid --at '%s' (a hash in hex, not 0)",
						       optarg);
			options->has_split_at = true;
			break;
		case 'h':
			ctl_usage(stdout);
			return CTL_EXIT_OK;
		case 'V':
			printf("quorumctl %s\n", PACKAGE_VERSION);
			return CTL_EXIT_OK;
		default:
			fprintf(stderr, "Try 'quorumctl --help' for more information.\n");
			return CTL_EXIT_USAGE;
		}
	}
	if (options->data_dir && options->meta_url)
		return ctl_usage_error("%s", "give -d DATADIR or --meta URL, not both");
	if (!options->data_dir && !options->meta_url)
		return ctl_usage_error("%s",
				       "where is the cluster? give -d DATADIR or --meta URL");
	return -1;
}

int main(int argc, char **argv)
{
	struct ctl ctl = { 0 };
	const char *command;
	int status, err;

	status = ctl_parse_flags(argc, argv, &ctl.options);
	if (status >= 0)
		return status;
	ctl.words = argv + optind;
	ctl.word_count = argc - optind;
	if (ctl.word_count == 0)
		return ctl_usage_error("%s", "no command (status, table ...)");
	command = ctl.words[0];
	if (strcmp(command, "status") != 0 && strcmp(command, "table") != 0 &&
	    strcmp(command, "config") != 0 && strcmp(command, "node") != 0 &&
	    strcmp(command, "partition") != 0)
		return ctl_usage_error("unknown command '%s'", command);

	if (ctl.options.meta_url) {
		ctl.meta_url = strdup(ctl.options.meta_url);
		if (!ctl.meta_url)
			return ctl_fail("start", "out of memory");
	} else {
		status = ctl_read_cluster_file(ctl.options.data_dir, &ctl.meta_url);
		if (status != CTL_EXIT_OK)
			return status;
	}
	err = meta_client_new(ctl.meta_url, &ctl.client);
	if (err < 0) {
		free(ctl.meta_url);
		return ctl_fail(ctl.options.meta_url ? ctl.options.meta_url : "connect",
				err == -EINVAL ? "not a list of URLs such as tcp://127.0.0.1:7100" :
				strerror(-err));
	}
	ctl.deadline_ms = clock_monotonic_ms() + (int64_t)ctl.options.timeout_s * 1000;

	if (strcmp(command, "status") == 0)
		status = ctl_status(&ctl);
	else if (strcmp(command, "config") == 0)
		status = ctl_config(&ctl);
	else if (strcmp(command, "node") == 0)
		status = ctl_node(&ctl);
	else if (strcmp(command, "partition") == 0)
		status = ctl_partition(&ctl);
	else
		status = ctl_table(&ctl);

	meta_client_free(ctl.client);
	free(ctl.meta_url);
	return status;
}

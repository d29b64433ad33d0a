/* test_replication.c: replication groups across real processes. Starts quorum-meta and three
 * quorumd on 127.0.0.1 (found next to this program in the build tree), creates a table, writes
 * items through the nodes directly (following -EREMOTE leader hints as a router does), kills
 * the leader of a partition with SIGKILL, checks that writes go on after the election and that
 * every acknowledged item is readable and that a create retried at the new leader with its
 * request id gets its first answer (at most once), then restarts the killed node with the same arguments
 * and checks that it catches up (its applied slot in describe reaches the leader's) and serves
 * every item from its own store (eventual reads). Every process is stopped by pid, also when a
 * test fails. */
#define _GNU_SOURCE
#include "cluster/clock.h"
#include "cluster/keys.h"
#include "cluster/net.h"
#include "cluster/rpc.h"
#include "quorum.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define TEST_NODES 3
#define TEST_ITEMS_BEFORE 40
#define TEST_ITEMS_AFTER 40
#define TEST_CALL_MS 2000
#define TEST_OP_DEADLINE_MS 30000
#define TEST_WAIT_MS 30000
#define TEST_PARTITIONS 2

struct test_process {
	pid_t pid;
	char url[64];
	char data_dir[PATH_MAX];
	char log_path[PATH_MAX];
	char az[4];
	uint64_t node_id;
};

struct test_cluster {
	char dir[256];
	char bin_dir[1024];
	struct test_process meta;
	struct test_process nodes[TEST_NODES];
	struct net_pool *pool;
	uint64_t table_id;
	char last_url[512];		/* the node that answered last: where requests start */
};

static int test_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* The build tree: this program is tests/unit/test_replication. */
static int test_find_bin_dir(char *out, size_t out_bytes)
{
	char self[PATH_MAX], *slash;
	ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (length <= 0)
		return -1;
	self[length] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	return snprintf(out, out_bytes, "%s/../..", self) >= (int)out_bytes ? -1 : 0;
}

static int test_spawn(struct test_process *p, char *const argv[])
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
			close(fd);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	p->pid = pid;
	return 0;
}

static void test_kill(struct test_process *p, int sig)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, sig);
	waitpid(p->pid, NULL, 0);
	p->pid = 0;
}

/* SIGTERM, up to 10 s to exit, then SIGKILL. */
static void test_stop(struct test_process *p)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
			p->pid = 0;
			return;
		}
		clock_sleep_ms(50);
	}
	test_kill(p, SIGKILL);
}

static int test_start_node(struct test_cluster *c, struct test_process *p)
{
	char binary[PATH_MAX];
	char *argv[] = { binary, "--listen", p->url, "--meta", c->meta.url, "--az", p->az,
			 "--data", p->data_dir, "--heartbeat-ms", "100", "--tick-ms", "10",
			 "--election-ticks", "20", NULL };

	snprintf(binary, sizeof(binary), "%s/cluster/quorumd", c->bin_dir);
	return test_spawn(p, argv);
}

/* One request to url; returns the status, with *response kept (also on an error status, for
 * the leader hint) unless the transport failed. */
static int test_call(struct test_cluster *c, const char *url, Quorum__Request *request,
		     Quorum__Response **response)
{
	struct net_client *client = net_pool_get(c->pool, url);
	size_t request_bytes, reply_bytes = 0;
	uint8_t *packed;
	void *reply = NULL;
	int err;

	*response = NULL;
	if (!client)
		return -ENOMEM;
	request->version = RPC_PROTOCOL_VERSION;
	request_bytes = quorum__request__get_packed_size(request);
	packed = malloc(request_bytes + 1);
	if (!packed)
		return -ENOMEM;
	quorum__request__pack(request, packed);
	err = net_client_call(client, packed, request_bytes, clock_monotonic_ms() + TEST_CALL_MS,
			      &reply, &reply_bytes);
	free(packed);
	if (err < 0)
		return err;
	*response = quorum__response__unpack(NULL, reply_bytes, reply);
	net_message_free(reply);
	if (!*response)
		return -EPROTO;
	return (*response)->status;
}

static int test_meta_call(struct test_cluster *c, Quorum__Request *request,
			  Quorum__Response **response)
{
	int err = test_call(c, c->meta.url, request, response);

	if (err < 0 && *response) {
		quorum__response__free_unpacked(*response, NULL);
		*response = NULL;
	}
	return err;
}

/* A request to the nodes as a router sends it: follows -EREMOTE hints, moves on from a node
 * that does not answer or has no leader yet, until the deadline. Returns the final status;
 * *response (may be NULL) receives a successful response. */
static int test_node_request(struct test_cluster *c, Quorum__Request *request, size_t first,
			     Quorum__Response **out)
{
	int64_t deadline_ms = clock_monotonic_ms() + TEST_OP_DEADLINE_MS;
	char url[512];
	size_t next = first;
	int err = -ETIMEDOUT;

	snprintf(url, sizeof(url), "%s", c->last_url[0] ? c->last_url :
		 c->nodes[next % TEST_NODES].url);
	while (clock_monotonic_ms() < deadline_ms) {
		Quorum__Response *response = NULL;

		err = test_call(c, url, request, &response);
		if (err == 0) {
			snprintf(c->last_url, sizeof(c->last_url), "%s", url);
			if (out)
				*out = response;
			else
				quorum__response__free_unpacked(response, NULL);
			return 0;
		}
		if (err == -EREMOTE && response && response->leader_address &&
		    strcmp(response->leader_address, url) != 0) {
			snprintf(url, sizeof(url), "%s", response->leader_address);
			quorum__response__free_unpacked(response, NULL);
			continue;
		}
		if (response)
			quorum__response__free_unpacked(response, NULL);
		if (err != -EREMOTE && err != -EAGAIN && err != -ETIMEDOUT && err != -EIO &&
		    err != -EPROTO)
			return err;
		next++;
		snprintf(url, sizeof(url), "%s", c->nodes[next % TEST_NODES].url);
		clock_sleep_ms(50);
	}
	return err;
}

static void test_key(int i, char *out, size_t out_bytes)
{
	snprintf(out, out_bytes, "item-%03d", i);
}

static int test_put(struct test_cluster *c, int i)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__PutItemRequest put = QUORUM__PUT_ITEM_REQUEST__INIT;
	Quorum__ItemKey key = QUORUM__ITEM_KEY__INIT;
	Quorum__ItemMeta meta = QUORUM__ITEM_META__INIT;
	char name[32], body[64];

	test_key(i, name, sizeof(name));
	snprintf(body, sizeof(body), "body of %s", name);
	key.table_id = c->table_id;
	key.partition_key.data = (uint8_t *)name;
	key.partition_key.len = strlen(name);
	meta.mode = 0100644;
	meta.mtime_ns = clock_realtime_ns();
	meta.ctime_ns = meta.mtime_ns;
	put.key = &key;
	put.meta = &meta;
	put.has_body = true;
	put.body.data = (uint8_t *)body;
	put.body.len = strlen(body);
	request.op_case = QUORUM__REQUEST__OP_PUT_ITEM;
	request.put_item = &put;
	return test_node_request(c, &request, (size_t)i, NULL);
}

static int test_describe(struct test_cluster *c, Quorum__Response **response)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__TableRequest table = QUORUM__TABLE_REQUEST__INIT;

	table.name.data = (uint8_t *)"t";
	table.name.len = 1;
	request.op_case = QUORUM__REQUEST__OP_DESCRIBE_TABLE;
	request.describe_table = &table;
	return test_meta_call(c, &request, response);
}

/* A key of partition index 0, whose leader test_failover kills. */
static void test_key_of_partition0(struct test_cluster *c, char *out, size_t out_bytes)
{
	Quorum__Response *response;
	const Quorum__PartitionInfo *part;

	assert_int_equal(test_describe(c, &response), 0);
	part = response->table->table->partitions[0];
	for (int i = 0;; i++) {
		uint64_t hash;

		snprintf(out, out_bytes, "once-%d", i);
		hash = key_hash(out, strlen(out));
		if (hash >= part->hash_first && hash <= part->hash_last)
			break;
	}
	quorum__response__free_unpacked(response, NULL);
}

/* Creates item name (only if absent) with request id (client 77, seq); *version gets the
 * stored version when it succeeds. */
static int test_create_once(struct test_cluster *c, const char *name, uint64_t seq,
			    uint64_t *version)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__RequestId id = QUORUM__REQUEST_ID__INIT;
	Quorum__PutItemRequest put = QUORUM__PUT_ITEM_REQUEST__INIT;
	Quorum__ItemKey key = QUORUM__ITEM_KEY__INIT;
	Quorum__ItemMeta meta = QUORUM__ITEM_META__INIT;
	Quorum__Response *response = NULL;
	int err;

	id.client_id = 77;
	id.seq = seq;
	id.floor = seq;
	key.table_id = c->table_id;
	key.partition_key.data = (uint8_t *)name;
	key.partition_key.len = strlen(name);
	meta.mode = 0100644;
	put.key = &key;
	put.meta = &meta;
	put.has_condition = true;
	put.condition = QUORUM__CONDITION__COND_ABSENT;
	request.op_case = QUORUM__REQUEST__OP_PUT_ITEM;
	request.put_item = &put;
	request.request_id = &id;
	err = test_node_request(c, &request, 0, &response);
	if (err == 0) {
		*version = response->put_item->meta->version;
		quorum__response__free_unpacked(response, NULL);
	}
	return err;
}

/* Gets item i, strongly through the leader, or eventually from node only (node >= 0). */
static int test_get(struct test_cluster *c, int i, int node)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__GetItemRequest get = QUORUM__GET_ITEM_REQUEST__INIT;
	Quorum__ItemKey key = QUORUM__ITEM_KEY__INIT;
	Quorum__Response *response = NULL;
	char name[32], body[64];
	int err;

	test_key(i, name, sizeof(name));
	snprintf(body, sizeof(body), "body of %s", name);
	key.table_id = c->table_id;
	key.partition_key.data = (uint8_t *)name;
	key.partition_key.len = strlen(name);
	get.key = &key;
	request.op_case = QUORUM__REQUEST__OP_GET_ITEM;
	request.get_item = &get;
	if (node >= 0) {
		get.has_eventual = true;
		get.eventual = true;
		err = test_call(c, c->nodes[node].url, &request, &response);
	} else {
		err = test_node_request(c, &request, (size_t)i, &response);
	}
	if (err == 0 && (!response->get_item || !response->get_item->item->has_body ||
			 response->get_item->item->body.len != strlen(body) ||
			 memcmp(response->get_item->item->body.data, body, strlen(body)) != 0))
		err = -EBADMSG;
	if (response)
		quorum__response__free_unpacked(response, NULL);
	return err;
}

/* The report of node's replica of partition, or NULL. */
static const Quorum__GroupReport *test_report(const Quorum__TableResponse *t, uint64_t partition,
					      uint64_t node, uint64_t *age_ms)
{
	for (size_t i = 0; i < t->n_replicas; i++)
		if (t->replicas[i]->partition_id == partition && t->replicas[i]->node_id == node) {
			if (age_ms)
				*age_ms = t->replicas[i]->report_age_ms;
			return t->replicas[i]->report;
		}
	return NULL;
}

/* The node reporting itself leader of partition index p with a fresh report, or 0. */
static uint64_t test_leader(struct test_cluster *c, size_t p)
{
	Quorum__Response *response;
	uint64_t leader = 0;

	if (test_describe(c, &response) < 0)
		return 0;
	if (p < response->table->table->n_partitions) {
		const Quorum__PartitionInfo *part = response->table->table->partitions[p];

		for (size_t r = 0; r < part->n_replicas; r++) {
			uint64_t age_ms = 0;
			const Quorum__GroupReport *g = test_report(response->table, part->id,
								   part->replicas[r], &age_ms);

			if (g && g->role == 3 && age_ms < 1000)
				leader = part->replicas[r];
		}
	}
	quorum__response__free_unpacked(response, NULL);
	return leader;
}

static struct test_process *test_node_by_id(struct test_cluster *c, uint64_t id)
{
	for (size_t i = 0; i < TEST_NODES; i++)
		if (c->nodes[i].node_id == id)
			return &c->nodes[i];
	return NULL;
}

static int test_learn_node_ids(struct test_cluster *c)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__ListNodesRequest list = QUORUM__LIST_NODES_REQUEST__INIT;
	Quorum__Response *response;
	size_t up = 0;
	int err;

	request.op_case = QUORUM__REQUEST__OP_LIST_NODES;
	request.list_nodes = &list;
	err = test_meta_call(c, &request, &response);
	if (err < 0)
		return err;
	for (size_t n = 0; n < response->list_nodes->n_nodes; n++) {
		const Quorum__NodeInfo *info = response->list_nodes->nodes[n];

		for (size_t i = 0; i < TEST_NODES; i++)
			if (strcmp(info->address, c->nodes[i].url) == 0 && info->up) {
				c->nodes[i].node_id = info->id;
				up++;
			}
	}
	quorum__response__free_unpacked(response, NULL);
	return up == TEST_NODES ? 0 : -EAGAIN;
}

static int test_setup(void **state)
{
	static struct test_cluster cluster;
	struct test_cluster *c = &cluster;
	char binary[PATH_MAX], meta_data[PATH_MAX];
	int64_t deadline_ms;
	int port;

	memset(c, 0, sizeof(*c));
	if (test_find_bin_dir(c->bin_dir, sizeof(c->bin_dir)) < 0)
		return -1;
	snprintf(c->dir, sizeof(c->dir), "/tmp/test_replication.XXXXXX");
	if (!mkdtemp(c->dir))
		return -1;
	c->pool = net_pool_new();
	if (!c->pool)
		return -1;
	port = net_find_free_port();
	if (port < 0)
		return -1;
	snprintf(c->meta.url, sizeof(c->meta.url), "tcp://127.0.0.1:%d", port);
	snprintf(c->meta.log_path, sizeof(c->meta.log_path), "%.255s/meta.log", c->dir);
	snprintf(meta_data, sizeof(meta_data), "%.255s/meta", c->dir);
	snprintf(binary, sizeof(binary), "%.1023s/meta/quorum-meta", c->bin_dir);
	{
		char *argv[] = { binary, "--listen", c->meta.url, "--data", meta_data,
				 "--heartbeat-timeout-ms", "1000", NULL };

		if (test_spawn(&c->meta, argv) < 0)
			return -1;
	}
	for (size_t i = 0; i < TEST_NODES; i++) {
		struct test_process *p = &c->nodes[i];

		/* A port found free a moment ago may be found again before its
		 * process binds it: never hand out one twice. */
		for (;;) {
			bool taken = false;

			port = net_find_free_port();
			if (port < 0)
				return -1;
			taken = atoi(strrchr(c->meta.url, ':') + 1) == port;
			for (size_t j = 0; j < i; j++)
				taken = taken || atoi(strrchr(c->nodes[j].url, ':') + 1) == port;
			if (!taken)
				break;
		}
		snprintf(p->url, sizeof(p->url), "tcp://127.0.0.1:%d", port);
		snprintf(p->data_dir, sizeof(p->data_dir), "%.255s/node-%c", c->dir, (char)('a' + i));
		snprintf(p->log_path, sizeof(p->log_path), "%.255s/node-%c.log", c->dir,
			 (char)('a' + i));
		snprintf(p->az, sizeof(p->az), "%c", (char)('a' + i));
		if (test_start_node(c, p) < 0)
			return -1;
	}
	deadline_ms = clock_monotonic_ms() + TEST_WAIT_MS;
	while (test_learn_node_ids(c) < 0 && clock_monotonic_ms() < deadline_ms)
		clock_sleep_ms(100);
	*state = c;
	return test_learn_node_ids(c);
}

static int test_teardown(void **state)
{
	struct test_cluster *c = *state;

	if (!c)
		return 0;
	for (size_t i = 0; i < TEST_NODES; i++)
		test_stop(&c->nodes[i]);
	test_stop(&c->meta);
	net_pool_free(c->pool);
	if (getenv("TEST_KEEP"))
		fprintf(stderr, "kept %s\n", c->dir);
	else
		nftw(c->dir, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void test_create_table(struct test_cluster *c)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__CreateTableRequest create = QUORUM__CREATE_TABLE_REQUEST__INIT;
	Quorum__Response *response;

	create.name.data = (uint8_t *)"t";
	create.name.len = 1;
	create.mode = 0755;
	create.has_partition_count = true;
	create.partition_count = TEST_PARTITIONS;
	request.op_case = QUORUM__REQUEST__OP_CREATE_TABLE;
	request.create_table = &create;
	assert_int_equal(test_meta_call(c, &request, &response), 0);
	c->table_id = response->table->table->id;
	quorum__response__free_unpacked(response, NULL);
}

/* Waits until node's applied slot of every partition reaches the leader's. */
/* Whether node's reports, made since since_ms (its restart: meta keeps the last report of
 * its earlier life until a new one comes), show it applied what each leader applied. */
static bool test_caught_up(struct test_cluster *c, uint64_t node, int64_t since_ms)
{
	Quorum__Response *response;
	bool caught_up = true;

	if (test_describe(c, &response) < 0)
		return false;
	for (size_t p = 0; p < response->table->table->n_partitions; p++) {
		const Quorum__PartitionInfo *part = response->table->table->partitions[p];
		uint64_t age_ms = 0;
		const Quorum__GroupReport *mine = test_report(response->table, part->id, node,
							      &age_ms);
		uint64_t leader_applied = 0;
		bool has_leader = false;

		for (size_t r = 0; r < part->n_replicas; r++) {
			const Quorum__GroupReport *g = test_report(response->table, part->id,
								   part->replicas[r], NULL);

			if (g && g->role == 3) {
				has_leader = true;
				leader_applied = g->applied_slot;
			}
		}
		if (!mine || (int64_t)age_ms >= clock_monotonic_ms() - since_ms || !has_leader ||
		    mine->applied_slot < leader_applied || mine->applied_slot == 0)
			caught_up = false;
	}
	quorum__response__free_unpacked(response, NULL);
	return caught_up;
}

static void test_failover(void **state)
{
	struct test_cluster *c = *state;
	struct test_process *victim;
	uint64_t leader = 0, victim_id, version = 0;
	char once[32];
	int64_t deadline_ms, killed_ms;
	int victim_index;

	test_create_table(c);
	/* Every partition elects a leader. */
	deadline_ms = clock_monotonic_ms() + TEST_WAIT_MS;
	while (clock_monotonic_ms() < deadline_ms) {
		leader = test_leader(c, 0);
		if (leader && test_leader(c, 1))
			break;
		clock_sleep_ms(100);
	}
	assert_true(leader != 0);
	for (int i = 0; i < TEST_ITEMS_BEFORE; i++)
		assert_int_equal(test_put(c, i), 0);
	for (int i = 0; i < TEST_ITEMS_BEFORE; i++)
		assert_int_equal(test_get(c, i, -1), 0);
	/* A create whose answer will be "lost" with its leader. */
	test_key_of_partition0(c, once, sizeof(once));
	assert_int_equal(test_create_once(c, once, 1, &version), 0);
	assert_int_equal(version, 1);

	/* Kill the leader of partition 0 (whichever it is now). */
	leader = test_leader(c, 0);
	assert_true(leader != 0);
	victim = test_node_by_id(c, leader);
	assert_non_null(victim);
	victim_id = leader;
	victim_index = (int)(victim - c->nodes);
	fprintf(stderr, "killing node %" PRIu64 " (%s), leader of partition 0\n", victim_id,
		victim->url);
	test_kill(victim, SIGKILL);
	killed_ms = clock_monotonic_ms();

	/* Writes continue after the election; every acknowledged item stays. */
	for (int i = TEST_ITEMS_BEFORE; i < TEST_ITEMS_BEFORE + TEST_ITEMS_AFTER; i++) {
		assert_int_equal(test_put(c, i), 0);
		if (i == TEST_ITEMS_BEFORE)
			fprintf(stderr, "first write after the kill acknowledged in %" PRId64
				" ms\n", clock_monotonic_ms() - killed_ms);
	}
	for (int i = 0; i < TEST_ITEMS_BEFORE + TEST_ITEMS_AFTER; i++)
		assert_int_equal(test_get(c, i, -1), 0);
	/* Its retry, wherever the item's group is led now, gets the first answer, not -EEXIST
	 * (at most once); a new create of the same item is a real conflict. */
	version = 0;
	assert_int_equal(test_create_once(c, once, 1, &version), 0);
	assert_int_equal(version, 1);
	assert_int_equal(test_create_once(c, once, 2, &version), -EEXIST);
	deadline_ms = clock_monotonic_ms() + TEST_WAIT_MS;
	while (clock_monotonic_ms() < deadline_ms &&
	       (!test_leader(c, 0) || test_leader(c, 0) == victim_id))
		clock_sleep_ms(100);
	assert_true(test_leader(c, 0) != 0 && test_leader(c, 0) != victim_id);

	/* The node comes back with the same arguments and catches up. */
	assert_int_equal(test_start_node(c, victim), 0);
	killed_ms = clock_monotonic_ms();
	deadline_ms = clock_monotonic_ms() + TEST_WAIT_MS;
	while (clock_monotonic_ms() < deadline_ms && !test_caught_up(c, victim_id, killed_ms))
		clock_sleep_ms(100);
	assert_true(test_caught_up(c, victim_id, killed_ms));
	fprintf(stderr, "restarted node caught up in %" PRId64 " ms\n",
		clock_monotonic_ms() - killed_ms);
	for (int i = 0; i < TEST_ITEMS_BEFORE + TEST_ITEMS_AFTER; i++)
		assert_int_equal(test_get(c, i, victim_index), 0);
}

/* SIGTERM of a leader hands its groups off: another node leads at once. */
static void test_graceful_stop(void **state)
{
	struct test_cluster *c = *state;
	struct test_process *victim;
	uint64_t leader, victim_id;
	int64_t deadline_ms, stop_ms;

	leader = test_leader(c, 1);
	assert_true(leader != 0);
	victim = test_node_by_id(c, leader);
	assert_non_null(victim);
	victim_id = leader;
	stop_ms = clock_monotonic_ms();
	test_stop(victim);
	fprintf(stderr, "SIGTERM of the leader of partition 1 took %" PRId64 " ms\n",
		clock_monotonic_ms() - stop_ms);
	deadline_ms = clock_monotonic_ms() + TEST_WAIT_MS;
	while (clock_monotonic_ms() < deadline_ms &&
	       (!test_leader(c, 1) || test_leader(c, 1) == victim_id))
		clock_sleep_ms(50);
	assert_true(test_leader(c, 1) != 0 && test_leader(c, 1) != victim_id);
	fprintf(stderr, "another leader reported %" PRId64 " ms after SIGTERM\n",
		clock_monotonic_ms() - stop_ms);
	for (int i = 0; i < TEST_ITEMS_BEFORE + TEST_ITEMS_AFTER; i++)
		assert_int_equal(test_get(c, i, -1), 0);
	assert_int_equal(test_start_node(c, victim), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failover),
		cmocka_unit_test(test_graceful_stop),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, test_setup, test_teardown);
}

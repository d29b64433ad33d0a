/* test_rpc.c: the envelope codec and the transport, against a real server
 * on 127.0.0.1: concurrency, deadlines, and input that does not decode. */
#include "cluster/clock.h"
#include "cluster/net.h"
#include "cluster/rpc.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

struct fixture {
	char url[64];
	struct rpc_server *server;
	atomic_int in_handler;
	atomic_int in_handler_max;
	atomic_int handled;
};

/* Ping answers; GetItem answers with a ping (the wrong result); a delete
 * of key "slow" sleeps past any deadline the tests use; other deletes fail
 * with -ENOENT and a message. */
static void fixture_handle(void *ctx, const Quorum__Request *request,
			   Quorum__Response *response, struct arena *arena)
{
	struct fixture *f = ctx;
	int now_in = atomic_fetch_add(&f->in_handler, 1) + 1;
	int max_seen = atomic_load(&f->in_handler_max);

	while (now_in > max_seen && !atomic_compare_exchange_weak(&f->in_handler_max, &max_seen, now_in))
		;
	switch (request->op_case) {
	case QUORUM__REQUEST__OP_PING:
	case QUORUM__REQUEST__OP_GET_ITEM: {
		Quorum__PingResponse *ping = arena_alloc(arena, sizeof(*ping));
		quorum__ping_response__init(ping);
		ping->role = arena_memdup(arena, "test", 5);
		response->result_case = QUORUM__RESPONSE__RESULT_PING;
		response->ping = ping;
		clock_sleep_ms(5);
		break;
	}
	case QUORUM__REQUEST__OP_DELETE_ITEM:
		if (request->delete_item->key->partition_key.len == 4 &&
		    memcmp(request->delete_item->key->partition_key.data, "slow", 4) == 0)
			clock_sleep_ms(1500);
		if (request->delete_item->key->partition_key.len == 6 &&
		    memcmp(request->delete_item->key->partition_key.data, "remote", 6) == 0) {
			rpc_fail(response, arena, -EREMOTE, "not the leader");
			response->has_leader_id = 1;
			response->leader_id = 7;
			break;
		}
		rpc_fail(response, arena, -ENOENT, "no item %s", "here");
		break;
	default:
		rpc_fail(response, arena, -EOPNOTSUPP, "not in this test");
	}
	atomic_fetch_add(&f->handled, 1);
	atomic_fetch_sub(&f->in_handler, 1);
}

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int port = net_find_free_port();

	assert_true(port > 0);
	snprintf(f->url, sizeof(f->url), "tcp://127.0.0.1:%d", port);
	assert_int_equal(rpc_server_start(f->url, 8, fixture_handle, f, &f->server), 0);
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	rpc_server_stop(f->server);
	free(f);
	return 0;
}

static int ping(struct net_client *client, int64_t timeout_ms, struct rpc_error *error)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__PingRequest ping_request = QUORUM__PING_REQUEST__INIT;
	Quorum__Response *response;
	int err;

	request.op_case = QUORUM__REQUEST__OP_PING;
	request.ping = &ping_request;
	err = rpc_call(client, &request, clock_monotonic_ms() + timeout_ms, &response, error);
	if (err == 0) {
		assert_string_equal(response->ping->role, "test");
		assert_int_equal(response->version, RPC_PROTOCOL_VERSION);
		quorum__response__free_unpacked(response, NULL);
	}
	return err;
}

static int delete_key(struct net_client *client, const char *key, int64_t timeout_ms,
		      struct rpc_error *error)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__DeleteItemRequest delete_request = QUORUM__DELETE_ITEM_REQUEST__INIT;
	Quorum__ItemKey item_key = QUORUM__ITEM_KEY__INIT;
	Quorum__Response *response = NULL;
	int err;

	item_key.table_id = 1;
	item_key.partition_key.data = (uint8_t *)key;
	item_key.partition_key.len = strlen(key);
	delete_request.key = &item_key;
	request.op_case = QUORUM__REQUEST__OP_DELETE_ITEM;
	request.delete_item = &delete_request;
	err = rpc_call(client, &request, clock_monotonic_ms() + timeout_ms, &response, error);
	assert_null(response);
	return err;
}

static void test_call_and_error_status(void **state)
{
	struct fixture *f = *state;
	struct net_client *client;
	struct rpc_error error;

	assert_int_equal(net_client_new(f->url, &client), 0);
	assert_int_equal(ping(client, 5000, &error), 0);
	assert_int_equal(delete_key(client, "k", 5000, &error), -ENOENT);
	assert_string_equal(error.why, "no item here");
	assert_false(error.transport);
	assert_true(error.leader_id == 0);
	/* A replica that does not lead names the one that does. */
	assert_int_equal(delete_key(client, "remote", 5000, &error), -EREMOTE);
	assert_true(error.leader_id == 7);
	assert_false(error.transport);
	net_client_free(client);
}

static void test_reply_to_another_operation_is_refused(void **state)
{
	struct fixture *f = *state;
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__GetItemRequest get = QUORUM__GET_ITEM_REQUEST__INIT;
	Quorum__ItemKey key = QUORUM__ITEM_KEY__INIT;
	Quorum__Response *response;
	struct net_client *client;

	key.partition_key.data = (uint8_t *)"k";
	key.partition_key.len = 1;
	get.key = &key;
	request.op_case = QUORUM__REQUEST__OP_GET_ITEM;
	request.get_item = &get;
	assert_int_equal(net_client_new(f->url, &client), 0);
	assert_int_equal(rpc_call(client, &request, clock_monotonic_ms() + 5000, &response, NULL),
			 -EPROTO);
	assert_null(response);
	net_client_free(client);
}

struct caller {
	struct net_client *client;
	int failures;
};

static void *caller_run(void *arg)
{
	struct caller *c = arg;
	for (int i = 0; i < 50; i++)
		if (ping(c->client, 10000, NULL) != 0)
			c->failures++;
	return NULL;
}

/* Threads sharing one client have requests in flight at once, and the
 * server's workers handle them at once. */
static void test_concurrent_calls_share_a_client(void **state)
{
	struct fixture *f = *state;
	struct caller callers[8];
	pthread_t threads[8];
	struct net_client *client;

	assert_int_equal(net_client_new(f->url, &client), 0);
	for (int i = 0; i < 8; i++) {
		callers[i] = (struct caller){ .client = client };
		assert_int_equal(pthread_create(&threads[i], NULL, caller_run, &callers[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(threads[i], NULL);
		assert_int_equal(callers[i].failures, 0);
	}
	assert_int_equal(atomic_load(&f->handled), 400);
	assert_true(atomic_load(&f->in_handler_max) > 1);
	net_client_free(client);
}

/* A silent server and an absent one both give -ETIMEDOUT, and a call never
 * returns before its deadline with that error nor long after it. */
static void test_deadline(void **state)
{
	struct fixture *f = *state;
	struct net_client *client, *nobody;
	char url[64];
	struct rpc_error error;
	int64_t start_ms;

	assert_int_equal(net_client_new(f->url, &client), 0);
	start_ms = clock_monotonic_ms();
	assert_int_equal(delete_key(client, "slow", 200, &error), -ETIMEDOUT);
	assert_true(error.transport);
	assert_true(clock_monotonic_ms() - start_ms >= 200);
	assert_non_null(strstr(error.why, "deadline"));
	/* The socket that timed out is not reused with a stale reply. */
	clock_sleep_ms(1500);
	assert_int_equal(ping(client, 5000, NULL), 0);

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", net_find_free_port());
	assert_int_equal(net_client_new(url, &nobody), 0);
	assert_int_equal(ping(nobody, 200, NULL), -ETIMEDOUT);
	net_client_free(nobody);
	net_client_free(client);
}

/* Garbage sent to the server is dropped without a reply; the server goes
 * on answering well-formed requests. */
static void test_malformed_requests_are_dropped(void **state)
{
	struct fixture *f = *state;
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__PingRequest ping_request = QUORUM__PING_REQUEST__INIT;
	struct net_client *client;
	uint8_t packed[64], garbage[300];
	size_t packed_bytes;
	int timeout_ms = 100;
	int sock = nn_socket(AF_SP, NN_REQ);

	assert_true(sock >= 0);
	assert_true(nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms,
				  sizeof(timeout_ms)) == 0);
	assert_true(nn_connect(sock, f->url) >= 0);
	request.version = RPC_PROTOCOL_VERSION;
	request.op_case = QUORUM__REQUEST__OP_PING;
	request.ping = &ping_request;
	packed_bytes = quorum__request__pack(&request, packed);
	srand(3);
	for (int round = 0; round < 40; round++) {
		void *reply = NULL;
		size_t length;
		if (round % 2 == 0) {
			length = 1 + (size_t)rand() % sizeof(garbage);
			for (size_t i = 0; i < length; i++)
				garbage[i] = (uint8_t)rand();
			/* A request missing its required version never decodes. */
			garbage[0] = 0x52;
		} else {
			length = 1 + (size_t)rand() % (packed_bytes - 1);
			memcpy(garbage, packed, length);
			/* Cut inside the version field or the ping. */
		}
		assert_true(nn_send(sock, garbage, length, 0) == (int)length);
		int received = nn_recv(sock, &reply, NN_MSG, 0);
		if (received >= 0) {
			/* A cut that still decodes (protobuf is prefix-tolerant)
			 * must still be answered sanely. */
			Quorum__Response *response =
				quorum__response__unpack(NULL, (size_t)received, reply);
			assert_non_null(response);
			quorum__response__free_unpacked(response, NULL);
			nn_freemsg(reply);
		}
	}
	nn_close(sock);
	assert_int_equal(net_client_new(f->url, &client), 0);
	assert_int_equal(ping(client, 5000, NULL), 0);
	net_client_free(client);
}

static void test_unknown_operation(void **state)
{
	struct fixture *f = *state;
	struct net_client *client;
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__Response *response;
	struct rpc_error error;

	/* No operation set: what a newer peer's unknown operation decodes to. */
	assert_int_equal(net_client_new(f->url, &client), 0);
	assert_int_equal(rpc_call(client, &request, clock_monotonic_ms() + 5000, &response, &error),
			 -EOPNOTSUPP);
	net_client_free(client);
}

static void test_envelope_codec_survives_random_input(void **state)
{
	uint8_t buffer[256];

	(void)state;
	srand(11);
	for (int round = 0; round < 50000; round++) {
		size_t length = (size_t)rand() % sizeof(buffer);
		for (size_t i = 0; i < length; i++)
			buffer[i] = (uint8_t)rand();
		Quorum__Request *request = quorum__request__unpack(NULL, length, buffer);
		if (request)
			quorum__request__free_unpacked(request, NULL);
		Quorum__Response *response = quorum__response__unpack(NULL, length, buffer);
		if (response)
			quorum__response__free_unpacked(response, NULL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_call_and_error_status, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_reply_to_another_operation_is_refused,
						fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_calls_share_a_client, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_deadline, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_malformed_requests_are_dropped, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_operation, fixture_setup,
						fixture_teardown),
		cmocka_unit_test(test_envelope_codec_survives_random_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

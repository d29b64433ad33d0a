/* test_meta_client.c: failover between replicated metadata services (cluster/meta_client.h)
 * against real rpc servers on 127.0.0.1 standing in for metas: one that follows and names
 * the leader, one that leads, one that is dead (nothing listens); busy answers retried; an
 * election (nobody leads) ends as a transport failure within the deadline; a meta's own
 * error is returned as it is; a single URL behaves as a plain rpc_call. */
#include "cluster/clock.h"
#include "cluster/meta_client.h"
#include "cluster/net.h"
#include "cluster/rpc.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum fake_role {
	FAKE_LEADER,		/* answers */
	FAKE_FOLLOWER,		/* -EREMOTE naming leader_id */
	FAKE_ELECTING,		/* -EREMOTE without a leader */
};

struct fake_meta {
	char url[64];
	struct rpc_server *server;
	_Atomic int role;
	_Atomic uint32_t leader_id;
	atomic_int busy_left;	/* answers -EBUSY this many times first */
	atomic_int calls;
};

struct fixture {
	struct fake_meta metas[3];	/* metas[2] never listens: a dead meta */
	char urls[256];
};

/* Ping answers "meta"; a delete answers -ENOENT (a meta's own error). */
static void fake_handle(void *ctx, const Quorum__Request *request, Quorum__Response *response,
			struct arena *arena)
{
	struct fake_meta *m = ctx;
	Quorum__PingResponse *ping;

	atomic_fetch_add(&m->calls, 1);
	if (atomic_load(&m->busy_left) > 0) {
		atomic_fetch_sub(&m->busy_left, 1);
		rpc_fail(response, arena, -EBUSY, "busy");
		return;
	}
	if (atomic_load(&m->role) != FAKE_LEADER) {
		rpc_fail(response, arena, -EREMOTE, "not the leader");
		if (atomic_load(&m->role) == FAKE_FOLLOWER) {
			response->has_leader_id = true;
			response->leader_id = atomic_load(&m->leader_id);
		}
		return;
	}
	if (request->op_case == QUORUM__REQUEST__OP_DELETE_TABLE) {
		rpc_fail(response, arena, -ENOENT, "no such table");
		return;
	}
	ping = arena_alloc(arena, sizeof(*ping));
	quorum__ping_response__init(ping);
	ping->role = "meta";
	response->result_case = QUORUM__RESPONSE__RESULT_PING;
	response->ping = ping;
}

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	for (int i = 0; i < 3; i++) {
		int port = net_find_free_port();

		assert_true(port > 0);
		snprintf(f->metas[i].url, sizeof(f->metas[i].url), "tcp://127.0.0.1:%d", port);
		if (i < 2)
			assert_int_equal(rpc_server_start(f->metas[i].url, 2, fake_handle,
							  &f->metas[i], &f->metas[i].server), 0);
	}
	/* Member 1 follows, member 2 leads, member 3 is dead. */
	atomic_store(&f->metas[0].role, FAKE_FOLLOWER);
	atomic_store(&f->metas[0].leader_id, 2);
	atomic_store(&f->metas[1].role, FAKE_LEADER);
	snprintf(f->urls, sizeof(f->urls), "%s,%s,%s", f->metas[0].url, f->metas[1].url,
		 f->metas[2].url);
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < 2; i++)
		rpc_server_stop(f->metas[i].server);
	free(f);
	return 0;
}

static int call(struct meta_client *client, Quorum__Request__OpCase op, int64_t timeout_ms,
		struct rpc_error *error)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__PingRequest ping = QUORUM__PING_REQUEST__INIT;
	Quorum__TableRequest table = QUORUM__TABLE_REQUEST__INIT;
	Quorum__Response *response = NULL;
	int err;

	request.op_case = op;
	if (op == QUORUM__REQUEST__OP_PING)
		request.ping = &ping;
	else
		request.delete_table = &table;
	err = meta_client_call(client, &request, clock_monotonic_ms() + timeout_ms, &response,
			       error);
	if (err == 0) {
		assert_string_equal(response->ping->role, "meta");
		quorum__response__free_unpacked(response, NULL);
	} else {
		assert_null(response);
	}
	return err;
}

static void test_parse(void **state)
{
	struct meta_client *client;

	(void)state;
	assert_int_equal(meta_client_new("", &client), -EINVAL);
	assert_int_equal(meta_client_new("tcp://127.0.0.1:1,nonsense", &client), -EINVAL);
	assert_int_equal(meta_client_new("tcp://127.0.0.1:1,tcp://127.0.0.1:2", &client), 0);
	assert_int_equal(meta_client_count(client), 2);
	assert_string_equal(meta_client_url(client, 1), "tcp://127.0.0.1:2");
	assert_string_equal(meta_client_urls(client), "tcp://127.0.0.1:1,tcp://127.0.0.1:2");
	meta_client_free(client);
}

static void test_follows_the_leader(void **state)
{
	struct fixture *f = *state;
	struct meta_client *client;
	struct rpc_error error;

	assert_int_equal(meta_client_new(f->urls, &client), 0);
	/* The follower names member 2, which answers. */
	assert_int_equal(call(client, QUORUM__REQUEST__OP_PING, 3000, &error), 0);
	assert_int_equal(atomic_load(&f->metas[0].calls), 1);
	assert_int_equal(atomic_load(&f->metas[1].calls), 1);
	/* Then the leader is asked first. */
	assert_int_equal(call(client, QUORUM__REQUEST__OP_PING, 3000, &error), 0);
	assert_int_equal(atomic_load(&f->metas[0].calls), 1);
	assert_int_equal(atomic_load(&f->metas[1].calls), 2);
	/* A meta's own answer comes back as it is, not retried elsewhere. */
	assert_int_equal(call(client, QUORUM__REQUEST__OP_DELETE_TABLE, 3000, &error), -ENOENT);
	assert_false(error.transport);
	assert_int_equal(atomic_load(&f->metas[1].calls), 3);
	/* Busy: asked again after a pause. */
	atomic_store(&f->metas[1].busy_left, 2);
	assert_int_equal(call(client, QUORUM__REQUEST__OP_PING, 3000, &error), 0);
	meta_client_free(client);
}

static void test_dead_leader(void **state)
{
	struct fixture *f = *state;
	struct meta_client *client;
	struct rpc_error error;
	int64_t started_ms;

	assert_int_equal(meta_client_new(f->urls, &client), 0);
	/* The followers name member 3, which is dead, then member 2 takes over. */
	atomic_store(&f->metas[0].leader_id, 3);
	atomic_store(&f->metas[1].role, FAKE_FOLLOWER);
	atomic_store(&f->metas[1].leader_id, 3);
	started_ms = clock_monotonic_ms();
	assert_int_equal(call(client, QUORUM__REQUEST__OP_PING, 1500, &error), -ETIMEDOUT);
	assert_true(error.transport);
	assert_true(clock_monotonic_ms() - started_ms < 3000);
	atomic_store(&f->metas[1].role, FAKE_LEADER);
	assert_int_equal(call(client, QUORUM__REQUEST__OP_PING, 3000, &error), 0);
	meta_client_free(client);
}

static void test_election(void **state)
{
	struct fixture *f = *state;
	struct meta_client *client;
	struct rpc_error error;
	char urls[160];

	/* Nobody leads: a transport failure at the deadline, not -EREMOTE. */
	snprintf(urls, sizeof(urls), "%s,%s", f->metas[0].url, f->metas[1].url);
	assert_int_equal(meta_client_new(urls, &client), 0);
	atomic_store(&f->metas[0].role, FAKE_ELECTING);
	atomic_store(&f->metas[1].role, FAKE_ELECTING);
	assert_int_equal(call(client, QUORUM__REQUEST__OP_PING, 500, &error), -ETIMEDOUT);
	assert_true(error.transport);
	assert_true(atomic_load(&f->metas[0].calls) >= 2);	/* asked again after pauses */
	meta_client_free(client);
}

static void test_single_url(void **state)
{
	struct fixture *f = *state;
	struct meta_client *client;
	struct rpc_error error;

	assert_int_equal(meta_client_new(f->metas[1].url, &client), 0);
	assert_int_equal(call(client, QUORUM__REQUEST__OP_PING, 3000, &error), 0);
	assert_int_equal(call(client, QUORUM__REQUEST__OP_DELETE_TABLE, 3000, &error), -ENOENT);
	meta_client_free(client);
	/* Only the dead one: its whole deadline, then a transport failure. */
	assert_int_equal(meta_client_new(f->metas[2].url, &client), 0);
	assert_int_equal(call(client, QUORUM__REQUEST__OP_PING, 300, &error), -ETIMEDOUT);
	assert_true(error.transport);
	meta_client_free(client);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test_setup_teardown(test_follows_the_leader, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_dead_leader, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_election, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_single_url, fixture_setup, fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* meta_client.c: failover between replicated metadata services. See meta_client.h. */
#include "cluster/meta_client.h"

#include "cluster/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Time left to each other meta when the one that answered last is asked first. */
#define META_CLIENT_RESERVE_MS 250
/* A meta that failed on transport is passed over this long while others remain. */
#define META_CLIENT_SUSPECT_MS 1000
/* A meta that has not answered for this long is pinged first, with PROBE_MS to answer, so
 * a dead one costs that instead of a share of the caller's deadline. */
#define META_CLIENT_FRESH_MS 2000
#define META_CLIENT_PROBE_MS 500
/* The pause after a round in which no meta took the request (an election), doubling. */
#define META_CLIENT_PAUSE_FIRST_MS 20
#define META_CLIENT_PAUSE_MAX_MS 200

struct meta_client {
	char *urls;			/* as given */
	size_t count;
	struct net_client *clients[META_CLIENT_URLS_MAX];
	pthread_mutex_t lock;		/* guards what follows */
	size_t leader;			/* the meta that answered last */
	bool leader_known;
	int64_t suspect_until_ms[META_CLIENT_URLS_MAX];
	int64_t answered_ms[META_CLIENT_URLS_MAX];	/* last answer of any kind; 0: never */
};

int meta_client_new(const char *urls, struct meta_client **out)
{
	struct meta_client *client;
	char *copy, *saveptr = NULL;
	int err = 0;

	*out = NULL;
	if (!urls || !urls[0])
		return -EINVAL;
	client = calloc(1, sizeof(*client));
	if (!client)
		return -ENOMEM;
	client->urls = strdup(urls);
	copy = strdup(urls);
	if (!client->urls || !copy) {
		free(copy);
		meta_client_free(client);
		return -ENOMEM;
	}
	pthread_mutex_init(&client->lock, NULL);
	for (char *url = strtok_r(copy, ",", &saveptr); url && !err;
	     url = strtok_r(NULL, ",", &saveptr)) {
		const char *separator = strstr(url, "://");

		if (client->count == META_CLIENT_URLS_MAX || !separator || separator == url ||
		    separator[3] == '\0')
			err = -EINVAL;
		else
			err = net_client_new(url, &client->clients[client->count]);
		if (!err)
			client->count++;
	}
	free(copy);
	if (!err && client->count == 0)
		err = -EINVAL;
	if (err) {
		meta_client_free(client);
		return err;
	}
	*out = client;
	return 0;
}

void meta_client_free(struct meta_client *client)
{
	if (!client)
		return;
	for (size_t i = 0; i < client->count; i++)
		net_client_free(client->clients[i]);
	if (client->urls)
		pthread_mutex_destroy(&client->lock);
	free(client->urls);
	free(client);
}

const char *meta_client_urls(const struct meta_client *client)
{
	return client->urls;
}

size_t meta_client_count(const struct meta_client *client)
{
	return client->count;
}

const char *meta_client_url(const struct meta_client *client, size_t i)
{
	return i < client->count ? net_client_url(client->clients[i]) : "";
}

/* The next meta to try: the hint unless suspect, else the first untried one from the last
 * leader on that is not suspect, else the first untried one. *is_leader: it answered last. */
static size_t meta_client_pick(struct meta_client *client, const bool *tried, long hint,
			       int64_t now_ms, bool *is_leader, bool *is_suspect)
{
	size_t start, first_untried = client->count;

	pthread_mutex_lock(&client->lock);
	start = client->leader_known ? client->leader : 0;
	*is_leader = false;
	*is_suspect = false;
	/* A hint gets an ordinary share: a leader just killed is still named for a while. */
	if (hint >= 0 && !tried[hint] && client->suspect_until_ms[hint] <= now_ms) {
		pthread_mutex_unlock(&client->lock);
		return (size_t)hint;
	}
	for (size_t k = 0; k < client->count; k++) {
		size_t i = (start + k) % client->count;

		if (tried[i])
			continue;
		if (first_untried == client->count)
			first_untried = i;
		if (client->suspect_until_ms[i] <= now_ms) {
			*is_leader = client->leader_known && i == client->leader;
			pthread_mutex_unlock(&client->lock);
			return i;
		}
	}
	*is_leader = client->leader_known && first_untried == client->leader;
	*is_suspect = true;
	pthread_mutex_unlock(&client->lock);
	return first_untried;
}

/* Records an answer (any status) of meta i. */
static void meta_client_answered(struct meta_client *client, size_t i)
{
	pthread_mutex_lock(&client->lock);
	client->answered_ms[i] = clock_monotonic_ms();
	client->suspect_until_ms[i] = 0;
	pthread_mutex_unlock(&client->lock);
}

/* Whether meta i answers a ping within the probe time, when it was not heard from lately.
 * Several metas: a request is not sent where it would wait out a dead one's share. */
static bool meta_client_probe(struct meta_client *client, size_t i, int64_t deadline_ms,
			      struct rpc_error *error)
{
	Quorum__Request request = QUORUM__REQUEST__INIT;
	Quorum__PingRequest ping = QUORUM__PING_REQUEST__INIT;
	Quorum__Response *response = NULL;
	int64_t now_ms = clock_monotonic_ms(), probe_deadline_ms = now_ms + META_CLIENT_PROBE_MS;
	bool fresh;
	int err;

	pthread_mutex_lock(&client->lock);
	fresh = client->answered_ms[i] && now_ms - client->answered_ms[i] < META_CLIENT_FRESH_MS;
	pthread_mutex_unlock(&client->lock);
	if (fresh || client->count == 1)
		return true;
	request.op_case = QUORUM__REQUEST__OP_PING;
	request.ping = &ping;
	err = rpc_call(client->clients[i], &request,
		       probe_deadline_ms < deadline_ms ? probe_deadline_ms : deadline_ms, &response,
		       error);
	if (response)
		quorum__response__free_unpacked(response, NULL);
	if (err < 0 && error->transport)
		return false;
	meta_client_answered(client, i);
	return true;
}

int meta_client_call(struct meta_client *client, Quorum__Request *request, int64_t deadline_ms,
		     Quorum__Response **response, struct rpc_error *error)
{
	struct rpc_error local, transport_error;
	struct rpc_error *e = error ? error : &local;
	bool tried[META_CLIENT_URLS_MAX] = { false };
	bool had_transport = false;
	int64_t pause_ms = META_CLIENT_PAUSE_FIRST_MS;
	size_t untried = client->count;
	int transport_err = -ETIMEDOUT;
	long hint = -1;

	*response = NULL;
	memset(e, 0, sizeof(*e));
	for (;;) {
		int64_t now_ms = clock_monotonic_ms(), left_ms = deadline_ms - now_ms;
		int64_t budget_ms, reserve_ms;
		bool is_leader, is_suspect;
		size_t i;
		int err;

		if (left_ms <= 0)
			break;
		if (untried == 0) {
			/* Nobody took it: an election runs, or every meta is away. */
			clock_sleep_ms(pause_ms < left_ms ? pause_ms : left_ms);
			pause_ms *= 2;
			if (pause_ms > META_CLIENT_PAUSE_MAX_MS)
				pause_ms = META_CLIENT_PAUSE_MAX_MS;
			memset(tried, 0, sizeof(tried));
			untried = client->count;
			hint = -1;
			continue;
		}
		i = meta_client_pick(client, tried, hint, now_ms, &is_leader, &is_suspect);
		hint = -1;
		/* One that failed a moment ago never takes all that is left: the others may
		 * finish an election meanwhile. */
		budget_ms = left_ms / (int64_t)(untried + (is_suspect ? 1 : 0));
		reserve_ms = META_CLIENT_RESERVE_MS * (int64_t)(untried - 1);
		if (is_leader && left_ms - reserve_ms > budget_ms)
			budget_ms = left_ms - reserve_ms;
		if (budget_ms < 1)
			budget_ms = 1;
		if (request->op_case != QUORUM__REQUEST__OP_PING &&
		    !meta_client_probe(client, i, deadline_ms, e))
			err = -ETIMEDOUT;
		else
			err = rpc_call(client->clients[i], request,
				       clock_monotonic_ms() + budget_ms < deadline_ms ?
				       clock_monotonic_ms() + budget_ms : deadline_ms, response, e);
		tried[i] = true;
		untried--;
		if (!e->transport)
			meta_client_answered(client, i);
		if (err == 0 || (!e->transport && err != -EREMOTE && err != -EBUSY)) {
			/* It took the request: it leads (or is the only one). */
			pthread_mutex_lock(&client->lock);
			client->leader = i;
			client->leader_known = true;
			pthread_mutex_unlock(&client->lock);
			return err;
		}
		if (e->transport) {
			pthread_mutex_lock(&client->lock);
			client->suspect_until_ms[i] = clock_monotonic_ms() + META_CLIENT_SUSPECT_MS;
			if (client->leader_known && client->leader == i)
				client->leader_known = false;
			pthread_mutex_unlock(&client->lock);
			transport_error = *e;
			transport_err = err;
			had_transport = true;
			continue;
		}
		if (err == -EBUSY) {
			/* The leader, with every worker taken: the same one after a pause. */
			clock_sleep_ms(pause_ms < left_ms ? pause_ms : left_ms);
			tried[i] = false;
			untried++;
			hint = (long)i;
			continue;
		}
		/* Not the leader: the leader it names, if any, next. */
		if (err == -EREMOTE && e->leader_id >= 1 && e->leader_id <= client->count &&
		    e->leader_id - 1 != i)
			hint = (long)(e->leader_id - 1);
	}
	if (had_transport) {
		*e = transport_error;
		return transport_err;
	}
	e->transport = true;
	e->leader_id = 0;
	snprintf(e->why, sizeof(e->why), "no metadata service of %s took the request in time",
		 client->urls);
	return -ETIMEDOUT;
}

/* meta_client.h: calls to the metadata service, one quorum-meta or several replicated ones
 * (meta/meta_group.h), for every client of meta: quorumd, the router, quorumctl.
 *
 * Built from a comma-separated list of URLs ("tcp://127.0.0.1:7100,tcp://127.0.0.1:7101").
 * Give it in the order of the metas' --peers list: a meta that does not lead answers
 * -EREMOTE with the leader's member id, its place in that list, and the call goes there
 * next. A call tries the meta that answered last first; on a transport failure (no answer in
 * time, a socket error, a reply that does not decode) or a not-leader answer it tries
 * another; when every one was tried, it pauses briefly and starts over, all within the
 * caller's deadline. A meta that failed on transport is passed over for a moment while
 * others remain. -EBUSY (a leader with every worker taken) is asked again after a pause.
 *
 * Each attempt gets a share of the time left: a meta not known to lead gets the time left
 * divided by the metas not tried yet in this round, so a dead one costs at most its share;
 * the one that answered last gets all of it but a short reserve per other meta. A meta
 * named as the leader gets an ordinary share (it may be the one that just died). A meta not
 * heard from for two seconds is pinged first with half a second to answer, so a fresh
 * client (quorumctl) loses that, not a share, to a dead one. With ONE
 * URL a call is exactly rpc_call with the whole deadline, as before replication.
 *
 * A request that failed on transport may have been applied by the meta that took it; a
 * later attempt elsewhere then sees its effect (-EEXIST for a create), as a caller's own
 * retry would.
 *
 * Thread-safe: any number of threads may call at once. */
#ifndef QUORUM_META_CLIENT_H
#define QUORUM_META_CLIENT_H

#include "cluster/rpc.h"

#include <stddef.h>
#include <stdint.h>

#define META_CLIENT_URLS_MAX 16

struct meta_client;

/* Parses urls (each must look like scheme://address). Returns 0, -EINVAL (empty list, a bad
 * URL, more than META_CLIENT_URLS_MAX), -ENOMEM. */
int meta_client_new(const char *urls, struct meta_client **out);
void meta_client_free(struct meta_client *client);

/* The list as given, for messages. */
const char *meta_client_urls(const struct meta_client *client);
size_t meta_client_count(const struct meta_client *client);
/* The URL of the i-th meta (i < count). */
const char *meta_client_url(const struct meta_client *client, size_t i);

/* rpc_call to the metas until deadline_ms (monotonic), as described above. Returns what
 * rpc_call returns from the meta that answered: 0 with *response, or the meta's status
 * (never -EREMOTE or -EBUSY: when only those came back, the call fails as a transport
 * failure, -ETIMEDOUT, since no meta took the request). error may be NULL. */
int meta_client_call(struct meta_client *client, Quorum__Request *request, int64_t deadline_ms,
		     Quorum__Response **response, struct rpc_error *error);

#endif

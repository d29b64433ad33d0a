/* local.h: the `--local` supervisor. Runs a whole cluster on 127.0.0.1 as
 * children of quorumfs: one quorum-meta and three quorumd (AZs a, b, c),
 * with every byte of state under one data directory:
 *
 *     DATADIR/lock           flock'd while a quorumfs uses DATADIR; holds its pid
 *     DATADIR/cluster.json   addresses, data directories and pids (quorumctl -d, tests)
 *     DATADIR/meta/          quorum-meta's data;   DATADIR/meta.log its output
 *     DATADIR/node-X/        quorumd X's data;     DATADIR/node-X.log its output
 *
 * A second start on the same DATADIR reuses the ports recorded in
 * cluster.json when they are free, so addresses stay stable. */
#ifndef QUORUM_FS_LOCAL_H
#define QUORUM_FS_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#define LOCAL_WHY_BYTES 512

struct local_cluster;

/* Takes DATADIR (created when missing), starts the four processes and
 * waits until meta answers and lists three up nodes in AZs a, b and c,
 * for at most timeout_ms. On failure every child started is stopped and
 * why (LOCAL_WHY_BYTES) says what went wrong in one line, naming the
 * child and its log file when a child is to blame. Returns 0 or a
 * negative errno (-EBUSY: DATADIR in use by another quorumfs). */
int local_start(const char *data_dir, int64_t timeout_ms, struct local_cluster **out, char *why);

/* The metadata service's URL and the absolute DATADIR. */
const char *local_meta_url(const struct local_cluster *cluster);
const char *local_data_dir(const struct local_cluster *cluster);

/* Watches the children from a thread of its own (quorumfs calls it once
 * the cluster is up): a quorumd or quorum-meta that dies is logged and
 * started again with the same arguments after a pause (500 ms, doubling to
 * 5 s while it keeps dying within 10 s of its start), and cluster.json
 * is rewritten with its new pid. A stopped (SIGSTOP) child is not a dead
 * one. local_stop ends the restarts before it stops the children, so a
 * stop never races a restart. -errno when the thread cannot start. */
int local_watch(struct local_cluster *cluster);

/* SIGTERM to the nodes, up to 10 s for them to exit, SIGKILL to the rest;
 * then the same for meta. Every child is reaped. Safe to call twice. */
void local_stop(struct local_cluster *cluster);

/* Stops the cluster if it still runs, releases DATADIR, frees. */
void local_free(struct local_cluster *cluster);

#endif

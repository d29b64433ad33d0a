"""End-to-end tests of replication through a real `quorumfs --local` mount:
the supervisor restarts children that die; the leader of a partition is
killed with SIGKILL again and again under a load of writers and readers,
and afterwards every acknowledged write is there and the client history
is linearizable (a small Wing & Gong checker, tested on its own); with one
node of three stopped writes go on, with two they fail within the
deadline, and they work again once one comes back.

The tests that need replication groups skip (saying why) while
`quorumctl table describe --json` shows no leader for the partitions,
which is how a cluster without replication answers."""

import errno
import os
import random
import signal
import threading
import time

import subprocess

import pytest

from conftest import (QUORUMFS, REQUEST_TIMEOUT_S, fuse_abort, is_mounted, pid_alive,
                      pid_signal, pids_wait_gone, read_file, run, write_file)

# Values have one width, so a stale size in the kernel's attribute cache
# could never cut a body short and pass for another value.
VALUE_FORMAT = "w%d-%06d"
INITIAL_FORMAT = "init-%04d"
INF = float("inf")


# ------------------------------------------------- linearizability checker

class Op:
    """One operation of the history on a register (one key). complete is
    INF for a write whose outcome is unknown (it failed: the request may
    still have been applied, at any time after its invocation)."""

    __slots__ = ("kind", "value", "invoke", "complete", "client")

    def __init__(self, kind, value, invoke, complete, client=None):
        assert kind in ("r", "w")
        self.kind = kind
        self.value = value
        self.invoke = invoke
        self.complete = complete
        self.client = client

    def __repr__(self):
        return "%s%s(%r)@[%.3f, %s]" % (
            "" if self.client is None else "c%s:" % self.client, self.kind, self.value,
            self.invoke, "?" if self.complete == INF else "%.3f" % self.complete)


def check_register(ops, initial):
    """Wing & Gong's search (with Lowe's memoisation of (linearized set,
    value)) for a register that starts at INITIAL. Writes with an unknown
    outcome (complete INF) may be linearized anywhere after their
    invocation, or never. Returns None when the history is linearizable,
    otherwise a short explanation."""
    ops = sorted(ops, key=lambda o: o.invoke)
    n = len(ops)
    required = 0
    for i, op in enumerate(ops):
        if op.complete != INF:
            required |= 1 << i
    seen = set()
    stack = [(0, initial)]
    best, best_first, best_value = 0, 0, initial
    while stack:
        mask, value = stack.pop()
        if mask & required == required:
            return None
        if (mask, value) in seen:
            continue
        seen.add((mask, value))
        # The first op not linearized yet: every earlier one is.
        first = (~mask & (mask + 1)).bit_length() - 1
        done = bin(mask & required).count("1")
        if done > best:
            best, best_first, best_value = done, first, value
        horizon = INF
        for i in range(first, n):
            op = ops[i]
            if op.invoke > horizon:
                break      # it must come after an op that is still pending
            if mask & (1 << i):
                continue
            horizon = min(horizon, op.complete)
        for i in range(first, n):
            op = ops[i]
            if op.invoke > horizon:
                break
            if mask & (1 << i):
                continue
            if op.kind == "r":
                if op.value == value:
                    stack.append((mask | (1 << i), value))
            else:
                stack.append((mask | (1 << i), op.value))
    return ("not linearizable: at most %d of %d completed operations can be ordered; "
            "stuck with the value %r at %s" % (best, bin(required).count("1"), best_value,
                                               ops[max(0, best_first - 8):best_first + 16]))


def test_linearizability_checker_self_test():
    """The checker must reject what is not linearizable, so that the kill
    test cannot pass silently."""
    w, r = "w", "r"
    # Sequential and right.
    assert check_register([Op(w, 1, 0, 1), Op(r, 1, 2, 3)], 0) is None
    # A read of an overwritten value after the overwrite completed.
    assert check_register([Op(w, 1, 0, 1), Op(w, 2, 2, 3), Op(r, 1, 4, 5)], 0) is not None
    # A value nobody wrote.
    assert check_register([Op(r, 7, 0, 1)], 0) is not None
    # Concurrent write: the old value, then the new one, is fine...
    assert check_register([Op(w, 1, 0, 10), Op(r, 0, 1, 2), Op(r, 1, 3, 4)], 0) is None
    # ...but the new value, then the old one again, is not.
    assert check_register([Op(w, 1, 0, 10), Op(r, 1, 1, 2), Op(r, 0, 3, 4)], 0) is not None
    # A write with an unknown outcome may take effect late, or never...
    assert check_register([Op(w, 1, 0, INF), Op(r, 0, 1, 2), Op(r, 1, 5, 6)], 0) is None
    assert check_register([Op(w, 1, 0, INF), Op(r, 0, 1, 2)], 0) is None
    # ...but not before it was invoked, and not undone once seen.
    assert check_register([Op(r, 1, 0, 1), Op(w, 1, 2, INF)], 0) is not None
    assert check_register([Op(w, 1, 0, INF), Op(r, 1, 1, 2), Op(r, 0, 3, 4)], 0) is not None
    # Two writers, readers that disagree on their order.
    assert check_register([Op(w, 1, 0, 5), Op(w, 2, 0, 5), Op(r, 1, 6, 7), Op(r, 2, 8, 9),
                           Op(r, 1, 10, 11)], 0) is not None
    assert check_register([Op(w, 1, 0, 5), Op(w, 2, 0, 5), Op(r, 1, 1, 2), Op(r, 2, 3, 4),
                           Op(r, 2, 6, 7)], 0) is None


# ---------------------------------------------------------- cluster helpers

LEADER_KEYS = ("leader", "leader_id", "leader_node_id", "leader_node")


def _leader_value(v):
    if isinstance(v, dict):
        v = v.get("node_id", v.get("id", v.get("az")))
    if v in (None, 0, "", "none", "unknown"):
        return None
    return v


def partition_leader(partition):
    """The node id (or AZ) of the partition's leader as quorumctl shows it,
    or None: the replica that reports itself leader with the highest
    ballot (a dead leader's last report may linger), else the partition's
    leader field."""
    leaders = []
    for replica in partition.get("replicas", []):
        role = str(replica.get("role", "")).lower()
        if role == "leader" or replica.get("leader") is True or \
                replica.get("is_leader") is True:
            ballot = (replica.get("ballot_round") or 0, replica.get("ballot_node_id") or 0)
            leaders.append((ballot, -(replica.get("report_age_ms") or 0),
                            replica.get("node_id", replica.get("az"))))
    if leaders:
        return max(leaders, key=lambda x: (x[0], x[1]))[2]
    for key in LEADER_KEYS:
        if key in partition:
            v = _leader_value(partition[key])
            if v is not None:
                return v
    return None


def shows_leaders(desc):
    """True when `table describe --json` has leader information at all."""
    for partition in desc.get("partitions", []):
        if any(key in partition for key in LEADER_KEYS):
            return True
        for replica in partition.get("replicas", []):
            if any(key in replica for key in ("role", "leader", "is_leader")):
                return True
    return False


# Before replication, the node that holds a partition's data plays its
# leader in the kill test when this is set: the test then checks the
# harness, the supervisor and the router's retries on today's cluster.
FIRST_REPLICA_LEADS = os.environ.get("QUORUM_E2E_FIRST_REPLICA_LEADS") == "1"


def leader_az(desc, partition):
    """The AZ of the partition's leader, or None."""
    leader = partition_leader(partition)
    if leader is None and FIRST_REPLICA_LEADS and not shows_leaders(desc):
        return partition["replicas"][0]["az"]
    if leader is None:
        return None
    for replica in partition.get("replicas", []):
        if replica.get("node_id") == leader or replica.get("az") == leader:
            return replica.get("az")
    for node in desc.get("nodes", []):
        if node.get("id") == leader or node.get("az") == leader:
            return node.get("az")
    return None


def wait_leaders(h, table, timeout_s=60, first_replica_leads=False):
    """Waits until every partition of TABLE shows a leader; returns the
    describe output. Skips the test when the cluster shows no leader
    information at all (no replication yet), unless first_replica_leads
    and QUORUM_E2E_FIRST_REPLICA_LEADS=1."""
    deadline = time.monotonic() + timeout_s
    while True:
        desc = h.ctl("table", "describe", table)
        if not shows_leaders(desc) and not (first_replica_leads and FIRST_REPLICA_LEADS):
            pytest.skip("quorumctl table describe --json shows no leader: the cluster "
                        "runs without replication groups")
        if all(leader_az(desc, p) for p in desc["partitions"]):
            return desc
        assert time.monotonic() < deadline, \
            "partitions without a leader %d s after the start: %s" % (timeout_s, desc)
        time.sleep(0.5)


def wait_restarted(h, az, old_pid, timeout_s=30):
    """Waits until the supervisor has started node AZ again (a new pid in
    cluster.json that runs); returns the new pid."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            pid = h.node_pids()[az]
        except (OSError, ValueError, KeyError):
            pid = None
        if pid and pid != old_pid and pid_alive(pid):
            return pid
        assert time.monotonic() < deadline, \
            "node %s (pid %d) was not started again in %d s" % (az, old_pid, timeout_s)
        time.sleep(0.1)


class SecondMount:
    """A second router on the same cluster (`quorumfs -f -o meta=URL`), by
    pid, always unmounted and stopped by stop()."""

    def __init__(self, h, path, options=()):
        self.path = str(path)
        os.makedirs(self.path, exist_ok=True)
        self.log = open(self.path + ".log", "w")
        cmd = [QUORUMFS, "-f", "-o", "meta=" + h.cluster_json()["meta"],
               "-o", "timeout=%d" % REQUEST_TIMEOUT_S]
        for opt in options:
            cmd += ["-o", opt]
        self.proc = subprocess.Popen(cmd + [self.path], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while not is_mounted(self.path):
            assert self.proc.poll() is None, "second mount exited with %s" % self.proc.returncode
            assert time.monotonic() < deadline, "second mount not in place after 60 s"
            time.sleep(0.05)

    def stop(self):
        if is_mounted(self.path):
            try:
                run(["fusermount3", "-u", self.path], timeout=20, check=False)
            except subprocess.TimeoutExpired:
                pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if is_mounted(self.path):
            fuse_abort(self.path)
            run(["fusermount3", "-u", "-z", self.path], timeout=20, check=False)
        self.log.close()


def make_table(mnt, name="t"):
    path = os.path.join(mnt, name)
    os.mkdir(path)
    return path


# ------------------------------------------------------------- supervisor

@pytest.mark.deadline(300)
def test_supervisor_restarts_killed_children(cluster):
    """SIGKILL of a node and of meta: the supervisor logs it, starts each
    again with a new pid in cluster.json, and the mount works on."""
    mnt, datadir, h = cluster
    t = make_table(mnt)
    names = ["k%02d" % i for i in range(12)]
    for name in names:
        write_file(os.path.join(t, name), name.encode())
    for az in ("a", "b", "c"):
        old = h.node_pids()[az]
        h.kill_node(az)
        wait_restarted(h, az, old)
    old_meta = h.meta_pid()
    assert pid_signal(old_meta, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not (h.meta_pid() != old_meta and pid_alive(h.meta_pid())):
        assert time.monotonic() < deadline, "meta was not started again"
        time.sleep(0.1)
    # Every item, through the new processes (within a few deadlines: the
    # nodes register with the new meta again first).
    deadline = time.monotonic() + 3 * REQUEST_TIMEOUT_S
    for name in names:
        while True:
            try:
                assert read_file(os.path.join(t, name)) == name.encode()
                break
            except OSError as e:
                assert e.errno == errno.EIO and time.monotonic() < deadline, e
    write_file(os.path.join(t, "after"), b"restarts")
    assert read_file(os.path.join(t, "after")) == b"restarts"
    with open(os.path.join(datadir, "quorumfs.log")) as f:
        log = f.read()
    assert "started node-a again" in log and "started meta again" in log, log[-3000:]
    # And a clean stop leaves nothing behind (conftest checks the pids).
    h.stop()


# ---------------------------------------------------------------- kill test

class History:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = {}      # key -> [Op]

    def add(self, key, op):
        with self.lock:
            self.ops.setdefault(key, []).append(op)


def _client(t, t_read, client, own_keys, all_keys, history, stop, rng, errors):
    """Writes through the cluster's mount, reads through a mount of its
    own. On one mount, readers share the kernel's inode and page cache
    with writers and with each other: a reader can see the size 0 of an
    open(O_TRUNC) or bytes of a write() not yet put, as on any local file
    system, and pages that another reader's older handle filled. The
    cluster's behaviour is what is under test here."""
    seq = 0
    while not stop.is_set():
        key = rng.choice(own_keys)
        seq += 1
        value = (VALUE_FORMAT % (client, seq)).encode()
        start = time.monotonic()
        try:
            write_file(os.path.join(t, key), value)
            history.add(key, Op("w", value, start, time.monotonic(), client))
        except OSError as e:
            errors.append(("write", key, e.errno, time.monotonic() - start))
            history.add(key, Op("w", value, start, INF, client))
        for _ in range(2):
            key = rng.choice(all_keys)
            start = time.monotonic()
            try:
                body = read_file(os.path.join(t_read, key))
                history.add(key, Op("r", body, start, time.monotonic(), client))
            except OSError as e:
                errors.append(("read", key, e.errno, time.monotonic() - start))
        time.sleep(0.01)


@pytest.mark.deadline(600)
def test_kill_leaders_under_load_loses_nothing(cluster):
    mnt, datadir, h = cluster
    t = make_table(mnt)
    keys = ["key%d" % i for i in range(8)]
    initial = {k: (INITIAL_FORMAT % i).encode() for i, k in enumerate(keys)}
    for k in keys:
        write_file(os.path.join(t, k), initial[k])
    desc = wait_leaders(h, "t", first_replica_leads=True)
    clients = 4
    readers = []

    # One writer per key, each through the cluster's mount: writers of one
    # file on one mount share its page cache, which is not under test.
    history = History()
    stop = threading.Event()
    errors = []
    threads = []
    kills = []
    try:
        for c in range(clients):
            readers.append(SecondMount(h, os.path.join(os.path.dirname(datadir),
                                                       "mnt-read-%d" % c)))
        for c in range(clients):
            own = keys[c::clients]
            th = threading.Thread(target=_client,
                                  args=(t, os.path.join(readers[c].path, "t"), c, own, keys,
                                        history, stop, random.Random(c), errors),
                                  daemon=True)
            th.start()
            threads.append(th)
        time.sleep(2)
        for round_ in range(5):
            desc = wait_leaders(h, "t", first_replica_leads=True)
            partition = desc["partitions"][round_ % len(desc["partitions"])]
            az = leader_az(desc, partition)
            pid = h.node_pids()[az]
            assert pid_signal(pid, signal.SIGKILL), "node %s (pid %d) not running" % (az, pid)
            kills.append((time.monotonic(), az, partition.get("id")))
            print("round %d: killed the leader of partition %s, node %s (pid %d)"
                  % (round_, partition.get("id"), az, pid))
            wait_restarted(h, az, pid)
            # Let it catch up before the next kill: two dead of three
            # would stop writes, which is not what this test is about.
            time.sleep(4)
        time.sleep(2)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=3 * REQUEST_TIMEOUT_S + 10)
        hung = any(th.is_alive() for th in threads)
        for reader in readers:
            reader.stop()
    assert not hung, "a client hung on the mount"

    # Every key: the value now is the last acknowledged write's or a later
    # (unacknowledged) one's, and the whole history is linearizable.
    final_start = time.monotonic()
    for k in keys:
        start = time.monotonic()
        body = read_file(os.path.join(t, k))
        history.add(k, Op("r", body, start, time.monotonic(), "final"))
        writes = [op for op in history.ops.get(k, []) if op.kind == "w"]
        acked = [op for op in writes if op.complete != INF]
        if acked:
            last = max(acked, key=lambda op: op.complete)
            later = {op.value for op in writes if op.invoke >= last.invoke}
            assert body in later, \
                "key %s holds %r; the last acknowledged write was %r" % (k, body, last.value)
    print("final reads took %.1f s" % (time.monotonic() - final_start))
    total = sum(len(v) for v in history.ops.values())
    acked_writes = sum(1 for v in history.ops.values() for op in v
                       if op.kind == "w" and op.complete != INF)
    slowest = max((op.complete - op.invoke for v in history.ops.values() for op in v
                   if op.complete != INF and op.client != "final"), default=0)
    print("history: %d operations, %d acknowledged writes, %d errors (%s), slowest "
          "completed operation %.2f s, kills %s"
          % (total, acked_writes, len(errors),
             sorted({errno.errorcode.get(e[2], e[2]) for e in errors}), slowest, kills))
    assert acked_writes > 20, "too few writes succeeded: %d (errors %s)" % (acked_writes,
                                                                          errors[:20])
    for e in errors:
        assert e[3] < 3 * REQUEST_TIMEOUT_S, "an operation took %.1f s: %s" % (e[3], e)
    for k in keys:
        problem = check_register(history.ops[k], initial[k])
        assert problem is None, "key %s: %s" % (k, problem)


# ---------------------------------------------------------- stopped nodes

def _write_within(path, value, bound_s):
    """Writes path; returns (errno or None, seconds)."""
    start = time.monotonic()
    try:
        write_file(path, value)
        err = None
    except OSError as e:
        err = e.errno
    elapsed = time.monotonic() - start
    assert elapsed < bound_s, "writing %s took %.1f s (bound %d s)" % (path, elapsed, bound_s)
    return err, elapsed


@pytest.mark.deadline(600)
def test_one_node_stopped_writes_go_on_two_stopped_they_fail(cluster):
    mnt, datadir, h = cluster
    t = make_table(mnt)
    names = ["k%02d" % i for i in range(16)]
    for name in names:
        write_file(os.path.join(t, name), b"before")
    wait_leaders(h, "t")
    pids = h.node_pids()
    bound_s = 3 * REQUEST_TIMEOUT_S
    stopped = []
    try:
        # One of three: a leader among them, so some partitions elect.
        desc = h.ctl("table", "describe", "t")
        first = leader_az(desc, desc["partitions"][0])
        assert pid_signal(pids[first], signal.SIGSTOP)
        stopped.append(pids[first])
        for name in names:
            err, elapsed = _write_within(os.path.join(t, name), b"one-down", bound_s)
            assert err is None, "write of %s with node %s stopped: %s after %.1f s" % (
                name, first, errno.errorcode.get(err, err), elapsed)
        for name in names:
            assert read_file(os.path.join(t, name)) == b"one-down"

        # Two of three: no majority anywhere; an error within the bound.
        second = [az for az in pids if az != first][0]
        assert pid_signal(pids[second], signal.SIGSTOP)
        stopped.append(pids[second])
        err, elapsed = _write_within(os.path.join(t, names[0]), b"two-down", bound_s)
        print("write with two nodes stopped: %s after %.1f s"
              % (errno.errorcode.get(err, err), elapsed))
        assert err is not None, "a write succeeded with two nodes of three stopped"

        # One comes back: writes work again (the first may wait out an
        # election).
        assert pid_signal(pids[second], signal.SIGCONT)
        stopped.remove(pids[second])
        deadline = time.monotonic() + bound_s
        while True:
            err, elapsed = _write_within(os.path.join(t, names[0]), b"back", bound_s)
            if err is None:
                break
            assert time.monotonic() < deadline, \
                "writes still fail %d s after a second node came back: %s" % (
                    bound_s, errno.errorcode.get(err, err))
        for name in names:
            err, elapsed = _write_within(os.path.join(t, name), b"back", bound_s)
            assert err is None, "write of %s: %s" % (name, errno.errorcode.get(err, err))
        for name in names:
            assert read_file(os.path.join(t, name)) == b"back"
    finally:
        for pid in pids.values():
            pid_signal(pid, signal.SIGCONT)


@pytest.mark.deadline(300)
def test_eventual_reads_from_followers_while_the_leader_is_stopped(cluster_factory):
    """-o consistency=eventual: with the leader of a partition stopped,
    its items are still read (from a follower), without waiting for an
    election and well within the deadline."""
    c = cluster_factory(options=["consistency=eventual"])
    t = make_table(c.mountpoint)
    names = ["k%02d" % i for i in range(16)]
    for name in names:
        write_file(os.path.join(t, name), name.encode())
    desc = wait_leaders(c, "t")
    time.sleep(1)      # let the followers apply what was committed
    az = leader_az(desc, desc["partitions"][0])
    pid = c.node_pids()[az]
    try:
        assert pid_signal(pid, signal.SIGSTOP)
        first = time.monotonic()
        for name in names:
            start = time.monotonic()
            assert read_file(os.path.join(t, name)) == name.encode()
            elapsed = time.monotonic() - start
            assert elapsed < REQUEST_TIMEOUT_S, "reading %s took %.1f s" % (name, elapsed)
        assert sorted(os.listdir(t)) == names
        total = time.monotonic() - first
        print("every item read in %.2f s with node %s (leader of partition %s) stopped"
              % (total, az, desc["partitions"][0].get("id")))
    finally:
        pid_signal(pid, signal.SIGCONT)

"""End-to-end tests of replica moves through a real mount: a storage node
added to a running cluster receives replicas (meta moves them one at a time
through each group's log: add the new member, let it catch up by snapshot,
remove the old one), `quorumctl node drain` empties a node, and throughout
every partition keeps three replicas in three AZs while readers and writers
see no error and lose nothing."""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILDDIR, pid_signal, read_file, write_file

QUORUMD = os.path.join(BUILDDIR, "cluster", "quorumd")
ITEMS = 120


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(h, az):
    """Starts one more quorumd in AZ az against the cluster's meta; the
    cluster's teardown stops it (its PID is remembered)."""
    info = h.cluster_json()
    meta_url = info["meta"]
    data = os.path.join(h.datadir, "extra-node-%s-%d" % (az, len(h.known_pids)))
    os.makedirs(data, exist_ok=True)
    log = open(os.path.join(h.datadir, "extra-node-%s.log" % az), "ab")
    proc = subprocess.Popen([QUORUMD, "--listen", "tcp://127.0.0.1:%d" % free_port(),
                             "--meta", meta_url, "--az", az, "--data", data],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    h.known_pids.add(proc.pid)
    return proc


def nodes_by_id(h):
    return {n["id"]: n for n in h.ctl("node", "list")}


def wait_node(h, az, timeout_s=30):
    """The id of the up node of AZ az that registered last."""
    deadline = time.monotonic() + timeout_s
    while True:
        ids = [i for i, n in nodes_by_id(h).items() if n["az"] == az and n["up"]]
        if len(ids) > 1:
            return max(ids)
        assert time.monotonic() < deadline, "no second node registered in AZ %s" % az
        time.sleep(0.5)


def partitions(h):
    return h.ctl("partition", "list")


def check_az_rule(h):
    """Every partition: three replicas on three distinct nodes in three AZs."""
    nodes = nodes_by_id(h)
    for p in partitions(h):
        ids = [r["node_id"] for r in p["replicas"]]
        assert len(ids) == 3 and len(set(ids)) == 3, p
        assert len({nodes[i]["az"] for i in ids}) == 3, p


def wait_moves(h, done, what, timeout_s=120):
    """Waits until done(nodes) holds and no move is under way, checking the
    AZ rule every round."""
    deadline = time.monotonic() + timeout_s
    while True:
        check_az_rule(h)
        nodes = nodes_by_id(h)
        if done(nodes) and not any(p.get("moving_to") for p in partitions(h)):
            return nodes
        assert time.monotonic() < deadline, "%s: not done in %d s: %s" % (
            what, timeout_s, {i: n["replicas"] for i, n in nodes.items()})
        time.sleep(1)


class Load:
    """Writers, readers and a lister over the table while replicas move:
    each item's last acknowledged body is remembered, every listing must
    show each item exactly once; any error is recorded."""

    def __init__(self, table):
        self.table = table
        self.stop = threading.Event()
        self.errors = []
        self.bodies = {}
        self.lock = threading.Lock()
        self.listings = 0
        self.threads = [threading.Thread(target=self.run, args=(k,), daemon=True)
                        for k in range(2)]
        self.threads.append(threading.Thread(target=self.list, daemon=True))

    def list(self):
        expected = ["item%03d" % i for i in range(ITEMS)]
        while not self.stop.is_set():
            try:
                names = os.listdir(self.table)
            except OSError as e:
                self.errors.append("listing: %s" % e)
                continue
            if sorted(names) != expected:
                self.errors.append("a listing showed %d names, %d distinct" % (
                    len(names), len(set(names))))
            self.listings += 1

    def run(self, k):
        n = 0
        while not self.stop.is_set():
            name = "item%03d" % ((n * 2 + k) % ITEMS)
            path = os.path.join(self.table, name)
            try:
                with self.lock:
                    expected = self.bodies.get(name)
                if expected is not None:
                    got = read_file(path)
                    if got != expected:
                        self.errors.append("%s: read %r, expected %r" % (name, got[:40],
                                                                          expected[:40]))
                body = b"%s round %d " % (name.encode(), n) * 20
                write_file(path, body)
                with self.lock:
                    self.bodies[name] = body
            except OSError as e:
                self.errors.append("%s: %s" % (name, e))
            n += 1

    def __enter__(self):
        for th in self.threads:
            th.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for th in self.threads:
            th.join(timeout=60)


@pytest.mark.deadline(420)
def test_new_node_receives_replicas_then_drain_empties_a_node(cluster):
    mnt, datadir, h = cluster
    table = os.path.join(mnt, "t")
    os.mkdir(table)
    for i in range(ITEMS):
        write_file(os.path.join(table, "item%03d" % i), b"first %d" % i)
    before = nodes_by_id(h)
    old_a = [i for i, n in before.items() if n["az"] == "a"][0]
    assert before[old_a]["replicas"] == 4

    with Load(table) as load:
        start_node(h, "a")
        new_a = wait_node(h, "a")
        # Balance: the new node of AZ a takes replicas from the old one until
        # they hold within one of each other.
        nodes = wait_moves(h, lambda n: n[new_a]["replicas"] >= 2, "rebalancing")
        assert abs(nodes[new_a]["replicas"] - nodes[old_a]["replicas"]) <= 1, nodes
        # Drain: every replica leaves the old node of AZ a.
        h.ctl("node", "drain", str(old_a))
        nodes = wait_moves(h, lambda n: n[old_a]["replicas"] == 0, "draining")
        assert nodes[new_a]["replicas"] == 4
        assert nodes[old_a]["draining"]
        time.sleep(2)
    assert not load.errors, load.errors[:10]
    assert len(load.bodies) > 0 and load.listings > 0
    # Every item is whole: the writers' last bodies, or the first ones.
    for i in range(ITEMS):
        name = "item%03d" % i
        assert read_file(os.path.join(table, name)) == load.bodies.get(name, b"first %d" % i)
    assert sorted(os.listdir(table)) == ["item%03d" % i for i in range(ITEMS)]
    # The drained node gave its copies back: meta retired them at its heartbeat.
    for p in partitions(h):
        assert old_a not in [r["node_id"] for r in p["replicas"]]

    # The drained node can stop: writes go on with the new one in AZ a.
    pid_signal(h.node_pids()["a"], signal.SIGSTOP)
    try:
        write_file(os.path.join(table, "after"), b"drained node stopped")
        assert read_file(os.path.join(table, "after")) == b"drained node stopped"
    finally:
        pid_signal(h.node_pids()["a"], signal.SIGCONT)


@pytest.mark.deadline(300)
def test_drain_of_a_silent_node_restores_three_live_replicas(cluster):
    """A node that stopped answering (SIGSTOP: `quorumfs --local` would
    restart a killed one) is drained like a live one: each of its groups adds
    a member on the new node (the two live replicas are a majority) and
    removes the silent one, so every partition is back at three live replicas."""
    mnt, datadir, h = cluster
    table = os.path.join(mnt, "t")
    os.mkdir(table)
    for i in range(ITEMS):
        write_file(os.path.join(table, "item%03d" % i), b"kept %d" % i)
    start_node(h, "b")
    new_b = wait_node(h, "b")
    old_b = [i for i, n in nodes_by_id(h).items() if n["az"] == "b" and i != new_b][0]
    # Balancing may start; wait until it settles before the kill.
    wait_moves(h, lambda n: True, "settling")
    pid = h.node_pids()["b"]
    pid_signal(pid, signal.SIGSTOP)
    try:
        h.ctl("node", "drain", str(old_b))
        wait_moves(h, lambda n: n[old_b]["replicas"] == 0, "draining a silent node", 180)
        for i in range(ITEMS):
            assert read_file(os.path.join(table, "item%03d" % i)) == b"kept %d" % i
        write_file(os.path.join(table, "new"), b"written after the drain")
        assert read_file(os.path.join(table, "new")) == b"written after the drain"
    finally:
        pid_signal(pid, signal.SIGCONT)

"""End-to-end tests of replicated metadata services (meta/meta_group.h): three
quorum-meta started by hand with --peers, three quorumd and a mount that
take the three URLs (--meta, -o meta=). The leader of the metas is killed
with SIGKILL while tables and items are created, it comes back and catches
up, another one is killed, and nothing is lost: every table and item is
there, through the mount and through `quorumctl --meta URL,URL,URL`, also
after the leadership moved to yet another instance. With all three metas
dead, the mount goes on serving reads and writes of the tables it knows.

Every process is started here and stopped here by its PID, also when the
test fails (SIGTERM, then SIGKILL)."""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

import conftest
from conftest import (BUILDDIR, QUORUMCTL, QUORUMFS, REQUEST_TIMEOUT_S, fuse_abort, is_mounted,
                      pid_signal, pids_wait_gone, read_file, run, write_file)

QUORUM_META = os.path.join(BUILDDIR, "meta", "quorum-meta")
QUORUMD = os.path.join(BUILDDIR, "cluster", "quorumd")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, fn, timeout_s=30, interval_s=0.2):
    """Calls FN until it returns something other than None or False (0 is an answer: the
    index of the first meta); returns it, or fails after TIMEOUT_S."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            value = fn()
            if value is not None and value is not False:
                return value
        except (AssertionError, OSError, ValueError, subprocess.TimeoutExpired) as e:
            last = e
        assert time.monotonic() < deadline, "%s: not within %d s (%s)" % (what, timeout_s, last)
        time.sleep(interval_s)


class MetaCluster:
    """Three metas, three nodes, one mount; every PID is ours."""

    def __init__(self, base):
        self.base = str(base)
        self.datadir = self.base      # conftest's failure report names it
        self.meta_urls = ["tcp://127.0.0.1:%d" % free_port() for _ in range(3)]
        self.urls = ",".join(self.meta_urls)
        self.metas = [None, None, None]       # Popen per member (index = member id - 1)
        self.nodes = []
        self.mount_proc = None
        self.mountpoint = os.path.join(self.base, "mnt")
        self.logs = []
        self.started = 0

    # -- processes

    def _spawn(self, name, cmd):
        self.started += 1
        log = open(os.path.join(self.base, "%s-%d.log" % (name, self.started)), "w")
        self.logs.append(log)
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def start_meta(self, i):
        data = os.path.join(self.base, "meta%d" % (i + 1))
        self.metas[i] = self._spawn("meta%d" % (i + 1), [
            QUORUM_META, "--listen", self.meta_urls[i], "--data", data,
            "--peers", self.urls])

    def kill_meta(self, i):
        proc = self.metas[i]
        assert pid_signal(proc.pid, signal.SIGKILL), "meta %d was not running" % (i + 1)
        proc.wait(timeout=10)
        self.metas[i] = None

    def start_nodes(self):
        for az in ("a", "b", "c"):
            self.nodes.append(self._spawn("node-" + az, [
                QUORUMD, "--listen", "tcp://127.0.0.1:%d" % free_port(), "--meta", self.urls,
                "--az", az, "--data", os.path.join(self.base, "node-" + az)]))

    def mount(self):
        os.makedirs(self.mountpoint, exist_ok=True)
        self.mount_proc = self._spawn("quorumfs", [
            QUORUMFS, "-f", "-o", "meta=" + self.urls, "-o", "timeout=%d" % REQUEST_TIMEOUT_S,
            self.mountpoint])
        deadline = time.monotonic() + 60
        while not is_mounted(self.mountpoint):
            assert self.mount_proc.poll() is None, \
                "quorumfs exited with %s" % self.mount_proc.returncode
            assert time.monotonic() < deadline, "the mount is not in place after 60 s"
            time.sleep(0.05)

    def procs(self):
        return [p for p in self.metas + self.nodes + [self.mount_proc] if p is not None]

    def watchdog_fire(self):
        """conftest's watchdog, at the test's deadline."""
        fuse_abort(self.mountpoint)
        for proc in self.procs():
            pid_signal(proc.pid, signal.SIGKILL)

    def teardown(self):
        if is_mounted(self.mountpoint):
            try:
                run(["fusermount3", "-u", self.mountpoint], timeout=20, check=False)
            except subprocess.TimeoutExpired:
                pass
        procs = self.procs()
        for proc in procs:
            pid_signal(proc.pid, signal.SIGTERM)
        left = pids_wait_gone([p.pid for p in procs], 20)
        for pid in left:
            pid_signal(pid, signal.SIGKILL)
        pids_wait_gone(left, 10)
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if is_mounted(self.mountpoint):
            fuse_abort(self.mountpoint)
            run(["fusermount3", "-u", "-z", self.mountpoint], timeout=20, check=False)
        for log in self.logs:
            log.close()

    def sanitizer_reports(self):
        found = []
        for log in self.logs:
            try:
                with open(log.name, errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            found += ["%s: %s" % (log.name, m) for m in conftest.SANITIZER_MARKERS if m in text]
        return found

    def log_tails(self, lines=30):
        out = []
        for log in self.logs:
            try:
                with open(log.name, errors="replace") as f:
                    tail = f.readlines()[-lines:]
            except OSError:
                continue
            out.append("---- %s\n%s" % (log.name, "".join(tail)))
        return "\n".join(out)

    # -- quorumctl

    def ctl(self, *args, urls=None, timeout_s=REQUEST_TIMEOUT_S, check=True):
        proc = run([QUORUMCTL, "--meta", urls or self.urls, "-t", str(timeout_s), "--json"]
                   + list(args), timeout=timeout_s + 30, check=check)
        return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else proc

    def leader(self):
        """The index of the meta that serves (only the leader answers alone)."""
        why = []
        for i, proc in enumerate(self.metas):
            if proc is None:
                continue
            answer = self.ctl("table", "list", urls=self.meta_urls[i], timeout_s=1, check=False)
            if not isinstance(answer, subprocess.CompletedProcess):
                return i
            why.append("meta %d: %s" % (i + 1, answer.stderr.strip()))
        raise AssertionError("; ".join(why))

    def table_names(self, urls=None):
        answer = self.ctl("table", "list", urls=urls)
        tables = answer["tables"] if isinstance(answer, dict) else answer
        return sorted(t["name"] for t in tables)

    def nodes_up(self):
        answer = self.ctl("node", "list", check=False)
        if isinstance(answer, subprocess.CompletedProcess):
            return 0
        nodes = answer["nodes"] if isinstance(answer, dict) else answer
        return sum(1 for n in nodes if n.get("up"))


@pytest.fixture
def metas(tmp_path, request):
    for path in (QUORUM_META, QUORUMD, QUORUMFS, QUORUMCTL):
        if not os.access(path, os.X_OK):
            pytest.fail("%s is not built (QUORUMFS_BUILDDIR=%s)" % (path, BUILDDIR))
    c = MetaCluster(tmp_path)
    request.node.quorum_clusters = [c]    # their log tails go into a failure's report
    with conftest._live_lock:
        conftest._live_clusters.append(c)
    try:
        for i in range(3):
            c.start_meta(i)
        wait_for("a meta leader", c.leader, timeout_s=30)
        c.start_nodes()
        wait_for("three storage nodes up", lambda: c.nodes_up() == 3, timeout_s=60)
        c.mount()
        yield c
    except BaseException:
        print(c.log_tails())
        raise
    finally:
        with conftest._live_lock:
            if c in conftest._live_clusters:
                conftest._live_clusters.remove(c)
        c.teardown()
    reports = c.sanitizer_reports()
    if reports:
        pytest.fail("sanitizer reports: " + "; ".join(reports))


def create_table(c, name):
    """quorumctl table create through the URL list, again while the nodes find the
    new leader (-EAGAIN) or an election runs."""
    def attempt():
        answer = c.ctl("table", "create", name, check=False)
        if isinstance(answer, subprocess.CompletedProcess):
            # Created by an attempt whose answer was lost: it is there.
            if "exists" in answer.stderr:
                return True
            raise AssertionError(answer.stderr.strip())
        return True
    wait_for("table create " + name, attempt, timeout_s=60, interval_s=0.5)


def write_items(mnt, table, names, tag):
    for name in names:
        path = os.path.join(mnt, table, name)
        wait_for("write " + path, lambda: write_file(path, (tag + name).encode()) or True,
                 timeout_s=60, interval_s=0.5)


def check_items(mnt, table, names, tag):
    path = os.path.join(mnt, table)
    listed = wait_for("listing " + path, lambda: sorted(os.listdir(path)), timeout_s=60)
    assert listed == sorted(names), "%s lists %s" % (path, listed)
    for name in names:
        assert read_file(os.path.join(path, name)) == (tag + name).encode()


@pytest.mark.deadline(420)
def test_meta_leader_killed_nothing_lost(metas):
    c = metas
    mnt = c.mountpoint
    written = {}

    os.mkdir(os.path.join(mnt, "t1"))
    written["t1"] = ["a%02d" % i for i in range(20)]
    write_items(mnt, "t1", written["t1"], "t1:")

    # The leader dies; the others elect one and go on.
    first = wait_for("a meta leader", c.leader, timeout_s=30)
    c.kill_meta(first)
    create_table(c, "t2")
    written["t2"] = ["b%02d" % i for i in range(20)]
    write_items(mnt, "t2", written["t2"], "t2:")
    os.mkdir(os.path.join(mnt, "t3"))
    written["t3"] = ["c%02d" % i for i in range(10)]
    write_items(mnt, "t3", written["t3"], "t3:")
    more = ["a%02d" % i for i in range(20, 30)]
    write_items(mnt, "t1", more, "t1:")
    written["t1"] += more
    assert c.table_names() == ["t1", "t2", "t3"]

    # It comes back and catches up; then another one dies, so the restarted one is
    # needed for every majority from now on.
    c.start_meta(first)
    time.sleep(3)
    second = wait_for("a meta leader", c.leader, timeout_s=30)
    if second == first:
        second = next(i for i in range(3) if i != first and c.metas[i] is not None)
    c.kill_meta(second)
    create_table(c, "t4")
    written["t4"] = ["d%02d" % i for i in range(10)]
    write_items(mnt, "t4", written["t4"], "t4:")
    assert c.table_names() == ["t1", "t2", "t3", "t4"]
    for table, names in written.items():
        check_items(mnt, table, names, table + ":")

    # The second comes back too; the leader stops cleanly and hands off, so yet
    # another instance answers from its own copy of the catalog.
    c.start_meta(second)
    time.sleep(3)
    leader = wait_for("a meta leader", c.leader, timeout_s=30)
    proc = c.metas[leader]
    assert pid_signal(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    c.metas[leader] = None
    other = wait_for("a new meta leader", c.leader, timeout_s=30)
    assert other != leader
    assert c.table_names(urls=c.meta_urls[other]) == ["t1", "t2", "t3", "t4"]
    assert c.table_names() == ["t1", "t2", "t3", "t4"]
    assert sorted(os.listdir(mnt)) == ["t1", "t2", "t3", "t4"]
    for table, names in written.items():
        check_items(mnt, table, names, table + ":")


@pytest.mark.deadline(300)
def test_mount_serves_with_every_meta_dead(metas):
    c = metas
    mnt = c.mountpoint
    t = os.path.join(mnt, "t")
    os.mkdir(t)
    names = ["m%02d" % i for i in range(30)]
    for name in names:
        write_file(os.path.join(t, name), b"before")
    for i in range(3):
        c.kill_meta(i)
    # Reads, overwrites and listings of a known table, for longer than a deadline.
    deadline = time.monotonic() + 15
    rounds = 0
    while time.monotonic() < deadline:
        for name in names:
            write_file(os.path.join(t, name), b"during-%d" % rounds)
        for name in names:
            assert read_file(os.path.join(t, name)) == b"during-%d" % rounds
        assert sorted(os.listdir(t)) == names
        rounds += 1
    assert rounds >= 2

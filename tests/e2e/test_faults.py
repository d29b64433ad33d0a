"""End-to-end tests of the cluster's life cycle and failures: clean stops,
SIGKILL of every process and a restart on the same DATADIR (nothing
acknowledged is lost), a restart over a stale mount, and a dead storage
node that must give an error within the deadline, never a hang."""

import concurrent.futures
import errno
import os
import random
import signal
import stat
import subprocess
import time

import pytest

from conftest import (QUORUMFS, REQUEST_TIMEOUT_S, STOP_TIMEOUT_S, DeadlineExceeded,
                      is_mounted, pid_alive, pid_signal, pids_wait_gone, read_file, write_file)

ITEM_MAX_BYTES = 1 << 20


def test_unmount_stops_every_process(cluster):
    mnt, datadir, h = cluster
    info = h.cluster_json()
    assert info["version"] == 1
    assert sorted(n["az"] for n in info["nodes"]) == ["a", "b", "c"]
    for node in info["nodes"]:
        assert node["address"].startswith("tcp://127.0.0.1:")
        assert os.path.isdir(node["data"])
    assert info["meta"].startswith("tcp://127.0.0.1:")
    pids = h.pids()
    assert len(pids) == 5, pids
    assert all(pid_alive(p) for p in pids)
    for name in ("quorumfs.log", "meta.log", "node-a.log", "node-b.log", "node-c.log"):
        assert os.path.exists(os.path.join(datadir, name)), name
    left = h.unmount()
    assert not left, "still running after fusermount3 -u: %s" % left
    assert not is_mounted(mnt)
    # And it comes back.
    h.start()
    assert os.listdir(mnt) == []


def test_sigterm_stops_every_process(cluster):
    mnt, _, h = cluster
    os.mkdir(os.path.join(mnt, "t"))
    write_file(os.path.join(mnt, "t", "k"), b"v")
    pids = h.pids()
    assert pid_signal(h.quorumfs_pid(), signal.SIGTERM)
    left = pids_wait_gone(pids, STOP_TIMEOUT_S)
    assert not left, "still running after SIGTERM: %s" % left
    assert not is_mounted(mnt), "SIGTERM left the mount behind"
    h.start()
    assert read_file(os.path.join(mnt, "t", "k")) == b"v"


def _populate(mnt, rng, count):
    """Writes COUNT items of various sizes, modes and mtimes into two
    tables; returns {path: (body, mode, mtime_ns)} of every item whose
    close() returned 0."""
    expected = {}
    sizes = [0, 1, 100, 4095, 4096, 65536, 300001, ITEM_MAX_BYTES - 1, ITEM_MAX_BYTES]
    for table in ("t1", "t2"):
        os.mkdir(os.path.join(mnt, table))
    for i in range(count):
        path = os.path.join(mnt, "t%d" % (1 + i % 2), "item-%03d" % i)
        size = sizes[i] if i < len(sizes) else rng.choice(sizes + [rng.randrange(200000)])
        body = rng.randbytes(size)
        mode = rng.choice([0o644, 0o600, 0o755, 0o440])
        mtime_ns = rng.randrange(10 ** 18, 2 * 10 ** 18)
        write_file(path, body)
        os.chmod(path, mode)
        os.utime(path, ns=(mtime_ns, mtime_ns))
        expected[path] = (body, mode, mtime_ns)
    return expected


def _check_items(expected):
    for path, (body, mode, mtime_ns) in sorted(expected.items()):
        st = os.stat(path)
        assert st.st_size == len(body), path
        assert stat.S_IMODE(st.st_mode) == mode, path
        assert st.st_mtime_ns == mtime_ns, path
        assert read_file(path) == body, "%s differs" % path


@pytest.mark.deadline(400)
def test_sigkill_everything_then_restart_keeps_acknowledged_items(cluster):
    mnt, _, h = cluster
    rng = random.Random(20240521)
    expected = _populate(mnt, rng, 60)
    # Overwrites and deletes are durable too.
    victims = sorted(expected)[:5]
    for path in victims[:3]:
        body = b"overwritten " + path.encode()
        write_file(path, body)
        os.chmod(path, 0o600)
        os.utime(path, ns=(1, 1234))
        expected[path] = (body, 0o600, 1234)
    for path in victims[3:]:
        os.unlink(path)
        del expected[path]
    # Writes still in flight when the power goes: whatever close() did not
    # acknowledge may or may not survive, but must be whole if it does.
    inflight = {}

    def late_write(i):
        path = os.path.join(mnt, "t1", "late-%02d" % i)
        body = bytes([i]) * (50000 + i)
        try:
            write_file(path, body)
        except OSError:
            return
        inflight[path] = body

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(late_write, i) for i in range(8)]
        h.kill_all()
        for f in futures:
            f.result(timeout=REQUEST_TIMEOUT_S * 3)
    assert is_mounted(mnt), "the mount should be left stale by SIGKILL"
    h.clean_stale_mount()
    h.start()
    _check_items(expected)
    for path, body in inflight.items():
        assert read_file(path) == body, "%s acknowledged but lost or torn" % path
    names = set(os.listdir(os.path.join(mnt, "t1"))) | set(os.listdir(os.path.join(mnt, "t2")))
    for path in victims[3:]:
        assert os.path.basename(path) not in names, "%s deleted but back" % path
    for name in names:
        if name.startswith("late-"):
            i = int(name[5:])
            assert read_file(os.path.join(mnt, "t1", name)) in (b"", bytes([i]) * (50000 + i)), \
                "%s is torn" % name


def test_restart_over_stale_mount(cluster):
    """quorumfs --local cleans a stale mount left by a SIGKILLed daemon."""
    mnt, _, h = cluster
    os.mkdir(os.path.join(mnt, "t"))
    write_file(os.path.join(mnt, "t", "k"), b"survives")
    h.kill_all()
    assert is_mounted(mnt)
    h.start()
    assert read_file(os.path.join(mnt, "t", "k")) == b"survives"


def test_children_exit_when_quorumfs_is_killed(cluster):
    """The nodes and meta must not outlive a SIGKILLed quorumfs (they would
    hold DATADIR's locks and block the next start)."""
    mnt, _, h = cluster
    os.mkdir(os.path.join(mnt, "t"))
    write_file(os.path.join(mnt, "t", "k"), b"v")
    children = h.pids() - {h.quorumfs_pid()}
    assert pid_signal(h.quorumfs_pid(), signal.SIGKILL)
    left = pids_wait_gone(children, STOP_TIMEOUT_S)
    assert not left, "meta/nodes %s still run after quorumfs was SIGKILLed" % left
    h.start()
    assert read_file(os.path.join(mnt, "t", "k")) == b"v"


@pytest.mark.deadline(600)
def test_silent_node_gives_eio_within_deadline(cluster):
    mnt, _, h = cluster
    t = os.path.join(mnt, "t")
    os.mkdir(t)
    names = ["k%02d" % i for i in range(48)]
    for name in names:
        write_file(os.path.join(t, name), name.encode())
    bound_s = REQUEST_TIMEOUT_S * 3

    def find_failing_key():
        """Reads items until one fails. Every call must return within the
        bound, with the item or with EIO. Returns the failing key or None."""
        for name in names:
            start = time.monotonic()
            try:
                body = read_file(os.path.join(t, name))
                err = None
            except OSError as e:
                body, err = None, e
            elapsed = time.monotonic() - start
            assert elapsed < bound_s, "reading %s took %.1f s" % (name, elapsed)
            if err is None:
                assert body == name.encode()
                continue
            assert err.errno == errno.EIO, "reading %s: expected EIO, got %s" % (name, err)
            print("read of %s failed with EIO after %.1f s (timeout %d s)"
                  % (name, elapsed, REQUEST_TIMEOUT_S))
            return name
        return None

    def check_write_fails(dead_key):
        # A write to that item fails the same way, at write, close or fsync.
        start = time.monotonic()
        err = None
        try:
            write_file(os.path.join(t, dead_key), b"new body")
        except OSError as e:
            err = e
        elapsed = time.monotonic() - start
        print("write of %s: %s after %.1f s" % (dead_key, err, elapsed))
        assert elapsed < bound_s, "writing %s took %.1f s" % (dead_key, elapsed)
        assert err is not None and err.errno == errno.EIO, \
            "write to a silent node: expected EIO, got %s" % err
        # Items on live nodes still work, and the mount still unmounts cleanly.
        start = time.monotonic()
        listed = None
        try:
            listed = os.listdir(t)
        except OSError as e:
            assert e.errno == errno.EIO, e
        assert time.monotonic() - start < bound_s
        if listed is not None:
            assert set(listed) <= set(names)

    # Silence (SIGSTOP: a supervisor would restart a killed node) the node
    # that holds the data of partition 1: without replication its items
    # fail. When replication serves them from the other two replicas,
    # silence a second node: a partition without a majority fails.
    desc = h.ctl("table", "describe", "t")
    first = desc["partitions"][0]["replicas"][0]["az"]
    node_pids = h.node_pids()
    dead_key = None
    stopped = []
    try:
        for az in [first] + [a for a in ("a", "b", "c") if a != first][:1]:
            assert pid_signal(node_pids[az], signal.SIGSTOP)
            stopped.append(az)
            # A leader serves strong reads alone until its lease ends (a fraction
            # of the election timeout, 200 ms by default): rightly, so wait it out.
            time.sleep(1)
            dead_key = find_failing_key()
            if dead_key is not None:
                break
            print("every item still readable with node(s) %s stopped" % stopped)
        assert dead_key is not None, "48 items all readable with nodes %s stopped" % stopped
        check_write_fails(dead_key)
    finally:
        for az in stopped:
            pid_signal(node_pids[az], signal.SIGCONT)


@pytest.mark.deadline(5)
def test_harness_deadline_unblocks_a_hung_mount(cluster):
    """The suite's own guard: a daemon that stops answering (SIGSTOP) must
    not hang CI. At the deadline the watchdog kills the cluster, the stuck
    system call returns and the test gets DeadlineExceeded."""
    mnt, _, h = cluster
    os.mkdir(os.path.join(mnt, "t"))
    write_file(os.path.join(mnt, "t", "k"), b"v")
    start = time.monotonic()
    os.kill(h.quorumfs_pid(), signal.SIGSTOP)
    with pytest.raises(DeadlineExceeded):
        try:
            # A read of a new name must reach the stopped daemon.
            read_file(os.path.join(mnt, "t", "k-never-looked-up"))
            raise AssertionError("a stopped daemon answered")
        except OSError as e:
            # The watchdog killed the daemon: the connection is gone.
            assert e.errno in (errno.ENOTCONN, errno.ECONNABORTED, errno.EIO), e
        # Python runs the alarm's handler between bytecodes: wait in a loop.
        for _ in range(300):
            time.sleep(0.1)
    assert time.monotonic() - start < 30
    assert not is_mounted(mnt) or not pid_alive(h.quorumfs_pid())


def test_foreground_mode(cluster_factory):
    """quorumfs -f stays in the foreground, mounts, and on SIGTERM
    unmounts, stops its children and exits 0."""
    c = cluster_factory(start=False)
    os.makedirs(c.mountpoint)
    out_path = os.path.join(os.path.dirname(c.datadir), "foreground.out")
    with open(out_path, "w") as out:
        proc = subprocess.Popen([QUORUMFS, "-f", "--local", c.datadir, c.mountpoint,
                                 "-o", "timeout=%d" % REQUEST_TIMEOUT_S],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while not is_mounted(c.mountpoint):
            assert proc.poll() is None, "quorumfs -f exited with %s" % proc.returncode
            assert time.monotonic() < deadline, "not mounted after 60 s"
            time.sleep(0.05)
        c.known_pids.add(proc.pid)
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(c.datadir, "cluster.json")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert c.quorumfs_pid() == proc.pid
        os.mkdir(os.path.join(c.mountpoint, "t"))
        write_file(os.path.join(c.mountpoint, "t", "k"), b"v")
        pids = c.pids()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0
        assert not pids_wait_gone(pids, STOP_TIMEOUT_S)
        assert not is_mounted(c.mountpoint)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    c.start()
    assert read_file(os.path.join(c.mountpoint, "t", "k")) == b"v"

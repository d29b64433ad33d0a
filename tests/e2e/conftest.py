"""End-to-end fixtures for quorumfs: a real `quorumfs --local` cluster
(one quorum-meta, three quorumd in AZs a, b, c) mounted with FUSE in a
per-test temporary directory.

The `cluster` fixture yields (mountpoint, datadir, helpers) and always
tears the cluster down, even when the test failed or timed out:
`fusermount3 -u`, then SIGTERM to quorumfs and a bounded wait, then
SIGKILL of whatever is left. Only PIDs recorded in DATADIR/cluster.json
(and DATADIR/quorumfs.pid) are ever signalled, and only after checking
that the PID still runs one of our programs.

Every test runs under a deadline (default 180 s, `@pytest.mark.deadline(S)`
to change it). At the deadline a watchdog thread aborts the FUSE
connections of the running clusters and kills their processes, so a
system call stuck on a hung mount returns, and the test fails with
TimeoutError instead of hanging CI.

Binaries come from $QUORUMFS_BUILDDIR (the automake build directory;
tests/e2e/run.sh sets it), or the source tree when it is unset.
"""

import errno
import json
import os
import signal
import subprocess
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILDDIR = os.path.abspath(os.environ.get("QUORUMFS_BUILDDIR", SRCDIR))

QUORUMFS = os.path.join(BUILDDIR, "fs", "quorumfs")
QUORUMCTL = os.path.join(BUILDDIR, "meta", "quorumctl")

# The deadline the clusters of the tests are started with (-o timeout=).
# Sanitizer builds run every process several times slower: contrib/test.sh
# raises it there (QUORUM_E2E_TIMEOUT_S), and the tests' own deadlines follow.
REQUEST_TIMEOUT_S = int(os.environ.get("QUORUM_E2E_TIMEOUT_S", "10"))
# How long `quorumfs --local` may take to start, mount and return.
START_TIMEOUT_S = 90
# How long the processes may take to stop after an unmount or SIGTERM.
STOP_TIMEOUT_S = 20
DEFAULT_DEADLINE_S = 180

PROGRAM_NAMES = ("quorumfs", "quorum-meta", "quorumd")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: ThreadSanitizer")

# Clusters started and not yet torn down, for the watchdog.
_live_clusters = []
_live_lock = threading.Lock()


def pytest_configure(config):
    config.addinivalue_line("markers",
                            "deadline(seconds): per-test time limit (default %d s)"
                            % DEFAULT_DEADLINE_S)


# ------------------------------------------------------------ process helpers

def pid_program(pid):
    """The basename of the program PID runs, or None when it is gone (a
    zombie counts as gone: nobody may reap orphans in a container)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        state = stat[stat.rindex(")") + 2:].split()[0]
        if state in ("Z", "X"):
            return None
        exe = os.readlink("/proc/%d/exe" % pid)
    except (OSError, ValueError):
        return None
    name = os.path.basename(exe)
    if name.endswith(" (deleted)"):
        name = name[:-len(" (deleted)")]
    return name


def pid_alive(pid):
    """True while PID runs one of our programs."""
    return pid_program(pid) in PROGRAM_NAMES


def pid_stopped_or_gone(pid):
    """True when PID no longer runs one of our programs, or is stopped."""
    if not pid_alive(pid):
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        return stat[stat.rindex(")") + 2:].split()[0] in ("T", "t")
    except (OSError, ValueError):
        return True


def pid_signal(pid, sig):
    """Signals PID only when it still runs one of our programs (never a
    recycled PID)."""
    if not pid_alive(pid):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)   # reap it if it happens to be our child
    except ChildProcessError:
        pass
    return True


def pids_wait_gone(pids, timeout_s):
    """Waits until none of PIDS runs; returns the ones still running."""
    deadline = time.monotonic() + timeout_s
    while True:
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        alive = [pid for pid in pids if pid_alive(pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def mount_entry(mountpoint):
    """The /proc/self/mountinfo fields of MOUNTPOINT, or None. Reads no file
    on the mount, so it cannot hang on a dead FUSE daemon."""
    # abspath, not realpath: realpath would lstat the mount point.
    target = os.path.normpath(os.path.abspath(mountpoint))
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mnt = fields[4].replace("\\040", " ")
            if mnt == target:
                sep = fields.index("-")
                return {"dev": fields[2], "fstype": fields[sep + 1], "source": fields[sep + 2]}
    return None


def is_mounted(mountpoint):
    return mount_entry(mountpoint) is not None


def fuse_abort(mountpoint):
    """Aborts the FUSE connection of MOUNTPOINT: every pending and future
    request on it fails with ENOTCONN."""
    entry = mount_entry(mountpoint)
    if entry is None or not entry["fstype"].startswith("fuse"):
        return
    minor = entry["dev"].split(":")[1]
    try:
        with open("/sys/fs/fuse/connections/%s/abort" % minor, "w") as f:
            f.write("1")
    except OSError:
        pass


def run(cmd, timeout=60, check=True, **kwargs):
    """Runs CMD (a list) with a time limit; returns the CompletedProcess with
    text stdout and stderr."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError("%s exited with %d\nstdout: %s\nstderr: %s"
                             % (" ".join(cmd), proc.returncode, proc.stdout[-4000:],
                                proc.stderr[-4000:]))
    return proc


# ------------------------------------------------------------------- cluster

class Cluster:
    """One `quorumfs --local` cluster: start, stop, kill, restart and the
    quorumctl of it. Passed to tests as the `helpers` of the fixture."""

    def __init__(self, datadir, mountpoint, options=()):
        self.datadir = str(datadir)
        self.mountpoint = str(mountpoint)
        self.options = list(options)
        self.timeout_s = REQUEST_TIMEOUT_S
        self.starts = 0
        self.known_pids = set()

    # -- state files

    def cluster_json(self):
        with open(os.path.join(self.datadir, "cluster.json")) as f:
            return json.load(f)

    def quorumfs_pid(self):
        try:
            with open(os.path.join(self.datadir, "quorumfs.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        try:
            return int(self.cluster_json()["quorumfs_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def node_pids(self):
        """{az: pid} of the storage nodes, from cluster.json."""
        return {node["az"]: int(node["pid"]) for node in self.cluster_json()["nodes"]}

    def meta_pid(self):
        return int(self.cluster_json()["meta_pid"])

    def pids(self):
        """Every PID of the cluster: quorumfs, meta and the nodes."""
        pids = set()
        pid = self.quorumfs_pid()
        if pid:
            pids.add(pid)
        try:
            info = self.cluster_json()
            pids.add(int(info["meta_pid"]))
            pids.update(int(node["pid"]) for node in info["nodes"])
            if info.get("quorumfs_pid"):
                pids.add(int(info["quorumfs_pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return pids

    def _remember_pids(self):
        self.known_pids |= self.pids()

    # -- life cycle

    def start(self, options=None, expect_ok=True):
        """Runs `quorumfs --local DATADIR MOUNTPOINT -o timeout=10 ...`; it
        returns once the mount is in place. Returns the CompletedProcess."""
        if options is None:
            options = self.options
        os.makedirs(self.datadir, exist_ok=True)
        # A stale mount point fails stat (ENOTCONN): do not touch it.
        if not is_mounted(self.mountpoint):
            os.makedirs(self.mountpoint, exist_ok=True)
        cmd = [QUORUMFS, "--local", self.datadir, self.mountpoint,
               "-o", "timeout=%d" % self.timeout_s]
        for opt in options:
            cmd += ["-o", opt]
        self.starts += 1
        # The daemon keeps its stdio: a file, not a pipe we would wait on.
        out_path = os.path.join(os.path.dirname(self.datadir),
                                "quorumfs-start-%d.out" % self.starts)
        with open(out_path, "w+") as out:
            try:
                rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    timeout=START_TIMEOUT_S).returncode
            except subprocess.TimeoutExpired:
                rc = None
            out.seek(0)
            text = out.read()
        try:
            self._remember_pids()
        except OSError:
            pass
        if expect_ok:
            assert rc == 0, "%s returned %s:\n%s\n%s" % (" ".join(cmd), rc, text[-4000:],
                                                        self.log_tails())
            assert is_mounted(self.mountpoint), \
                "quorumfs returned 0 but %s is not mounted" % self.mountpoint
            assert os.path.exists(os.path.join(self.datadir, "cluster.json"))
        return rc, text

    def unmount(self, timeout_s=STOP_TIMEOUT_S):
        """fusermount3 -u, then waits for every process of the cluster to
        exit. Returns the PIDs that did not."""
        pids = self.pids()
        proc = run(["fusermount3", "-u", self.mountpoint], timeout=30, check=False)
        assert proc.returncode == 0, "fusermount3 -u failed: %s" % proc.stderr
        return pids_wait_gone(pids, timeout_s)

    def stop(self):
        """Stops the cluster cleanly (unmount, all processes gone)."""
        left = self.unmount()
        assert not left, "processes %s still run %d s after the unmount" % (left,
                                                                          STOP_TIMEOUT_S)
        assert not is_mounted(self.mountpoint)

    def restart(self, options=None):
        self.stop()
        return self.start(options)

    def kill_all(self):
        """SIGKILL of every process of the cluster (quorumfs, meta, nodes),
        as a power cut would; the mount stays behind, stale."""
        pids = self.pids()
        assert len(pids) >= 5, "cluster.json names %d processes: %s" % (len(pids), pids)
        # Freeze the children first, so neither a supervisor restart nor a
        # clean stop on their parent's death (PDEATHSIG) happens in between.
        qpid = self.quorumfs_pid()
        children = [pid for pid in pids if pid != qpid]
        for pid in children:
            pid_signal(pid, signal.SIGSTOP)
        if qpid is not None:
            pid_signal(qpid, signal.SIGKILL)
        for pid in children:
            pid_signal(pid, signal.SIGKILL)
        left = pids_wait_gone(pids, 10)
        assert not left, "processes %s survived SIGKILL" % left

    def kill_node(self, az):
        pid = self.node_pids()[az]
        assert pid_signal(pid, signal.SIGKILL), "node %s (pid %d) was not running" % (az, pid)
        assert not pids_wait_gone([pid], 10)

    def clean_stale_mount(self):
        if is_mounted(self.mountpoint):
            run(["fusermount3", "-u", "-z", self.mountpoint], timeout=30, check=False)
        assert not is_mounted(self.mountpoint)

    def teardown(self):
        """Always leaves no process and no mount behind. Never blocks on the
        mount for long. Returns a list of problems found (for the report)."""
        problems = []
        pids = self.pids() | self.known_pids
        qpid = self.quorumfs_pid()
        if qpid is not None and pid_stopped_or_gone(qpid):
            # A dead or stopped daemon: fusermount3 could block on the
            # mount. Killing every process aborts the FUSE connection.
            for pid in pids:
                pid_signal(pid, signal.SIGKILL)
            pids_wait_gone(pids, 10)
        if is_mounted(self.mountpoint):
            try:
                proc = run(["fusermount3", "-u", self.mountpoint], timeout=20, check=False)
                if proc.returncode != 0:
                    problems.append("fusermount3 -u: %s" % proc.stderr.strip())
            except subprocess.TimeoutExpired:
                problems.append("fusermount3 -u timed out")
        left = pids_wait_gone(pids, 5)
        if qpid in left:
            pid_signal(qpid, signal.SIGTERM)
            left = pids_wait_gone(pids, STOP_TIMEOUT_S)
        for pid in left:
            pid_signal(pid, signal.SIGKILL)
        left = pids_wait_gone(left, 10)
        if left:
            problems.append("processes %s survived SIGKILL" % left)
        if is_mounted(self.mountpoint):
            fuse_abort(self.mountpoint)
            run(["fusermount3", "-u", "-z", self.mountpoint], timeout=20, check=False)
        return problems

    def watchdog_fire(self):
        """Called from the watchdog thread at a test's deadline."""
        fuse_abort(self.mountpoint)
        for pid in self.pids() | self.known_pids:
            pid_signal(pid, signal.SIGKILL)

    # -- logs

    def log_paths(self):
        try:
            names = sorted(os.listdir(self.datadir))
        except OSError:
            return []
        paths = [os.path.join(self.datadir, n) for n in names if n.endswith(".log")]
        parent = os.path.dirname(self.datadir)
        paths += [os.path.join(parent, n) for n in sorted(os.listdir(parent))
                  if n.startswith("quorumfs-start-")]
        return paths

    def log_tails(self, lines=40):
        out = []
        for path in self.log_paths():
            try:
                with open(path, errors="replace") as f:
                    tail = f.readlines()[-lines:]
            except OSError:
                continue
            out.append("---- %s (last %d lines)\n%s" % (path, len(tail), "".join(tail)))
        return "\n".join(out)

    def sanitizer_reports(self):
        found = []
        for path in self.log_paths():
            try:
                with open(path, errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            for marker in SANITIZER_MARKERS:
                if marker in text:
                    found.append("%s: %s" % (path, marker))
        return found

    # -- quorumctl

    def ctl(self, *args, as_json=True, check=True, timeout=60):
        cmd = [QUORUMCTL, "-d", self.datadir]
        if as_json:
            cmd.append("--json")
        cmd += list(args)
        proc = run(cmd, timeout=timeout, check=check)
        if as_json and proc.returncode == 0:
            try:
                return json.loads(proc.stdout)
            except ValueError as e:
                raise AssertionError("quorumctl %s printed no JSON (%s):\n%s"
                                     % (" ".join(args), e, proc.stdout[:2000]))
        return proc


def _require_binaries():
    for path in (QUORUMFS, QUORUMCTL):
        if not os.access(path, os.X_OK):
            pytest.fail("%s is not built (QUORUMFS_BUILDDIR=%s)" % (path, BUILDDIR))


@pytest.fixture
def cluster_factory(tmp_path, request):
    """Makes clusters (started or not) that are torn down after the test."""
    made = []

    def make(name="c", options=(), start=True):
        base = tmp_path / name
        base.mkdir()
        c = Cluster(base / "data", base / "mnt", options)
        made.append(c)
        with _live_lock:
            _live_clusters.append(c)
        if start:
            c.start()
        return c

    _require_binaries()
    request.node.quorum_clusters = made
    yield make
    problems = []
    for c in made:
        problems += c.teardown()
        problems += ["sanitizer report in " + r for r in c.sanitizer_reports()]
        with _live_lock:
            if c in _live_clusters:
                _live_clusters.remove(c)
    if problems:
        pytest.fail("teardown: " + "; ".join(problems))


@pytest.fixture
def cluster(cluster_factory):
    """(mountpoint, datadir, helpers) of a started cluster."""
    c = cluster_factory()
    yield c.mountpoint, c.datadir, c


# ------------------------------------------------------------- deadlines

class DeadlineExceeded(Exception):
    pass


# Raised once per test: the alarm and the watchdog may both signal.
_deadline_state = {"raised": False}


def _on_alarm(signum, frame):
    if _deadline_state["raised"]:
        return
    _deadline_state["raised"] = True
    raise DeadlineExceeded("the test ran past its deadline (hung mount?)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("deadline")
    deadline_s = int(marker.args[0]) if marker else DEFAULT_DEADLINE_S
    deadline_s = deadline_s * max(10, REQUEST_TIMEOUT_S) // 10

    def fire():
        # The main thread may sit in a system call on a hung mount, where
        # SIGALRM cannot reach it: make those calls return first.
        with _live_lock:
            clusters = list(_live_clusters)
        for c in clusters:
            c.watchdog_fire()
        if not _deadline_state["raised"]:
            os.kill(os.getpid(), signal.SIGALRM)

    _deadline_state["raised"] = False
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(deadline_s)
    watchdog = threading.Timer(deadline_s + 5, fire)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for c in getattr(item, "quorum_clusters", []):
            report.sections.append(("cluster logs " + c.datadir, c.log_tails()))


# ------------------------------------------------------------- file helpers

def write_file(path, data, mode=None):
    """Writes DATA with os.open/os.write/os.close so an error of the put at
    close is seen (not hidden by a buffered file object)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644 if mode is None else mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def poll(what, fn, timeout_s=20.0, interval_s=0.25):
    """Calls FN until it returns a true value; returns it. Fails with the
    last value seen after TIMEOUT_S."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError("%s: not within %.0f s (last: %r)" % (what, timeout_s, last))


def expect_errno(expected, fn, *args, **kwargs):
    """Calls FN and checks it fails with one of EXPECTED (an errno or a tuple)."""
    if isinstance(expected, int):
        expected = (expected,)
    try:
        fn(*args, **kwargs)
    except OSError as e:
        assert e.errno in expected, "%s: expected %s, got %s (%s)" % (
            getattr(fn, "__name__", fn), "/".join(errno.errorcode[x] for x in expected),
            errno.errorcode.get(e.errno, e.errno), e)
        return e
    raise AssertionError("%s%r succeeded; expected %s" % (
        getattr(fn, "__name__", fn), args, "/".join(errno.errorcode[x] for x in expected)))

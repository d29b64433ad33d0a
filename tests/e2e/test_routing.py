"""End-to-end tests of the router's table cache (fs/route_refresh.h): a
mount that has seen a table keeps serving its items while the metadata
service does not answer at all, because every lookup is served from the
cache and only refreshed from meta in the background; and a table deleted
through one mount disappears from another within a refresh."""

import errno
import os
import signal
import time

import pytest

from conftest import pid_signal, read_file, write_file
from test_replication import SecondMount


def make_table(mnt, name="t"):
    path = os.path.join(mnt, name)
    os.mkdir(path)
    return path


@pytest.mark.deadline(300)
def test_mount_serves_while_meta_is_down(cluster):
    mnt, datadir, h = cluster
    t = make_table(mnt)
    names = ["m%02d" % i for i in range(40)]
    for name in names:
        write_file(os.path.join(t, name), b"before")
    meta = h.meta_pid()
    assert pid_signal(meta, signal.SIGSTOP)
    try:
        # Nothing here may wait on meta: reads, overwrites and a listing of
        # a table the mount knows, for longer than a request deadline.
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
    finally:
        pid_signal(meta, signal.SIGCONT)
    for name in names:
        assert read_file(os.path.join(t, name)) == b"during-%d" % (rounds - 1)


@pytest.mark.deadline(300)
def test_table_deleted_elsewhere_goes_away(cluster):
    mnt, datadir, h = cluster
    t = make_table(mnt)
    write_file(os.path.join(t, "x"), b"1")
    other = SecondMount(h, os.path.join(os.path.dirname(datadir), "mnt-other"))
    try:
        assert read_file(os.path.join(other.path, "t", "x")) == b"1"
        os.unlink(os.path.join(t, "x"))
        os.rmdir(t)
        deadline = time.monotonic() + 10
        while True:
            try:
                os.stat(os.path.join(other.path, "t", "x"))
            except OSError as e:
                assert e.errno == errno.ENOENT
                break
            assert time.monotonic() < deadline, "the other mount still sees t/x"
            time.sleep(0.2)
    finally:
        other.stop()


def table_lookups(h):
    return h.ctl("status")["cluster"]["meta_table_lookups"]


@pytest.mark.deadline(300)
def test_meta_load_with_a_warm_cache_matches_a_cold_one(cluster):
    """The constant-work property: a router asks meta for the tables it uses
    at the same pace whether its cache is cold (a fresh mount) or warm, so
    meta's load follows the traffic, not the cache's hit rate. A cache that
    only asked on misses would send almost nothing once warm, and a burst
    whenever routers restart together."""
    mnt, datadir, h = cluster
    t = make_table(mnt)
    names = ["c%02d" % i for i in range(30)]
    for name in names:
        write_file(os.path.join(t, name), b"x" * 100)
    other = SecondMount(h, os.path.join(os.path.dirname(datadir), "mnt-fresh"))
    try:
        path = os.path.join(other.path, "t")

        def lookups_per_s(seconds):
            before = table_lookups(h)
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                for name in names:
                    # Fresh attributes each time: a stat past the kernel's
                    # cache reaches the router, which looks the table up.
                    os.stat(os.path.join(path, name))
                    read_file(os.path.join(path, name))
            elapsed = time.monotonic() - start
            # One status call of our own is counted between the two reads.
            return (table_lookups(h) - before) / elapsed

        cold = lookups_per_s(6)
        warm = lookups_per_s(6)
        again = lookups_per_s(6)
    finally:
        other.stop()
    print("meta table lookups per second: cold %.1f, warm %.1f, warm again %.1f"
          % (cold, warm, again))
    assert cold > 0 and warm > 0 and again > 0, (cold, warm, again)
    # Within a small factor: both are the refresh pace of one table.
    assert warm / cold > 0.4 and again / cold > 0.4, (cold, warm, again)
    assert warm / cold < 2.5, (cold, warm, again)

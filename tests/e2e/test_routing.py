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

"""End-to-end tests of full disks and of statfs (issue 5: "ENOSPC when a
node's disk is full", "statfs reports the cluster's real capacity and use").

Each storage node of the cluster gets its data directory on a tmpfs of its
own, mounted before the cluster starts and always unmounted after it stopped.
A node refuses new writes with ENOSPC once its free space is under its
reserve (quorumd --disk-reserve-bytes; the default, used here, is 5% of a
small filesystem), deletes under half of it, and persists no replicated entry
under a quarter of it (cluster/disk_space.h). Ballast files put next to a
node's data make a disk nearly full quickly; removing them frees the space.
"""

import errno
import os
import time

import pytest

from conftest import poll, read_file, run, write_file

MiB = 1 << 20
AZS = ("a", "b", "c")


def default_reserve_bytes(path):
    """The reserve quorumd uses by default on the filesystem of path."""
    vfs = os.statvfs(path)
    capacity = vfs.f_blocks * vfs.f_frsize
    return min(64 * MiB, capacity // 100 * 5)


def free_bytes(path):
    vfs = os.statvfs(path)
    return vfs.f_bavail * vfs.f_frsize


def node_dir(c, az):
    return os.path.join(c.datadir, "node-" + az)


def fill_to(path, free_target_bytes, tag):
    """Adds a ballast file on path's filesystem so that about free_target_bytes stay free."""
    extra = free_bytes(path) - free_target_bytes
    if extra <= 0:
        return
    ballast = os.path.join(path, "ballast-%s-%d" % (tag, time.monotonic_ns()))
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.posix_fallocate(fd, 0, extra)
    finally:
        os.close(fd)


def drop_ballast(path):
    for name in os.listdir(path):
        if name.startswith("ballast-"):
            os.unlink(os.path.join(path, name))


def try_write(path, data):
    """Writes an item; returns 0 or the errno of the failure, and how long it took."""
    started = time.monotonic()
    try:
        write_file(path, data)
        err = 0
    except OSError as e:
        err = e.errno
    return err, time.monotonic() - started


@pytest.fixture
def small_disks(cluster_factory):
    """A cluster whose nodes keep their data on tmpfs filesystems of the given
    sizes (bytes per AZ). Tears the cluster down, then unmounts them, always."""
    mounted = []
    clusters = []

    def make(sizes):
        c = cluster_factory(start=False)
        clusters.append(c)
        for az in AZS:
            path = node_dir(c, az)
            os.makedirs(path)
            run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % sizes[az],
                 "quorum-test-" + az, path])
            mounted.append(path)
        c.start()
        return c

    try:
        yield make
    finally:
        for c in clusters:
            c.teardown()   # the nodes hold files there: stop them first
        for path in mounted:
            for _ in range(50):
                if run(["umount", path], check=False).returncode == 0:
                    break
                time.sleep(0.1)
            else:
                run(["umount", "-l", path], check=False)


def check_items(table, acked, failed=()):
    """Every acknowledged item is there byte for byte; a name whose write failed
    is absent or empty (its create went through, its body did not: as with EFBIG)."""
    for name, body in acked.items():
        assert read_file(os.path.join(table, name)) == body, "item %s differs" % name
    listed = set(os.listdir(table))
    assert set(acked) <= listed
    for name in listed - set(acked):
        assert name in failed, "unexpected item %s" % name
        assert os.stat(os.path.join(table, name)).st_size == 0, "failed write %s landed" % name


def test_full_disks_refuse_writes_with_enospc(small_disks):
    c = small_disks({az: 256 * MiB for az in AZS})
    table = os.path.join(c.mountpoint, "t")
    os.mkdir(table)
    acked = {}
    for i in range(16):
        body = os.urandom(64 * 1024)
        write_file(os.path.join(table, "before%02d" % i), body)
        acked["before%02d" % i] = body
    reserve = default_reserve_bytes(node_dir(c, "a"))
    for az in AZS:
        fill_to(node_dir(c, az), reserve + 24 * MiB, "fill")

    # Fill through the mount until the writes fail: with ENOSPC, promptly.
    failures = 0
    failed = set()
    for i in range(400):
        name = "fill%04d" % i
        body = os.urandom(256 * 1024)
        err, took_s = try_write(os.path.join(table, name), body)
        if err == 0:
            acked[name] = body
            failures = 0
            continue
        assert err == errno.ENOSPC, "write %d failed with %s, not ENOSPC" % (
            i, errno.errorcode.get(err, err))
        assert took_s < c.timeout_s / 2, "ENOSPC took %.1f s: not prompt" % took_s
        failed.add(name)
        failures += 1
        if failures == 12:
            break
    assert failures == 12, "the disks never filled up"
    for az in AZS:
        assert free_bytes(node_dir(c, az)) > 0, "node %s ran dry" % az

    # Other writes fail the same way; what was acknowledged is all there.
    some = sorted(acked)[0]
    with pytest.raises(OSError) as caught:
        os.setxattr(os.path.join(table, some), "user.k", b"v")
    assert caught.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as caught:
        os.rename(os.path.join(table, some), os.path.join(table, "renamed"))
    assert caught.value.errno == errno.ENOSPC
    check_items(table, acked, failed)

    # statfs says so, within a heartbeat or two.
    def statfs_full():
        vfs = os.statvfs(c.mountpoint)
        return vfs.f_bavail * vfs.f_frsize < reserve + 4 * MiB
    poll("statfs showing the full disks", statfs_full)

    # Deletes still work on full nodes: removing items is how a user makes room.
    for name in sorted(acked)[:3]:
        os.unlink(os.path.join(table, name))
        del acked[name]

    # Space freed: writes work again, nothing restarted.
    for az in AZS:
        drop_ballast(node_dir(c, az))
    body = os.urandom(256 * 1024)

    def write_again():
        err, _ = try_write(os.path.join(table, "after"), body)
        assert err in (0, errno.ENOSPC), errno.errorcode.get(err, err)
        return err == 0
    poll("a write after space was freed", write_again)
    acked["after"] = body
    for i in range(8):
        body = os.urandom(64 * 1024)
        write_file(os.path.join(table, "after%d" % i), body)
        acked["after%d" % i] = body
    os.setxattr(os.path.join(table, "after"), "user.k", b"v")
    check_items(table, acked, failed)


def test_one_full_node_keeps_writes_going_two_stop_them(small_disks):
    c = small_disks({az: 256 * MiB for az in AZS})
    table = os.path.join(c.mountpoint, "t")
    os.mkdir(table)
    acked = {}
    reserve = default_reserve_bytes(node_dir(c, "a"))

    # One node past its last reserve: the other two still make a majority, and the
    # groups it leads hand their leadership to one of them.
    fill_to(node_dir(c, "c"), reserve // 8, "c")
    for i in range(24):
        body = os.urandom(16 * 1024)
        err, took_s = try_write(os.path.join(table, "one%02d" % i), body)
        assert err == 0, "write with one full node failed: %s" % errno.errorcode.get(err, err)
        acked["one%02d" % i] = body
    check_items(table, acked)

    # A second node short of space: no majority can store a write. ENOSPC, promptly.
    fill_to(node_dir(c, "b"), reserve * 3 // 4, "b")
    time.sleep(0.5)   # the nodes look at their disks every 100 ms
    failed = set()
    for i in range(12):
        failed.add("two%02d" % i)
        err, took_s = try_write(os.path.join(table, "two%02d" % i), b"x" * 4096)
        assert err == errno.ENOSPC, "write %d with two full nodes: %s" % (
            i, errno.errorcode.get(err, err))
        assert took_s < c.timeout_s / 2, "ENOSPC took %.1f s: not prompt" % took_s
    check_items(table, acked, failed)
    # b is under its write reserve but over its delete reserve: a and b delete.
    for name in sorted(acked)[:4]:
        os.unlink(os.path.join(table, name))
        del acked[name]

    for az in ("b", "c"):
        drop_ballast(node_dir(c, az))
    body = os.urandom(16 * 1024)

    def write_again():
        err, _ = try_write(os.path.join(table, "again"), body)
        assert err in (0, errno.ENOSPC), errno.errorcode.get(err, err)
        return err == 0
    poll("a write after space was freed", write_again)
    acked["again"] = body
    check_items(table, acked, failed)


def test_statfs_reports_usable_space_of_the_nodes(small_disks):
    sizes = {"a": 256 * MiB, "b": 192 * MiB, "c": 320 * MiB}
    c = small_disks(sizes)
    mnt = c.mountpoint

    # Every item has a replica in each AZ: what a user can store is the smallest
    # AZ's space, not the sum of the three.
    def usable_capacity():
        vfs = os.statvfs(mnt)
        return abs(vfs.f_blocks * vfs.f_frsize - sizes["b"]) <= MiB
    poll("statfs f_blocks = the smallest node's capacity", usable_capacity)

    def close_to_free_of_b():
        vfs = os.statvfs(mnt)
        return abs(vfs.f_bavail * vfs.f_frsize - free_bytes(node_dir(c, "b"))) <= 2 * MiB
    poll("statfs f_bavail = the smallest node's free space", close_to_free_of_b)

    vfs = os.statvfs(mnt)
    before = vfs.f_bavail * vfs.f_frsize
    table = os.path.join(mnt, "t")
    os.mkdir(table)
    for i in range(8):
        write_file(os.path.join(table, "k%d" % i), os.urandom(MiB))

    def dropped():
        vfs = os.statvfs(mnt)
        return before - vfs.f_bavail * vfs.f_frsize >= 8 * MiB
    poll("statfs f_bavail dropping by the 8 MiB written", dropped)

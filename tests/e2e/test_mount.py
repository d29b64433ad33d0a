"""End-to-end tests of the mount's semantics: tables are directories,
items are files (DESIGN.md, "Filesystem mapping" and "What users of other
FUSE filesystems taught"). Every test gets a fresh `quorumfs --local`
cluster from conftest.py."""

import concurrent.futures
import errno
import os
import stat
import subprocess
import time

import pytest

from conftest import QUORUMCTL, QUORUMFS, expect_errno, read_file, run, write_file

ITEM_MAX_BYTES = 1 << 20


def make_table(mnt, name="t"):
    path = os.path.join(mnt, name)
    os.mkdir(path)
    return path


# ------------------------------------------------------------------ tables

def test_create_table(cluster):
    mnt, datadir, h = cluster
    assert os.listdir(mnt) == []
    t = make_table(mnt, "photos")
    st = os.stat(t)
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_nlink >= 2
    assert os.listdir(mnt) == ["photos"]
    assert os.listdir(t) == []
    expect_errno(errno.EEXIST, os.mkdir, t)
    # A table survives a remount.
    h.restart()
    assert os.listdir(mnt) == ["photos"]
    assert stat.S_ISDIR(os.stat(t).st_mode)


def test_rmdir_table(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt)
    write_file(os.path.join(t, "k"), b"v")
    expect_errno(errno.ENOTEMPTY, os.rmdir, t)
    assert os.listdir(t) == ["k"]
    os.unlink(os.path.join(t, "k"))
    os.rmdir(t)
    assert os.listdir(mnt) == []
    expect_errno(errno.ENOENT, os.stat, t)
    expect_errno(errno.ENOENT, os.rmdir, t)


def test_mkdir_inside_table_is_eperm(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt)
    expect_errno(errno.EPERM, os.mkdir, os.path.join(t, "sub"))
    assert os.listdir(t) == []


def test_files_at_root_refused(cluster):
    mnt, _, _ = cluster
    e = expect_errno((errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EISDIR),
                     os.open, os.path.join(mnt, "f"), os.O_CREAT | os.O_WRONLY, 0o644)
    assert e is not None
    assert os.listdir(mnt) == []


# ------------------------------------------------------------------- items

def test_item_write_read_overwrite_delete(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt)
    p = os.path.join(t, "hello.txt")
    write_file(p, b"hello, world\n")
    assert read_file(p) == b"hello, world\n"
    assert os.stat(p).st_size == 13
    assert stat.S_ISREG(os.stat(p).st_mode)
    # Overwrite with a shorter body: no stale tail.
    write_file(p, b"bye\n")
    assert read_file(p) == b"bye\n"
    # Shell tools.
    run(["sh", "-c", "echo shell > '%s'" % p])
    assert run(["cat", p]).stdout == "shell\n"
    run(["sh", "-c", "echo more >> '%s'" % p])
    assert read_file(p) == b"shell\nmore\n"
    # Binary data, including NUL bytes, and exactly the item limit in one write.
    body = bytes(range(256)) * (ITEM_MAX_BYTES // 256)
    assert len(body) == ITEM_MAX_BYTES
    big = os.path.join(t, "big.bin")
    write_file(big, body)
    assert os.stat(big).st_size == ITEM_MAX_BYTES
    assert read_file(big) == body
    # Partial reads at offsets.
    with open(big, "rb") as f:
        f.seek(300000)
        assert f.read(1000) == body[300000:301000]
    os.unlink(p)
    expect_errno(errno.ENOENT, os.stat, p)
    expect_errno(errno.ENOENT, open, p, "rb")
    expect_errno(errno.ENOENT, os.unlink, p)
    assert os.listdir(t) == ["big.bin"]


def test_item_names(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt)
    names = ["a", "with space", "ünïcødé", "-dash", ".hidden", "x" * 255,
             "semi;colon", "quote'\"", "\x01ctrl", "tab\tname", "nl\nname"]
    for name in names:
        write_file(os.path.join(t, name), name.encode())
    assert sorted(os.listdir(t)) == sorted(names)
    for name in names:
        assert read_file(os.path.join(t, name)) == name.encode()
    # Names as raw bytes that are not UTF-8.
    raw = os.path.join(os.fsencode(t), b"\xff\xfe")
    write_file(raw, b"raw")
    assert b"\xff\xfe" in os.listdir(os.fsencode(t))


def test_name_too_long(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt)
    expect_errno(errno.ENAMETOOLONG, write_file, os.path.join(t, "n" * 256), b"x")
    expect_errno(errno.ENAMETOOLONG, os.mkdir, os.path.join(mnt, "T" * 256))
    write_file(os.path.join(t, "n" * 255), b"x")
    # 255 bytes counted in bytes, not characters.
    expect_errno(errno.ENAMETOOLONG, write_file, os.path.join(t, "é" * 128), b"x")
    src = os.path.join(t, "short")
    write_file(src, b"y")
    expect_errno(errno.ENAMETOOLONG, os.rename, src, os.path.join(t, "m" * 256))
    assert sorted(os.listdir(t)) == sorted(["n" * 255, "short"])


def test_efbig_keeps_old_item(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt)
    p = os.path.join(t, "k")
    write_file(p, b"old body")
    old = os.stat(p)
    # One byte over the limit: EFBIG from write or close, never success.
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    failed = None
    try:
        os.write(fd, b"a" * ITEM_MAX_BYTES)
        os.write(fd, b"b")
    except OSError as e:
        failed = e
    try:
        os.close(fd)
    except OSError as e:
        failed = failed or e
    assert failed is not None, "an item of 1 MiB + 1 byte was accepted"
    assert failed.errno == errno.EFBIG, "expected EFBIG, got %s" % failed
    assert read_file(p) == b"old body"
    st = os.stat(p)
    assert st.st_size == old.st_size
    assert st.st_mtime_ns == old.st_mtime_ns
    # truncate past the limit, with a path and with a handle.
    expect_errno(errno.EFBIG, os.truncate, p, ITEM_MAX_BYTES + 1)
    assert read_file(p) == b"old body"
    # A new item over the limit leaves nothing half written behind.
    q = os.path.join(t, "new")
    try:
        write_file(q, b"c" * (ITEM_MAX_BYTES + 4096))
        raise AssertionError("a new item over the limit was accepted")
    except OSError as e:
        assert e.errno == errno.EFBIG, e
    # What is stored: an open fetches the item (the kernel may keep the size
    # of the refused write in its attribute cache for up to a second).
    if os.path.exists(q):
        assert read_file(q) == b"", "a refused new item was stored"
        time.sleep(1.5)
        assert os.stat(q).st_size == 0


def test_rewrite_is_not_published_by_a_forked_close(cluster):
    """open(O_TRUNC), then a fork whose child closes its copy of the
    descriptor (as every fork+exec of a threaded program does): readers on
    another mount still see the old item whole until the writer's own close
    puts the new one."""
    from test_replication import SecondMount

    mnt, datadir, h = cluster
    t = make_table(mnt)
    p = os.path.join(t, "k")
    write_file(p, b"old-value")
    other = SecondMount(h, os.path.join(os.path.dirname(datadir), "mnt-other"))
    try:
        fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
        pid = os.fork()
        if pid == 0:
            os.close(fd)
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        assert read_file(os.path.join(other.path, "t", "k")) == b"old-value"
        os.write(fd, b"new-value")
        os.close(fd)
        assert read_file(os.path.join(other.path, "t", "k")) == b"new-value"
        # The opener's own close of an untouched O_TRUNC empties the item, as
        # on any file system.
        os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))
        assert read_file(os.path.join(other.path, "t", "k")) == b""
    finally:
        other.stop()


def test_truncate(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt)
    p = os.path.join(t, "k")
    write_file(p, b"0123456789")
    os.truncate(p, 4)
    assert read_file(p) == b"0123"
    os.truncate(p, 8)
    assert read_file(p) == b"0123\0\0\0\0"
    with open(p, "r+b") as f:
        f.truncate(2)
    assert read_file(p) == b"01"
    os.truncate(p, 0)
    assert read_file(p) == b""


def test_fsync_and_concurrent_reader(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt)
    p = os.path.join(t, "k")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"first")
        os.fsync(fd)
        # Close-to-open: a new open sees what fsync stored.
        assert read_file(p) == b"first"
        os.write(fd, b" second")
        os.fdatasync(fd)
        assert read_file(p) == b"first second"
    finally:
        os.close(fd)
    assert read_file(p) == b"first second"


def test_created_file_visible_before_first_write(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt)
    p = os.path.join(t, "fresh")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        assert os.listdir(t) == ["fresh"]
        st = os.stat(p)
        assert st.st_size == 0
        assert stat.S_IMODE(st.st_mode) == 0o600
        # Renamable before the first write (editors, rsync).
        os.rename(p, os.path.join(t, "renamed"))
        assert os.listdir(t) == ["renamed"]
        os.write(fd, b"data")
    finally:
        os.close(fd)
    assert os.listdir(t) == ["renamed"]
    assert read_file(os.path.join(t, "renamed")) == b"data"
    # O_EXCL on an existing item.
    expect_errno(errno.EEXIST, os.open, os.path.join(t, "renamed"),
                 os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    # touch of a new name makes an empty item.
    run(["touch", os.path.join(t, "empty")])
    assert os.stat(os.path.join(t, "empty")).st_size == 0
    assert sorted(os.listdir(t)) == ["empty", "renamed"]


def test_unlink_open_file_leaves_no_fuse_hidden(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt)
    p = os.path.join(t, "open-read")
    write_file(p, b"still readable")
    fd = os.open(p, os.O_RDONLY)
    try:
        os.unlink(p)
        assert os.listdir(t) == []
        assert os.pread(fd, 100, 0) == b"still readable"
    finally:
        os.close(fd)
    assert os.listdir(t) == []
    q = os.path.join(t, "open-write")
    fd = os.open(q, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x")
        os.unlink(q)
        assert not [n for n in os.listdir(t) if n.startswith(".fuse_hidden")]
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    assert not [n for n in os.listdir(t) if n.startswith(".fuse_hidden")]
    # The table is empty, so rmdir works (no hidden leftovers).
    assert os.listdir(t) == [], os.listdir(t)
    os.rmdir(t)


def test_symlink_is_an_item(cluster):
    mnt, _, h = cluster
    t = make_table(mnt)
    write_file(os.path.join(t, "target"), b"pointed at")
    link = os.path.join(t, "link")
    os.symlink("target", link)
    assert os.readlink(link) == "target"
    assert stat.S_ISLNK(os.lstat(link).st_mode)
    assert read_file(link) == b"pointed at"
    assert sorted(os.listdir(t)) == ["link", "target"]
    h.restart()
    assert os.readlink(link) == "target"


# ------------------------------------------------------------- metadata

def test_chmod_chown_utimens_persist(cluster):
    mnt, _, h = cluster
    t = make_table(mnt)
    p = os.path.join(t, "k")
    write_file(p, b"body")
    os.chmod(p, 0o640)
    os.chown(p, 1234, 5678)
    mtime_ns = 1234567890123456789
    atime_ns = 1111111111222222222
    os.utime(p, ns=(atime_ns, mtime_ns))

    def check():
        st = os.stat(p)
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert (st.st_uid, st.st_gid) == (1234, 5678)
        assert st.st_mtime_ns == mtime_ns
        assert read_file(p) == b"body"
        # Reads never change mtime or ctime (tar complains otherwise).
        st2 = os.stat(p)
        assert st2.st_mtime_ns == st.st_mtime_ns
        assert st2.st_ctime_ns == st.st_ctime_ns

    check()
    h.restart()
    check()
    # A later write sets a fresh mtime; chmod keeps the body.
    os.chmod(p, 0o755)
    assert read_file(p) == b"body"
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o755


def test_utimens_and_chmod_on_open_handle_apply(cluster):
    """cp -p, tar and rsync set times and mode on a file still open for
    writing; the put at close must keep them."""
    mnt, _, h = cluster
    t = make_table(mnt)
    p = os.path.join(t, "k")
    mtime_ns = 1500000000987654321
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"written")
        os.fchmod(fd, 0o604)
        os.utime(fd, ns=(mtime_ns, mtime_ns))
    finally:
        os.close(fd)
    st = os.stat(p)
    assert st.st_mtime_ns == mtime_ns
    assert stat.S_IMODE(st.st_mode) == 0o604
    h.restart()
    st = os.stat(p)
    assert st.st_mtime_ns == mtime_ns
    assert stat.S_IMODE(st.st_mode) == 0o604
    assert read_file(p) == b"written"


def test_xattrs(cluster):
    mnt, _, h = cluster
    t = make_table(mnt)
    p = os.path.join(t, "k")
    write_file(p, b"body")
    os.setxattr(p, "user.color", b"blue")
    os.setxattr(p, "user.empty", b"")
    os.setxattr(p, "user.bin", bytes(range(256)))
    assert os.getxattr(p, "user.color") == b"blue"
    assert os.getxattr(p, "user.empty") == b""
    assert sorted(os.listxattr(p)) == ["user.bin", "user.color", "user.empty"]
    # Flags: XATTR_CREATE on an existing name, XATTR_REPLACE on a missing one.
    expect_errno(errno.EEXIST, os.setxattr, p, "user.color", b"red", os.XATTR_CREATE)
    expect_errno(errno.ENODATA, os.setxattr, p, "user.nope", b"x", os.XATTR_REPLACE)
    os.setxattr(p, "user.color", b"red", os.XATTR_REPLACE)
    os.removexattr(p, "user.empty")
    expect_errno(errno.ENODATA, os.getxattr, p, "user.empty")
    expect_errno(errno.ENODATA, os.removexattr, p, "user.empty")
    # Other namespaces: a clean ENOTSUP (or ENODATA when only read).
    expect_errno(errno.ENOTSUP, os.setxattr, p, "trusted.x", b"1")
    expect_errno((errno.ENOTSUP, errno.ENODATA), os.getxattr, p, "trusted.x")
    expect_errno((errno.ENOTSUP, errno.ENODATA), os.getxattr, p, "security.capability")
    # A write keeps the xattrs; so does a restart.
    write_file(p, b"new body")
    h.restart()
    assert os.getxattr(p, "user.color") == b"red"
    assert os.getxattr(p, "user.bin") == bytes(range(256))
    assert sorted(os.listxattr(p)) == ["user.bin", "user.color"]
    # getfattr/setfattr from attr.
    run(["setfattr", "-n", "user.tool", "-v", "yes", p])
    out = run(["getfattr", "-n", "user.tool", "--only-values", p]).stdout
    assert out == "yes"


def test_stat_and_statfs_sane(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt)
    inos = set()
    for size in (0, 1, 511, 512, 513, 4096, 100000, ITEM_MAX_BYTES):
        p = os.path.join(t, "s%d" % size)
        write_file(p, b"z" * size)
        st = os.stat(p)
        assert st.st_size == size
        assert st.st_blocks == (size + 511) // 512, (size, st.st_blocks)
        assert st.st_nlink >= 1
        assert st.st_ino == os.stat(p).st_ino, "st_ino not stable"
        inos.add(st.st_ino)
    assert len(inos) == 8, "st_ino not distinct: %s" % inos
    vfs = os.statvfs(mnt)
    assert vfs.f_bsize > 0
    assert vfs.f_blocks > 0
    assert vfs.f_namemax == 255
    assert os.statvfs(t).f_blocks > 0
    run(["df", mnt])


def test_stat_root(cluster):
    mnt, _, _ = cluster
    st = os.stat(mnt)
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_nlink >= 2
    make_table(mnt, "a")
    make_table(mnt, "b")
    assert sorted(os.listdir(mnt)) == ["a", "b"]


# ------------------------------------------------------------------ rename

def test_rename_inside_table(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt)
    a = os.path.join(t, "a")
    b = os.path.join(t, "b")
    write_file(a, b"content of a")
    os.chmod(a, 0o600)
    os.utime(a, ns=(1000000000123, 1600000000000000001))
    os.setxattr(a, "user.tag", b"moved")
    os.rename(a, b)
    assert os.listdir(t) == ["b"]
    expect_errno(errno.ENOENT, os.stat, a)
    st = os.stat(b)
    assert read_file(b) == b"content of a"
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_mtime_ns == 1600000000000000001
    assert os.getxattr(b, "user.tag") == b"moved"
    # The target is replaced whole.
    c = os.path.join(t, "c")
    write_file(c, b"c" * 100000)
    os.rename(c, b)
    assert os.listdir(t) == ["b"]
    assert read_file(b) == b"c" * 100000
    # mv does the same.
    run(["mv", b, a])
    assert os.listdir(t) == ["a"]
    # Renaming onto itself is a no-op; a missing source is ENOENT.
    os.rename(a, a)
    assert read_file(a) == b"c" * 100000
    expect_errno(errno.ENOENT, os.rename, b, c)
    # RENAME_NOREPLACE through mv -n (coreutils uses renameat2).
    write_file(b, b"keep")
    run(["mv", "-n", a, b], check=False)
    assert read_file(b) == b"keep"


def test_rename_across_tables_exdev(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt, "t")
    u = make_table(mnt, "u")
    src = os.path.join(t, "k")
    write_file(src, b"travels by copy")
    os.chmod(src, 0o640)
    os.utime(src, ns=(1700000000000000007, 1700000000000000007))
    expect_errno(errno.EXDEV, os.rename, src, os.path.join(u, "k"))
    assert read_file(src) == b"travels by copy"
    # mv falls back to copy + unlink, keeping mode and mtime.
    run(["mv", src, os.path.join(u, "k2")])
    assert os.listdir(t) == []
    assert os.listdir(u) == ["k2"]
    st = os.stat(os.path.join(u, "k2"))
    assert read_file(os.path.join(u, "k2")) == b"travels by copy"
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime_ns == 1700000000000000007
    # A table cannot be renamed into another one.
    expect_errno((errno.EXDEV, errno.EPERM, errno.EINVAL, errno.ENOTSUP),
                 os.rename, t, os.path.join(u, "t"))


# --------------------------------------------------------------- big tables

@pytest.mark.deadline(900)
def test_ls_table_of_10000_items(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt, "many")
    count = 10000
    names = ["item-%05d" % i for i in range(count)]

    def put(name):
        i = int(name[5:])
        write_file(os.path.join(t, name), b"v" * (i % 97))

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        for _ in pool.map(put, names):
            pass
    listed = os.listdir(t)
    assert len(listed) == count, "listdir gave %d names" % len(listed)
    assert sorted(listed) == names, "names missing or repeated"
    # ls: each name exactly once.
    out = run(["ls", "-1", t], timeout=300).stdout.splitlines()
    assert sorted(out) == names
    # ls -l: attributes with the names (readdirplus), one line each.
    lines = run(["ls", "-l", t], timeout=300).stdout.splitlines()
    assert lines[0].startswith("total ")
    rows = lines[1:]
    assert len(rows) == count
    sizes = {}
    for row in rows:
        fields = row.split(None, 8)
        sizes[fields[8]] = int(fields[4])
    assert sorted(sizes) == names
    assert all(sizes[n] == int(n[5:]) % 97 for n in names)
    # scandir + stat of every entry.
    seen = {}
    with os.scandir(t) as it:
        for entry in it:
            assert entry.name not in seen, "%s listed twice" % entry.name
            seen[entry.name] = entry.stat(follow_symlinks=False).st_size
            assert entry.is_file()
    assert sorted(seen) == names
    assert all(seen[n] == int(n[5:]) % 97 for n in names)
    # find sees them all too.
    out = run(["find", t, "-type", "f"], timeout=300).stdout.splitlines()
    assert len(out) == count
    # Unlinking while listing must not skip entries: rm -rf empties the
    # table and never says "Directory not empty".
    proc = run(["rm", "-rf", t], timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not os.path.exists(t)
    assert os.listdir(mnt) == []


def test_readdir_paging_with_unlinks(cluster):
    """Entries unlinked during a listing do not make others disappear."""
    mnt, _, _ = cluster
    t = make_table(mnt)
    names = ["k%04d" % i for i in range(1500)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda n: write_file(os.path.join(t, n), b"x"), names))
    seen = []
    with os.scandir(t) as it:
        for i, entry in enumerate(it):
            seen.append(entry.name)
            if i % 2 == 0:
                os.unlink(os.path.join(t, entry.name))
    assert len(seen) == len(set(seen)), "a name was listed twice"
    assert sorted(seen) == names, "%d of %d names listed" % (len(seen), len(names))


# ----------------------------------------------------------------- quorumctl

def test_quorumctl(cluster):
    mnt, datadir, h = cluster
    make_table(mnt, "alpha")
    make_table(mnt, "beta")
    write_file(os.path.join(mnt, "alpha", "k"), b"v")
    status = h.ctl("status")
    assert status["cluster"]["nodes_up"] == 3
    assert status["cluster"]["nodes_total"] == 3
    assert status["cluster"]["tables"] == 2
    assert status["cluster"]["item_max_bytes"] == ITEM_MAX_BYTES
    assert sorted(n["az"] for n in status["nodes"]) == ["a", "b", "c"]
    assert all(n["up"] for n in status["nodes"])
    addresses = sorted(n["address"] for n in h.cluster_json()["nodes"])
    assert sorted(n["address"] for n in status["nodes"]) == addresses
    tables = h.ctl("table", "list")
    assert [t["name"] for t in tables] == ["alpha", "beta"]
    desc = h.ctl("table", "describe", "alpha")
    assert desc["name"] == "alpha"
    parts = desc["partitions"]
    assert len(parts) == 4, desc
    # The partitions cover the hash space, in order, without holes.
    assert parts[0]["hash_first"] == "0" * 16
    assert parts[-1]["hash_last"] == "f" * 16
    for left, right in zip(parts, parts[1:]):
        assert int(left["hash_last"], 16) + 1 == int(right["hash_first"], 16)
    for part in parts:
        replicas = part["replicas"]
        assert len(replicas) == 3, part
        assert sorted(r["az"] for r in replicas) == ["a", "b", "c"], part
        # The first replica holds the data (the others too once replication
        # runs).
        assert replicas[0].get("holds_data", True) is True, part
    # Plain output works too, and a missing table is an error.
    assert "alpha" in h.ctl("table", "list", as_json=False).stdout
    assert h.ctl("status", as_json=False).stdout.strip()
    proc = h.ctl("table", "describe", "nosuch", as_json=False, check=False)
    assert proc.returncode == 1, proc
    out = run([QUORUMCTL, "--help"]).stdout
    assert "status" in out and "table" in out


def test_consistency_eventual_mount(cluster_factory):
    c = cluster_factory(options=["consistency=eventual"])
    t = make_table(c.mountpoint)
    p = os.path.join(t, "k")
    write_file(p, b"eventually")
    assert read_file(p) == b"eventually"
    write_file(p, b"and again")
    assert read_file(p) == b"and again"


def test_bad_usage_fails_cleanly(tmp_path):
    proc = subprocess.run([QUORUMFS, "--help"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=30)
    assert proc.returncode == 0
    assert "--local" in proc.stdout and "timeout" in proc.stdout
    proc = subprocess.run([QUORUMFS, "--local", str(tmp_path / "d")], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=30)
    assert proc.returncode != 0
    proc = subprocess.run([QUORUMFS, "--local", str(tmp_path / "d"),
                           str(tmp_path / "missing-mountpoint-parent" / "m"),
                           "-o", "timeout=abc"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode != 0

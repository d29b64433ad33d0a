"""End-to-end tests of the mount with the tools people script and back up
with (issue 5): rsync -a and -aX both ways with identical trees (content,
mode, owner, mtime to the nanosecond, user xattrs) and its --inplace,
--partial, --checksum and --delete; a restore of every table into an
empty cluster; cp -a, mv, tar with xattrs, find, du, stat, touch,
truncate, `>>`, editor-style saves; two writers and a reader of one item;
errnos, permissions under default_permissions; a cluster that stops
answering; a mount of an unreachable cluster; stress-ng's filesystem
stressors with --verify. test_tools.py, test_mount.py and test_sort_key.py
cover the rest (plain rsync round trip, cp -p, tar, EXDEV, EFBIG...).

A large table (100,000 items: ls -l, find, the daemon's RSS) runs only
with QUORUM_E2E_SLOW=1 (`make check-slow`)."""

import concurrent.futures
import errno
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

from conftest import (QUORUMFS, REQUEST_TIMEOUT_S, expect_errno, is_mounted, pid_signal,
                      pids_wait_gone, read_file, run, write_file)

ITEM_MAX_BYTES = 1 << 20
OWNERS = [(0, 0), (1000, 1000), (1234, 5678), (65534, 65534)]


# ------------------------------------------------------------------ helpers

def _make_tree(root, rng, count=24, xattrs=True):
    """A flat tree of files with various sizes, modes, owners, nanosecond
    mtimes and user xattrs. Returns {name: (body, mode, mtime_ns, (uid,
    gid), {xattr: value})}."""
    os.makedirs(root)
    files = {}
    for i in range(count):
        name = "f-%02d%s" % (i, rng.choice(["", ".txt", ".bin", " sp", "-é"]))
        size = rng.choice([0, 1, 511, 4096, 65537, 300000, ITEM_MAX_BYTES])
        body = rng.randbytes(size)
        path = os.path.join(root, name)
        write_file(path, body)
        owner = rng.choice(OWNERS)
        os.chown(path, *owner)
        mode = rng.choice([0o644, 0o600, 0o755, 0o640, 0o400])
        os.chmod(path, mode)
        attrs = {}
        if xattrs and i % 3 != 2:
            for j in range(rng.randrange(1, 4)):
                attrs["user.k%d" % j] = rng.randbytes(rng.choice([0, 5, 200]))
            for key, value in attrs.items():
                os.setxattr(path, key, value)
        mtime_ns = rng.randrange(10 ** 18, 17 * 10 ** 17) // 1000 * 1000 + rng.randrange(1000)
        os.utime(path, ns=(mtime_ns, mtime_ns))
        files[name] = (body, mode, mtime_ns, owner, attrs)
    return files


def _user_xattrs(path):
    return {k: os.getxattr(path, k) for k in os.listxattr(path) if k.startswith("user.")}


def _compare(root, files, xattrs=True, owners=True):
    assert sorted(os.listdir(root)) == sorted(files), root
    for name, (body, mode, mtime_ns, owner, attrs) in files.items():
        path = os.path.join(root, name)
        st = os.lstat(path)
        assert read_file(path) == body, "%s differs" % path
        assert stat.S_IMODE(st.st_mode) == mode, "%s mode %o != %o" % (path, st.st_mode, mode)
        assert st.st_mtime_ns == mtime_ns, "%s mtime %d != %d" % (path, st.st_mtime_ns,
                                                                 mtime_ns)
        if owners:
            assert (st.st_uid, st.st_gid) == owner, "%s owner %d:%d" % (path, st.st_uid,
                                                                        st.st_gid)
        if xattrs:
            assert _user_xattrs(path) == attrs, "%s xattrs %s" % (path, _user_xattrs(path))


def _files_transferred(stats_output):
    m = re.search(r"Number of regular files transferred: ([\d,]+)", stats_output)
    assert m, stats_output
    return int(m.group(1).replace(",", ""))


def _walk(root):
    """{relative path: (type, mode, uid, gid, mtime_ns, body or None, xattrs)}
    of a whole tree, directories included (the root itself excluded)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns,
                            None, {})
            else:
                out[rel] = ("f", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns,
                            read_file(path), _user_xattrs(path))
    return out


def make_table(mnt, name="t"):
    path = os.path.join(mnt, name)
    os.mkdir(path)
    return path


# -------------------------------------------------------------------- rsync

def test_rsync_aX_both_ways_identical_trees(cluster, tmp_path):
    """rsync -aX into a table and back: content, mode, owner, mtime (ns)
    and user xattrs identical; a second run of either transfers no file."""
    mnt, _, _ = cluster
    rng = random.Random(501)
    src = str(tmp_path / "src")
    files = _make_tree(src, rng)
    # In another second than the table's mkdir: rsync compares directory
    # times to the second.
    os.utime(src, ns=(1600000000111111111, 1600000000111111111))
    table = make_table(mnt, "backup")
    run(["rsync", "-aX", src + "/", table + "/"], timeout=300)
    _compare(table, files)
    assert not [n for n in os.listdir(table) if n.startswith(".")], "rsync temp files left"
    out = run(["rsync", "-aX", "--stats", src + "/", table + "/"], timeout=300).stdout
    assert _files_transferred(out) == 0, out
    # The table's own mode and mtime follow the source directory.
    st_src, st_table = os.stat(src), os.stat(table)
    assert st_table.st_mtime_ns == st_src.st_mtime_ns
    assert stat.S_IMODE(st_table.st_mode) == stat.S_IMODE(st_src.st_mode)
    back = str(tmp_path / "back")
    run(["rsync", "-aX", table + "/", back + "/"], timeout=300)
    _compare(back, files)
    out = run(["rsync", "-aX", "--stats", table + "/", back + "/"], timeout=300).stdout
    assert _files_transferred(out) == 0, out
    # Plain -a (no -X) also moves nothing on a second run, in both ways.
    out = run(["rsync", "-a", "--stats", src + "/", table + "/"], timeout=300).stdout
    assert _files_transferred(out) == 0, out
    # An xattr changed at the source travels with -X (and only that file).
    name = sorted(files)[0]
    os.setxattr(os.path.join(src, name), "user.changed", b"yes")
    files[name][4]["user.changed"] = b"yes"
    run(["rsync", "-aX", src + "/", table + "/"], timeout=300)
    _compare(table, files)


def test_rsync_inplace_partial_checksum_delete(cluster, tmp_path):
    mnt, _, _ = cluster
    rng = random.Random(502)
    src = str(tmp_path / "src")
    files = _make_tree(src, rng, count=10, xattrs=False)
    table = make_table(mnt, "t")
    run(["rsync", "-a", src + "/", table + "/"], timeout=300)
    _compare(table, files, xattrs=False)
    names = sorted(files)

    # --checksum: same size and mtime, other content. The quick check is
    # fooled (as on any file system); --checksum is not.
    name = next(n for n in names if len(files[n][0]) >= 4096)
    body, mode, mtime_ns, owner, attrs = files[name]
    changed = bytes(b ^ 0xFF for b in body[:100]) + body[100:]
    path = os.path.join(src, name)
    write_file(path, changed)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    out = run(["rsync", "-a", "--stats", src + "/", table + "/"], timeout=300).stdout
    assert _files_transferred(out) == 0, out
    out = run(["rsync", "-a", "--checksum", "--stats", src + "/", table + "/"],
              timeout=300).stdout
    assert _files_transferred(out) == 1, out
    files[name] = (changed, mode, mtime_ns, owner, attrs)
    _compare(table, files, xattrs=False)

    # --inplace: the item is rewritten through its own name (no temp file,
    # no rename), a shorter body truncates it.
    for name, new in ((names[1], rng.randbytes(70000)), (names[2], b"short")):
        path = os.path.join(src, name)
        write_file(path, new)
        os.utime(path, ns=(1600000000123456789, 1600000000123456789))
        _, mode, _, owner, attrs = files[name]
        files[name] = (new, mode, 1600000000123456789, owner, attrs)
    ino_before = os.stat(os.path.join(table, names[1])).st_ino
    out = run(["rsync", "-a", "--inplace", "--stats", src + "/", table + "/"],
              timeout=300).stdout
    assert _files_transferred(out) == 2, out
    _compare(table, files, xattrs=False)
    assert os.stat(os.path.join(table, names[1])).st_ino == ino_before, \
        "--inplace replaced the item instead of writing it"

    # --delete: items not in the source go.
    write_file(os.path.join(table, "extra"), b"not in the source")
    out = run(["rsync", "-a", "--delete", "--stats", src + "/", table + "/"],
              timeout=300).stdout
    assert "extra" not in os.listdir(table)
    _compare(table, files, xattrs=False)

    # --partial: an interrupted transfer keeps what arrived under the
    # final name; the next run completes it.
    big = "big.bin"
    big_body = rng.randbytes(ITEM_MAX_BYTES)
    write_file(os.path.join(src, big), big_body)
    os.chmod(os.path.join(src, big), 0o644)
    os.utime(os.path.join(src, big), ns=(1500000000000000001, 1500000000000000001))
    proc = subprocess.Popen(["rsync", "-a", "--partial", "--bwlimit=200",
                             src + "/" + big, table + "/"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        time.sleep(2.5)
        assert proc.poll() is None, "rsync --bwlimit finished too early: %s" % (
            proc.communicate(),)
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    kept = read_file(os.path.join(table, big))
    assert 0 < len(kept) < len(big_body), "partial file of %d bytes" % len(kept)
    assert big_body.startswith(kept), "the partial file is not a prefix of the source"
    assert not [n for n in os.listdir(table) if n.startswith(".")], "rsync temp files left"
    out = run(["rsync", "-a", "--partial", "--stats", src + "/", table + "/"],
              timeout=300).stdout
    assert _files_transferred(out) == 1, out
    files[big] = (big_body, 0o644, 1500000000000000001, (0, 0), {})
    _compare(table, files, xattrs=False)


def _create_sort_key_table(h, mnt, name):
    h.ctl("table", "create", name, "--sort-key", as_json=False)
    path = os.path.join(mnt, name)
    deadline = time.monotonic() + 10
    while not os.path.isdir(path):
        assert time.monotonic() < deadline, "%s not on the mount" % name
        time.sleep(0.1)
    return path


@pytest.mark.deadline(400)
def test_restore_every_table_into_an_empty_cluster(cluster_factory, tmp_path):
    """A whole backup (rsync -aX of the mount root) restored with rsync into
    a new, empty cluster: the trees are identical; a table with a sort key is
    created with quorumctl first (mkdir makes plain tables)."""
    old = cluster_factory("old")
    rng = random.Random(503)
    for table in ("alpha", "beta", "gamma"):
        files = _make_tree(str(tmp_path / "src" / table), rng, count=8)
        run(["rsync", "-aX", str(tmp_path / "src" / table) + "/",
             os.path.join(old.mountpoint, table) + "/"], timeout=300)
        assert len(files) == len(os.listdir(os.path.join(old.mountpoint, table)))
    os.chmod(os.path.join(old.mountpoint, "beta"), 0o750)
    os.chown(os.path.join(old.mountpoint, "gamma"), 1000, 1000)
    logs = _create_sort_key_table(old, old.mountpoint, "logs")
    for pk in ("2024", "2025"):
        os.mkdir(os.path.join(logs, pk))
        for i in range(3):
            write_file(os.path.join(logs, pk, "e%d" % i), rng.randbytes(1000 * i))
        os.utime(os.path.join(logs, pk), ns=(1700000000000000003, 1700000000000000003))
    os.utime(logs, ns=(1700000000000000009, 1700000000000000009))
    # The root's mode and times (kept by the mount) travel too.
    os.chmod(old.mountpoint, 0o711)
    os.utime(old.mountpoint, ns=(1600000000000000077, 1600000000000000077))
    backup = str(tmp_path / "backup")
    run(["rsync", "-aX", old.mountpoint + "/", backup + "/"], timeout=300)
    assert os.stat(backup).st_mtime_ns == 1600000000000000077
    expected = _walk(backup)
    assert expected == _walk(old.mountpoint)
    assert sorted(os.listdir(backup)) == ["alpha", "beta", "gamma", "logs"]
    old.stop()

    new = cluster_factory("new")
    assert os.listdir(new.mountpoint) == []
    _create_sort_key_table(new, new.mountpoint, "logs")
    proc = run(["rsync", "-aX", "--stats", backup + "/", new.mountpoint + "/"], timeout=300,
               check=False)
    assert proc.returncode == 0, proc.stderr
    assert _walk(new.mountpoint) == expected
    st = os.stat(new.mountpoint)
    assert st.st_mtime_ns == 1600000000000000077 and stat.S_IMODE(st.st_mode) == 0o711
    out = run(["rsync", "-aX", "--stats", backup + "/", new.mountpoint + "/"],
              timeout=300).stdout
    assert _files_transferred(out) == 0, out
    # And it survives a restart of the new cluster.
    new.restart()
    assert _walk(new.mountpoint) == expected


# ------------------------------------------------------------ cp, mv, tar

def test_cp_a_and_mv(cluster, tmp_path):
    mnt, _, _ = cluster
    rng = random.Random(504)
    src = str(tmp_path / "src")
    files = _make_tree(src, rng, count=12)
    table = make_table(mnt, "t")
    # cp -a keeps mode, owner, times and xattrs, both ways.
    run(["cp", "-a", src + "/.", table + "/"], timeout=300)
    _compare(table, files)
    back = str(tmp_path / "back")
    run(["cp", "-a", table, back], timeout=300)
    _compare(back, files)
    # mv inside a table: atomic rename, everything kept, onto an existing
    # name too.
    a, b = sorted(files)[:2]
    run(["mv", os.path.join(table, a), os.path.join(table, b)])
    files[b] = files.pop(a)
    _compare(table, files)
    # mv across tables (EXDEV: mv copies and unlinks) keeps everything too.
    other = make_table(mnt, "u")
    moved = sorted(files)[:3]
    run(["mv"] + [os.path.join(table, n) for n in moved] + [other + "/"])
    _compare(other, {n: files[n] for n in moved})
    for n in moved:
        del files[n]
    _compare(table, files)
    # mv from local disk onto the mount and back out.
    local = str(tmp_path / "local-file")
    write_file(local, b"from the local disk")
    os.utime(local, ns=(1400000000000000042, 1400000000000000042))
    run(["mv", local, os.path.join(other, "arrived")])
    assert not os.path.exists(local)
    assert read_file(os.path.join(other, "arrived")) == b"from the local disk"
    assert os.stat(os.path.join(other, "arrived")).st_mtime_ns == 1400000000000000042
    run(["mv", os.path.join(other, "arrived"), local])
    assert read_file(local) == b"from the local disk"
    assert "arrived" not in os.listdir(other)


def test_tar_find_du_stat_touch_truncate_append(cluster, tmp_path):
    mnt, _, _ = cluster
    rng = random.Random(505)
    src = str(tmp_path / "src")
    files = _make_tree(src, rng, count=10)
    table = make_table(mnt, "t")
    run(["cp", "-a", src + "/.", table + "/"], timeout=300)
    # tar with xattrs (pax format: ns mtimes), out of the mount and into
    # another table.
    archive = str(tmp_path / "a.tar")
    run(["tar", "--format=posix", "--xattrs", "--xattrs-include=user.*", "-C", table,
         "-cf", archive, "."], timeout=120)
    other = make_table(mnt, "u")
    proc = run(["tar", "--xattrs", "--xattrs-include=user.*", "--same-owner", "-C", other,
                "-xpf", archive], timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    _compare(other, files)
    out = run(["tar", "-tvf", archive]).stdout
    assert len(out.splitlines()) == len(files) + 1

    # find -name, -size, -newer, -type.
    old_path = os.path.join(table, "old")
    new_path = os.path.join(table, "new")
    write_file(old_path, b"o" * 3000)
    os.utime(old_path, ns=(1000000000000000000, 1000000000000000000))
    write_file(new_path, b"n" * 10)
    found = run(["find", table, "-newer", old_path, "-name", "new"]).stdout.split("\n")
    assert found[0] == new_path
    found = set(run(["find", table, "-type", "f", "-newer", old_path]).stdout.splitlines())
    assert old_path not in found and new_path in found
    sizes = {n: len(v[0]) for n, v in files.items()}
    sizes.update(old=3000, new=10)
    big = set(run(["find", table, "-type", "f", "-size", "+2k"]).stdout.splitlines())
    assert big == {os.path.join(table, n) for n, s in sizes.items() if s > 2048}
    empty = set(run(["find", table, "-type", "f", "-empty"]).stdout.splitlines())
    assert empty == {os.path.join(table, n) for n, s in sizes.items() if s == 0}
    named = run(["find", mnt, "-name", "*.txt", "-type", "f"]).stdout.splitlines()
    assert len(named) == 2 * len([n for n in files if n.endswith(".txt")])

    # du: apparent size is the sum of the bodies, disk use their blocks.
    out = run(["du", "-s", "-b", "--apparent-size", table]).stdout
    assert int(out.split()[0]) == sum(sizes.values()) + 4096
    out = run(["du", "-s", "-B1", table]).stdout
    assert int(out.split()[0]) == sum((s + 511) // 512 * 512 for s in sizes.values()) + 4096
    run(["du", "-ah", mnt])

    # stat(1).
    out = run(["stat", "-c", "%s %b %B %h %a %u %g %Y %o", old_path]).stdout.split()
    assert out == ["3000", "6", "512", "1", "644", "0", "0", "1000000000", "65536"], out
    assert run(["stat", "-c", "%F", old_path]).stdout.strip() == "regular file"
    out = run(["stat", "-c", "%.9Y", old_path]).stdout.strip()
    assert out == "1000000000.000000000"
    out = run(["stat", "-f", "-c", "%l %b", mnt]).stdout.split()
    assert out[0] == "255" and int(out[1]) > 0

    # touch: a new empty item, -d, -r, -m, and -c of a missing name.
    run(["touch", os.path.join(table, "touched")])
    assert os.stat(os.path.join(table, "touched")).st_size == 0
    run(["touch", "-d", "2001-02-03 04:05:06.123456789 UTC", old_path])
    assert os.stat(old_path).st_mtime_ns == 981173106123456789
    assert read_file(old_path) == b"o" * 3000
    run(["touch", "-r", old_path, new_path])
    assert os.stat(new_path).st_mtime_ns == 981173106123456789
    before = time.time_ns()
    run(["touch", "-m", new_path])
    assert abs(os.stat(new_path).st_mtime_ns - before) < 5 * 10 ** 9
    run(["touch", "-c", os.path.join(table, "not-created")])
    assert not os.path.exists(os.path.join(table, "not-created"))

    # truncate(1): shrink, grow (zeros), relative, and past the limit.
    run(["truncate", "-s", "100", old_path])
    assert read_file(old_path) == b"o" * 100
    run(["truncate", "-s", "+50", old_path])
    assert read_file(old_path) == b"o" * 100 + b"\0" * 50
    run(["truncate", "-s", "0", old_path])
    assert read_file(old_path) == b""
    proc = run(["truncate", "-s", str(ITEM_MAX_BYTES + 1), old_path], check=False)
    assert proc.returncode != 0 and "too large" in proc.stderr, proc.stderr
    run(["truncate", "-s", str(ITEM_MAX_BYTES), old_path])
    assert os.stat(old_path).st_size == ITEM_MAX_BYTES

    # >> appends, from a shell, many times over, and with O_APPEND writes.
    log = os.path.join(table, "log")
    expected = b""
    for i in range(20):
        run(["sh", "-c", 'printf "line %%d\\n" %d >> "$1"' % i, "sh", log])
        expected += b"line %d\n" % i
    assert read_file(log) == expected
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"tail 1\n")
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"tail 2\n")
    finally:
        os.close(fd)
    assert read_file(log) == expected + b"tail 1\ntail 2\n"
    out = run(["sh", "-c", 'cat "$1" | wc -l', "sh", log]).stdout
    assert int(out) == 22


def test_editor_style_saves(cluster):
    """Temp file, write, fsync, rename over the original: what vim, emacs,
    sed -i and most editors do; the original is replaced whole."""
    mnt, _, _ = cluster
    table = make_table(mnt, "docs")
    path = os.path.join(table, "notes.txt")
    write_file(path, b"first version\n")
    os.chmod(path, 0o640)
    os.setxattr(path, "user.tag", b"keep?")
    # The sequence by hand, with the checks an editor makes.
    tmp = os.path.join(table, ".notes.txt.swp-save")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, b"second version, longer than the first\n")
        os.fsync(fd)
        os.fchmod(fd, 0o640)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(table, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    assert read_file(path) == b"second version, longer than the first\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.listdir(table) == ["notes.txt"]
    # sed -i: a temp file in the same directory, then rename.
    run(["sed", "-i", "s/second/third/", path])
    assert read_file(path) == b"third version, longer than the first\n"
    assert os.listdir(table) == ["notes.txt"]
    # vim in ex mode (writes with a backup, fsyncs: E667 if fsync failed).
    vim = shutil.which("vim") or shutil.which("vi")
    if vim:
        proc = run([vim, "-N", "-u", "NONE", "-i", "NONE", "-n", "-es",
                    "-c", "set backup writebackup backupcopy=no fsync",
                    "-c", "%s/third/fourth/", "-c", "$put ='appended by vim'",
                    "-c", "wq", path], timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert read_file(path) == (b"fourth version, longer than the first\n"
                                   b"appended by vim\n")
        # backupcopy=no renamed the original to notes.txt~ and wrote anew.
        assert sorted(os.listdir(table)) in (["notes.txt"], ["notes.txt", "notes.txt~"])
    # Python's own atomic save pattern (os.replace).
    tmp = path + ".tmp"
    write_file(tmp, b"fifth\n")
    os.replace(tmp, path)
    assert read_file(path) == b"fifth\n"


# --------------------------------------------------------------- concurrency

def test_two_writers_last_close_wins_whole(cluster):
    """Two handles of one item written at the same time, interleaved: the
    stored item is the whole body of the handle closed last, never a mix."""
    mnt, _, _ = cluster
    table = make_table(mnt)
    path = os.path.join(table, "k")
    write_file(path, b"initial")
    for round_number in range(6):
        bodies = [bytes([65 + round_number]) * (300000 + 1000 * round_number),
                  bytes([97 + round_number]) * (120000 - 1000 * round_number)]
        fds = [os.open(path, os.O_WRONLY | os.O_TRUNC) for _ in bodies]
        chunk = 32768
        offsets = [0, 0]
        # Interleave the chunks of the two writers.
        while any(offsets[i] < len(bodies[i]) for i in range(2)):
            for i in range(2):
                if offsets[i] < len(bodies[i]):
                    n = os.pwrite(fds[i], bodies[i][offsets[i]:offsets[i] + chunk],
                                  offsets[i])
                    offsets[i] += n
        last = round_number % 2
        os.close(fds[1 - last])
        os.close(fds[last])
        got = read_file(path)
        assert got == bodies[last], "round %d: %d bytes, not the last close's %d" % (
            round_number, len(got), len(bodies[last]))
    # The same with threads closing at about the same time: one of the two, whole.
    bodies = [b"x" * 500000, b"y" * 200000]

    def writer(body):
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            for off in range(0, len(body), 65536):
                os.pwrite(fd, body[off:off + 65536], off)
        finally:
            os.close(fd)

    for _ in range(5):
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(writer, bodies))
        assert read_file(path) in bodies


def _check_reader_sees_whole_versions(path, bodies, writer_path, duration_s):
    """A writer rewrites the item at writer_path with the bodies in turn
    while readers read path: every read is one of the bodies, whole."""
    stop = threading.Event()
    errors = []
    reads = [0]

    def writer():
        i = 0
        while not stop.is_set():
            fd = os.open(writer_path, os.O_WRONLY | os.O_TRUNC)
            body = bodies[i % len(bodies)]
            try:
                for off in range(0, len(body), 65536):
                    os.pwrite(fd, body[off:off + 65536], off)
                    time.sleep(0.001)
            finally:
                os.close(fd)
            i += 1

    def reader():
        while not stop.is_set():
            got = read_file(path)
            reads[0] += 1
            if got not in bodies:
                errors.append("read %d bytes (%r...): not a whole version"
                              % (len(got), got[:1] + got[-1:]))
                return

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader)
                                                   for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(duration_s)
    stop.set()
    for t in threads:
        t.join(timeout=REQUEST_TIMEOUT_S * 3)
    assert not errors, errors[0]
    assert reads[0] > 0, "no read completed"


def test_reader_during_overwrite_sees_old_or_new_whole(cluster):
    from test_replication import SecondMount

    mnt, datadir, h = cluster
    table = make_table(mnt)
    path = os.path.join(table, "k")
    bodies = [b"A" * 300000, b"B" * 700000, b"C" * 5]
    write_file(path, bodies[0])
    # A reader on another mount (another client).
    other = SecondMount(h, os.path.join(os.path.dirname(datadir), "mnt-other"))
    try:
        _check_reader_sees_whole_versions(os.path.join(other.path, "t", "k"), bodies, path, 4)
    finally:
        other.stop()
    # A reader on the same mount as the writer.
    _check_reader_sees_whole_versions(path, bodies, path, 4)


# -------------------------------------------------------------------- errors

def test_precise_errnos(cluster):
    mnt, _, _ = cluster
    t = make_table(mnt, "t")
    u = make_table(mnt, "u")
    write_file(os.path.join(t, "k"), b"v")
    # ENOENT
    expect_errno(errno.ENOENT, os.stat, os.path.join(t, "missing"))
    expect_errno(errno.ENOENT, os.unlink, os.path.join(t, "missing"))
    expect_errno(errno.ENOENT, os.listdir, os.path.join(mnt, "no-table"))
    expect_errno(errno.ENOENT, write_file, os.path.join(mnt, "no-table", "k"), b"x")
    expect_errno(errno.ENOENT, os.rename, os.path.join(t, "missing"), os.path.join(t, "x"))
    proc = run(["cat", os.path.join(t, "missing")], check=False)
    assert proc.returncode == 1 and "No such file or directory" in proc.stderr
    # EEXIST
    expect_errno(errno.EEXIST, os.mkdir, t)
    expect_errno(errno.EEXIST, os.open, os.path.join(t, "k"),
                 os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    expect_errno(errno.EEXIST, os.symlink, "x", os.path.join(t, "k"))
    proc = run(["mkdir", t], check=False)
    assert proc.returncode == 1 and "File exists" in proc.stderr
    # ENOTEMPTY
    expect_errno(errno.ENOTEMPTY, os.rmdir, t)
    proc = run(["rmdir", t], check=False)
    assert "Directory not empty" in proc.stderr
    # EXDEV
    expect_errno(errno.EXDEV, os.rename, os.path.join(t, "k"), os.path.join(u, "k"))
    # EFBIG
    expect_errno(errno.EFBIG, write_file, os.path.join(t, "big"), b"z" * (ITEM_MAX_BYTES + 1))
    expect_errno(errno.EFBIG, os.truncate, os.path.join(t, "k"), ITEM_MAX_BYTES + 1)
    proc = run(["sh", "-c", 'head -c %d /dev/zero > "$1"' % (ITEM_MAX_BYTES + 1), "sh",
                os.path.join(t, "big2")], check=False)
    assert proc.returncode != 0 and "File too large" in proc.stderr, proc.stderr
    # ENAMETOOLONG
    expect_errno(errno.ENAMETOOLONG, write_file, os.path.join(t, "n" * 256), b"x")
    expect_errno(errno.ENAMETOOLONG, os.mkdir, os.path.join(mnt, "m" * 256))
    expect_errno(errno.ENAMETOOLONG, os.stat, os.path.join(t, "n" * 256))
    # Not a directory, is a directory, no hard links, no subdirectories.
    expect_errno(errno.ENOTDIR, os.listdir, os.path.join(t, "k"))
    expect_errno(errno.EISDIR, os.open, t, os.O_WRONLY)
    expect_errno(errno.EPERM, os.link, os.path.join(t, "k"), os.path.join(t, "k2"))
    expect_errno(errno.EPERM, os.mkdir, os.path.join(t, "sub"))
    expect_errno((errno.EPERM, errno.EACCES), write_file, os.path.join(mnt, "at-root"), b"x")
    # Nothing above left anything behind but the empty items the refused
    # writes created (a create is stored at once, empty; the body never was).
    assert sorted(set(os.listdir(t)) - {"big", "big2"}) == ["k"]
    for name in set(os.listdir(t)) & {"big", "big2"}:
        assert read_file(os.path.join(t, name)) == b"", name
    assert read_file(os.path.join(t, "k")) == b"v"


def _in_child_as(uid, gid, cwd, fn):
    """Runs fn() in a forked child with the given ids and working directory
    (entered before dropping privileges: the test's temporary directories
    are private to root). Returns what fn returns (a short string)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.chdir(cwd)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            out = fn()
        except BaseException as e:   # reported to the parent
            out = "exception: %r" % (e,)
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        data = os.read(r, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(r)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def test_permissions_under_default_permissions(cluster_factory):
    """With allow_other (and so default_permissions), the kernel checks the
    stored mode and owner: EACCES and EPERM for another user."""
    c = cluster_factory(options=["allow_other"])
    mnt = c.mountpoint
    t = make_table(mnt, "t")
    os.chmod(t, 0o755)
    write_file(os.path.join(t, "private"), b"secret", mode=0o600)
    os.chmod(os.path.join(t, "private"), 0o600)
    write_file(os.path.join(t, "public"), b"hello")
    os.chmod(os.path.join(t, "public"), 0o644)
    shared = make_table(mnt, "shared")
    os.chmod(shared, 0o777)
    write_file(os.path.join(t, "theirs"), b"owned by 1000")
    os.chown(os.path.join(t, "theirs"), 1000, 1000)
    os.chmod(os.path.join(t, "theirs"), 0o600)

    def as_user():
        results = []

        def attempt(label, fn, *args):
            try:
                value = fn(*args)
                results.append("%s=ok" % label)
                return value
            except OSError as e:
                results.append("%s=%s" % (label, errno.errorcode.get(e.errno, e.errno)))
                return None

        attempt("read_public", read_file, "t/public")
        attempt("read_private", read_file, "t/private")
        attempt("write_public", write_file, "t/public", b"x")
        attempt("create_in_t", write_file, "t/new", b"x")
        attempt("unlink_in_t", os.unlink, "t/public")
        attempt("chmod_public", os.chmod, "t/public", 0o666)
        attempt("utime_public", os.utime, "t/public", (1, 1))
        attempt("chown_theirs", os.chown, "t/theirs", 0, 0)
        attempt("read_theirs", read_file, "t/theirs")
        attempt("setxattr_public", os.setxattr, "t/public", "user.x", b"1")
        attempt("mkdir_root", os.mkdir, "new-table")
        attempt("create_shared", write_file, "shared/mine", b"mine")
        attempt("chmod_mine", os.chmod, "shared/mine", 0o600)
        attempt("read_mine", read_file, "shared/mine")
        return " ".join(results)

    out = _in_child_as(1000, 1000, mnt, as_user)
    got = dict(kv.split("=", 1) for kv in out.split())
    assert got == {
        "read_public": "ok", "read_private": "EACCES", "write_public": "EACCES",
        "create_in_t": "EACCES", "unlink_in_t": "EACCES", "chmod_public": "EPERM",
        "utime_public": "EPERM", "chown_theirs": "EPERM", "read_theirs": "ok",
        "setxattr_public": "EACCES", "mkdir_root": "EACCES", "create_shared": "ok",
        "chmod_mine": "ok", "read_mine": "ok",
    }, out
    st = os.stat(os.path.join(shared, "mine"))
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert read_file(os.path.join(t, "public")) == b"hello"
    assert "new" not in os.listdir(t)


@pytest.mark.deadline(300)
def test_every_node_unreachable_errors_within_deadline(cluster_factory):
    """Every storage node and the metadata service stopped (SIGSTOP): cat, ls
    and writes fail within the request deadline, never hang; fusermount3 -u
    works; nothing is left running once they come back."""
    c = cluster_factory(start=False)
    c.timeout_s = 3
    c.start()
    mnt = c.mountpoint
    t = make_table(mnt)
    for i in range(8):
        write_file(os.path.join(t, "k%d" % i), b"v%d" % i)
    pids = c.pids()
    stopped = [c.meta_pid()] + list(c.node_pids().values())
    # Per call: a lookup and an open may each wait one deadline.
    bound_s = 3 * c.timeout_s + 2
    results = {}
    try:
        for pid in stopped:
            assert pid_signal(pid, signal.SIGSTOP)
        time.sleep(1.5)   # past leases and the kernel's caches

        def timed(label, cmd):
            start = time.monotonic()
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, timeout=bound_s * 4)
            elapsed = time.monotonic() - start
            results[label] = (proc.returncode, proc.stderr.strip(), elapsed)
            assert elapsed < bound_s, "%s took %.1f s" % (label, elapsed)
            return proc

        for i in range(3):
            proc = timed("cat%d" % i, ["cat", os.path.join(t, "k%d" % i)])
            assert proc.returncode != 0, "cat of an item with no node answering worked"
            assert "Input/output error" in proc.stderr, proc.stderr
        proc = timed("ls", ["ls", "-l", t])
        assert proc.returncode != 0 and "Input/output error" in proc.stderr, proc.stderr
        proc = timed("write", ["sh", "-c", 'echo new > "$1"', "sh", os.path.join(t, "k1")])
        assert proc.returncode != 0 and "Input/output error" in proc.stderr, proc.stderr
        proc = timed("create", ["sh", "-c", 'echo new > "$1"', "sh", os.path.join(t, "new")])
        assert proc.returncode != 0, proc.stderr
        timed("ls-root", ["ls", mnt])
        # The unmount does not wait for the cluster.
        start = time.monotonic()
        proc = run(["fusermount3", "-u", mnt], timeout=bound_s * 4, check=False)
        assert proc.returncode == 0, proc.stderr
        assert time.monotonic() - start < bound_s
        assert not is_mounted(mnt)
    finally:
        for pid in stopped:
            pid_signal(pid, signal.SIGCONT)
        print(results)
    left = pids_wait_gone(pids, 30)
    assert not left, "still running after the unmount: %s" % left
    # The data is all there after a new start.
    c.start()
    assert [read_file(os.path.join(t, "k%d" % i)) for i in range(8)] == \
        [b"v%d" % i for i in range(8)]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mount_of_an_unreachable_cluster_fails_clearly(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    url = "tcp://127.0.0.1:%d" % _free_port()
    start = time.monotonic()
    proc = subprocess.run([QUORUMFS, "-o", "meta=" + url, "-o", "timeout=2", str(mnt)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    elapsed = time.monotonic() - start
    try:
        assert proc.returncode != 0
        assert "no metadata service answered" in proc.stderr, proc.stderr
        assert url in proc.stderr, proc.stderr
        assert elapsed < 15, "gave up after %.1f s" % elapsed
        assert not is_mounted(str(mnt))
        # Several URLs: all named, still a clean failure.
        url2 = "tcp://127.0.0.1:%d" % _free_port()
        proc = subprocess.run([QUORUMFS, "-f", "-o", "meta=%s,%s" % (url, url2),
                               "-o", "timeout=2", str(mnt)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60)
        assert proc.returncode != 0
        assert url in proc.stderr and url2 in proc.stderr, proc.stderr
        assert not is_mounted(str(mnt))
    finally:
        if is_mounted(str(mnt)):
            run(["fusermount3", "-u", "-z", str(mnt)], check=False)


# ----------------------------------------------------------------- stress-ng

@pytest.mark.deadline(300)
def test_stress_ng_filesystem_stressors_verify(cluster):
    """stress-ng's file system stressors that fit a store of tables and
    items (no subdirectories, no hard links, no rename across tables),
    with --verify, for a short run. Each makes its own table at the root."""
    if not shutil.which("stress-ng"):
        pytest.skip("stress-ng is not installed (apt-get install stress-ng)")
    mnt, _, _ = cluster
    cmd = ["stress-ng", "--temp-path", mnt, "--verify", "--timeout", "8", "--metrics-brief",
           "--hdd", "1", "--hdd-bytes", "1m", "--hdd-write-size", "64k",
           "--dentry", "1", "--dentries", "256",
           "--seek", "1", "--seek-size", "1m",
           "--chmod", "1", "--utime", "1", "--io", "1"]
    proc = run(cmd, timeout=240, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "successful run completed" in out, out[-4000:]
    assert "fail" not in out.lower().replace("failed: 0", ""), out[-4000:]
    ops = dict(re.findall(r"metrc: \[\d+\] (\w+) +(\d+) ", out))
    for stressor in ("hdd", "dentry", "seek", "utime"):
        assert int(ops.get(stressor, "0")) > 0, "%s did nothing:\n%s" % (stressor, out[-4000:])
    # stress-ng removes its tables.
    assert not [n for n in os.listdir(mnt) if n.startswith("tmp-stress-ng")], os.listdir(mnt)


# -------------------------------------------------------------- large table

SLOW = os.environ.get("QUORUM_E2E_SLOW", "") not in ("", "0")


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


@pytest.mark.skipif(not SLOW, reason="large table: set QUORUM_E2E_SLOW=1 (make check-slow)")
@pytest.mark.deadline(3600)
def test_large_table_100000_items(cluster):
    """ls -l and find on a table of 100,000 items stream page by page with
    readdirplus in bounded daemon memory; offsets stay valid while items
    are added and removed during a listing."""
    mnt, _, h = cluster
    t = make_table(mnt, "huge")
    count = 100000
    names = ["item-%06d" % i for i in range(count)]

    def put(name):
        write_file(os.path.join(t, name), b"v" * (int(name[5:]) % 61))

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        for _ in pool.map(put, names, chunksize=64):
            pass
    print("wrote %d items in %.0f s" % (count, time.monotonic() - start))
    qpid = h.quorumfs_pid()
    rss_before = _rss_kib(qpid)
    peak = [rss_before[0]]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_kib(qpid)[0])
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        start = time.monotonic()
        proc = subprocess.Popen(["ls", "-l", t], stdout=subprocess.PIPE, text=True)
        first_line_s = None
        rows = 0
        for line in proc.stdout:
            if first_line_s is None:
                first_line_s = time.monotonic() - start
            rows += 1
        assert proc.wait() == 0
        ls_s = time.monotonic() - start
        # Printed at once, so a later failure does not lose the figures.
        print("ls -l: first line after %.2f s, %d rows in %.1f s; quorumfs RSS %d KiB "
              "before, %d KiB peak" % (first_line_s, rows, ls_s, rss_before[0], peak[0]))
        assert rows == count + 1   # "total N"
        start = time.monotonic()
        out = run(["find", t, "-type", "f", "-size", "-2k"], timeout=1800).stdout.splitlines()
        find_s = time.monotonic() - start
        print("find: %d items in %.1f s; quorumfs RSS peak %d KiB" % (len(out), find_s,
                                                                     peak[0]))
        assert len(out) == count
        # Offsets stay valid while items come and go during a listing.
        seen = []
        with os.scandir(t) as it:
            for i, entry in enumerate(it):
                seen.append(entry.name)
                if i % 1000 == 0 and entry.name.startswith("item-"):
                    os.unlink(os.path.join(t, entry.name))
                    write_file(os.path.join(t, "added-%06d" % i), b"new")
        assert len(seen) == len(set(seen)), "a name was listed twice"
        assert set(names) <= set(seen), "%d names missing" % len(set(names) - set(seen))
    finally:
        stop.set()
        sampler.join()
    rss_after = _rss_kib(qpid)
    print("quorumfs RSS: %d KiB before listing, %d KiB peak while listing, %d KiB after "
          "(high-water mark %d KiB); ls -l: first line after %.2f s, all %d rows in %.1f s; "
          "find: %.1f s" % (rss_before[0], peak[0], rss_after[0], rss_after[1], first_line_s,
                            rows, ls_s, find_s))
    # Bounded: a listing holds one page, not the table.
    assert peak[0] - rss_before[0] < 64 * 1024, "RSS grew by %d KiB while listing" % (
        peak[0] - rss_before[0])

"""End-to-end tests with the tools a user backs up and restores with:
rsync both ways (content, mode, mtime; a second run moves nothing), cp -p,
tar and find through the mount."""

import os
import random
import re
import stat

from conftest import read_file, run, write_file


def _make_tree(root, rng, count=40):
    """A flat tree of files (tables have no subdirectories) with various
    sizes, modes and nanosecond mtimes."""
    os.makedirs(root)
    files = {}
    for i in range(count):
        name = "file-%02d%s" % (i, rng.choice(["", ".txt", ".bin", " with space"]))
        size = rng.choice([0, 1, 1000, 4096, 70000, 250000, 1 << 20])
        body = rng.randbytes(size)
        path = os.path.join(root, name)
        write_file(path, body)
        mode = rng.choice([0o644, 0o600, 0o755, 0o640])
        os.chmod(path, mode)
        mtime_ns = rng.randrange(10 ** 18, 17 * 10 ** 17) // 1000 * 1000 + rng.randrange(1000)
        os.utime(path, ns=(mtime_ns, mtime_ns))
        files[name] = (body, mode, mtime_ns)
    return files


def _compare(root, files):
    assert sorted(os.listdir(root)) == sorted(files), root
    for name, (body, mode, mtime_ns) in files.items():
        path = os.path.join(root, name)
        st = os.stat(path)
        assert read_file(path) == body, "%s differs" % path
        assert stat.S_IMODE(st.st_mode) == mode, "%s mode %o" % (path, st.st_mode)
        assert st.st_mtime_ns == mtime_ns, "%s mtime %d != %d" % (path, st.st_mtime_ns, mtime_ns)


def _files_transferred(stats_output):
    m = re.search(r"Number of regular files transferred: ([\d,]+)", stats_output)
    assert m, stats_output
    return int(m.group(1).replace(",", ""))


def test_rsync_round_trip(cluster, tmp_path):
    mnt, _, _ = cluster
    rng = random.Random(7)
    src = str(tmp_path / "src")
    files = _make_tree(src, rng)
    table = os.path.join(mnt, "backup")
    os.mkdir(table)
    run(["rsync", "-a", src + "/", table + "/"], timeout=300)
    _compare(table, files)
    # No temporary files of rsync are left behind.
    assert not [n for n in os.listdir(table) if n.startswith(".")]
    # A second run moves nothing.
    out = run(["rsync", "-a", "--stats", src + "/", table + "/"], timeout=300).stdout
    assert _files_transferred(out) == 0, out
    # And back.
    back = str(tmp_path / "back")
    run(["rsync", "-a", table + "/", back + "/"], timeout=300)
    _compare(back, files)
    out = run(["rsync", "-a", "--stats", table + "/", back + "/"], timeout=300).stdout
    assert _files_transferred(out) == 0, out
    # A changed file is transferred alone, and --delete removes items.
    name = sorted(files)[0]
    write_file(os.path.join(src, name), b"changed")
    os.utime(os.path.join(src, name), ns=(10 ** 18, 10 ** 18))
    files[name] = (b"changed", stat.S_IMODE(os.stat(os.path.join(src, name)).st_mode), 10 ** 18)
    gone = sorted(files)[1]
    os.unlink(os.path.join(src, gone))
    del files[gone]
    out = run(["rsync", "-a", "--delete", "--stats", src + "/", table + "/"], timeout=300).stdout
    assert _files_transferred(out) == 1, out
    _compare(table, files)


def test_cp_tar_find(cluster, tmp_path):
    mnt, _, _ = cluster
    rng = random.Random(11)
    src = str(tmp_path / "src")
    files = _make_tree(src, rng, count=12)
    table = os.path.join(mnt, "t")
    os.mkdir(table)
    # cp -p keeps mode and mtime.
    for name in files:
        run(["cp", "-p", os.path.join(src, name), os.path.join(table, name)])
    _compare(table, files)
    # tar out of the mount and into another table.
    archive = str(tmp_path / "a.tar")
    # The pax format keeps mtimes to the nanosecond (GNU format: seconds).
    run(["tar", "--format=posix", "-C", table, "-cf", archive, "."], timeout=120)
    other = os.path.join(mnt, "u")
    os.mkdir(other)
    proc = run(["tar", "-C", other, "-xf", archive, "--no-same-owner"], timeout=120,
               check=False)
    # tar sets the times of "." (the table) too; any complaint is a failure.
    assert proc.returncode == 0, proc.stderr
    _compare(other, files)
    out = run(["find", mnt, "-type", "f"]).stdout.splitlines()
    assert len(out) == 2 * len(files)
    out = run(["find", table, "-name", "file-0*", "-size", "+0"]).stdout.splitlines()
    assert all(os.path.basename(p).startswith("file-0") for p in out)

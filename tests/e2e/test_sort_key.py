"""End-to-end tests of tables with a sort key (`quorumctl table create T
--sort-key`): partition keys are directories of the table, sort keys the
files inside them, listed in sort-key order; mkdir/rmdir of a partition key's
directory, renames inside and across partition keys, and rsync -a and cp -r
of a two-level tree into such a table and back."""

import errno
import os
import random
import re
import stat

from conftest import expect_errno, read_file, run, write_file


def _create_sort_key_table(helpers, mnt, name):
    info = helpers.ctl("table", "create", name, "--sort-key")
    assert info["has_sort_key"] is True, info
    path = os.path.join(mnt, name)
    assert stat.S_ISDIR(os.stat(path).st_mode)
    return path


def test_sort_key_directories(cluster):
    mnt, _, helpers = cluster
    table = _create_sort_key_table(helpers, mnt, "events")
    assert os.listdir(table) == []

    # mkdir makes a partition key's directory before it holds anything.
    os.mkdir(os.path.join(table, "user-1"))
    os.mkdir(os.path.join(table, "user-2"), 0o750)
    st = os.stat(os.path.join(table, "user-2"))
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750, oct(st.st_mode)
    expect_errno(errno.EEXIST, os.mkdir, os.path.join(table, "user-1"))
    assert sorted(os.listdir(table)) == ["user-1", "user-2"]

    # Files are named by sort key and listed in sort-key (byte) order.
    p1 = os.path.join(table, "user-1")
    names = ["b", "a", "c-10", "c-9", "Z", "a.b", "\u00e9t\u00e9", "a b"]
    for i, name in enumerate(names):
        write_file(os.path.join(p1, name), b"body %d" % i)
    assert os.listdir(p1) == sorted(names, key=lambda n: n.encode())
    assert read_file(os.path.join(p1, "c-10")) == b"body 2"
    st = os.stat(os.path.join(p1, "c-10"))
    assert stat.S_ISREG(st.st_mode) and st.st_size == 6

    # More items than one listing page, in order, each once.
    p2 = os.path.join(table, "user-2")
    many = ["k%04d" % i for i in range(300)]
    for name in many:
        write_file(os.path.join(p2, name), name.encode())
    assert os.listdir(p2) == many
    assert sorted(os.listdir(table)) == ["user-1", "user-2"]

    # Files directly in the table, and directories below a partition key,
    # are refused; so are directories in a table without a sort key.
    expect_errno(errno.EPERM, write_file, os.path.join(table, "loose"), b"x")
    expect_errno(errno.EPERM, os.mkdir, os.path.join(p1, "deeper"))
    os.mkdir(os.path.join(mnt, "plain"))
    expect_errno(errno.EPERM, os.mkdir, os.path.join(mnt, "plain", "dir"))

    # Renames inside one partition key and across partition keys.
    os.rename(os.path.join(p1, "a"), os.path.join(p1, "a-renamed"))
    assert read_file(os.path.join(p1, "a-renamed")) == b"body 1"
    expect_errno(errno.ENOENT, os.stat, os.path.join(p1, "a"))
    os.rename(os.path.join(p1, "b"), os.path.join(p2, "b"))
    assert read_file(os.path.join(p2, "b")) == b"body 0"
    assert "b" not in os.listdir(p1)
    assert os.listdir(p2) == ["b"] + many
    # A rename onto an existing file replaces it.
    os.rename(os.path.join(p1, "Z"), os.path.join(p2, "k0000"))
    assert read_file(os.path.join(p2, "k0000")) == b"body 4"
    # Across tables: EXDEV, as for tables without a sort key.
    expect_errno(errno.EXDEV, os.rename, os.path.join(p1, "c-9"),
                 os.path.join(mnt, "plain", "c-9"))

    # Files in T/P work as in a plain table: truncate, chmod, utimens,
    # xattrs, symlinks, unlink.
    path = os.path.join(p1, "c-9")
    os.truncate(path, 2)
    assert read_file(path) == b"bo"
    os.chmod(path, 0o600)
    os.utime(path, ns=(1234567890123456789, 1234567890123456789))
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime_ns == 1234567890123456789
    os.setxattr(path, "user.color", b"blue")
    assert os.getxattr(path, "user.color") == b"blue"
    assert os.listxattr(path) == ["user.color"]
    os.symlink("c-9", os.path.join(p1, "link"))
    assert os.readlink(os.path.join(p1, "link")) == "c-9"
    assert read_file(os.path.join(p1, "link")) == b"bo"
    os.unlink(os.path.join(p1, "link"))

    # The directory's own attributes live in its marker.
    os.chmod(p2, 0o711)
    os.utime(p2, ns=(10 ** 18, 10 ** 18))
    st = os.stat(p2)
    assert stat.S_IMODE(st.st_mode) == 0o711 and st.st_mtime_ns == 10 ** 18

    # rmdir: ENOTEMPTY while the directory holds files, then gone.
    expect_errno(errno.ENOTEMPTY, os.rmdir, p1)
    for name in os.listdir(p1):
        os.unlink(os.path.join(p1, name))
    assert os.listdir(p1) == []
    os.rmdir(p1)
    expect_errno(errno.ENOENT, os.stat, p1)
    assert os.listdir(table) == ["user-2"]
    # A table that holds a directory is not empty.
    expect_errno(errno.ENOTEMPTY, os.rmdir, table)

    # mv of a whole directory: EXDEV inside, so mv copies and removes it.
    run(["mv", p2, os.path.join(table, "user-3")], timeout=300)
    assert os.listdir(table) == ["user-3"]
    assert os.listdir(os.path.join(table, "user-3")) == ["b"] + many
    run(["rm", "-rf", os.path.join(table, "user-3")], timeout=300)
    assert os.listdir(table) == []
    os.rmdir(table)


def test_sort_key_listing_streams_partition_keys(cluster):
    """ls T lists each partition key once, however many sort keys it has,
    and the listings survive removals while they run: rm -rf removes every
    file, every directory and the table itself."""
    mnt, _, helpers = cluster
    table = _create_sort_key_table(helpers, mnt, "wide")
    keys = ["pk-%03d" % i for i in range(40)]
    for i, key in enumerate(keys):
        os.mkdir(os.path.join(table, key))
        for j in range(i % 5 + 1):
            write_file(os.path.join(table, key, "s%d" % j), b"x")
    listed = os.listdir(table)
    assert sorted(listed) == keys and len(listed) == len(keys)
    # ls -l reads the attributes from the listing (readdirplus).
    out = run(["ls", "-l", table]).stdout
    assert len([line for line in out.splitlines() if line.startswith("d")]) == len(keys)
    run(["rm", "-rf", table], timeout=300)
    assert not os.path.exists(table)
    assert "wide" not in os.listdir(mnt)


def _make_two_level_tree(root, rng):
    """DIR/P/S: a few partition keys with files of various sizes, modes and
    nanosecond mtimes; directories get modes and mtimes too."""
    os.makedirs(root)
    files, dirs = {}, {}
    for p in range(5):
        pk = "part-%d%s" % (p, rng.choice(["", " with space", ".d"]))
        pdir = os.path.join(root, pk)
        os.mkdir(pdir)
        for s in range(rng.randrange(1, 12)):
            sk = "2026-11-%02d%s" % (s + 1, rng.choice(["", ".log", ".json"]))
            body = rng.randbytes(rng.choice([0, 1, 700, 5000, 100000]))
            path = os.path.join(pdir, sk)
            write_file(path, body)
            mode = rng.choice([0o644, 0o600, 0o755])
            os.chmod(path, mode)
            mtime_ns = rng.randrange(10 ** 18, 17 * 10 ** 17)
            os.utime(path, ns=(mtime_ns, mtime_ns))
            files[os.path.join(pk, sk)] = (body, mode, mtime_ns)
        mode = rng.choice([0o755, 0o750, 0o700])
        os.chmod(pdir, mode)
        mtime_ns = rng.randrange(10 ** 18, 17 * 10 ** 17)
        os.utime(pdir, ns=(mtime_ns, mtime_ns))
        dirs[pk] = (mode, mtime_ns)
    return files, dirs


def _compare_tree(root, files, dirs, check_dirs=True):
    assert sorted(os.listdir(root)) == sorted(dirs), root
    for pk, (mode, mtime_ns) in dirs.items():
        path = os.path.join(root, pk)
        st = os.stat(path)
        assert stat.S_ISDIR(st.st_mode), path
        if check_dirs:
            assert stat.S_IMODE(st.st_mode) == mode, "%s mode %o" % (path, st.st_mode)
            assert st.st_mtime_ns == mtime_ns, "%s mtime %d" % (path, st.st_mtime_ns)
        expected = sorted(name.split(os.sep)[1] for name in files if name.split(os.sep)[0] == pk)
        assert sorted(os.listdir(path)) == expected, path
    for name, (body, mode, mtime_ns) in files.items():
        path = os.path.join(root, name)
        st = os.stat(path)
        assert read_file(path) == body, "%s differs" % path
        assert stat.S_IMODE(st.st_mode) == mode, "%s mode %o" % (path, st.st_mode)
        assert st.st_mtime_ns == mtime_ns, "%s mtime %d != %d" % (path, st.st_mtime_ns,
                                                                  mtime_ns)


def _files_transferred(stats_output):
    m = re.search(r"Number of regular files transferred: ([\d,]+)", stats_output)
    assert m, stats_output
    return int(m.group(1).replace(",", ""))


def test_sort_key_rsync_round_trip(cluster, tmp_path):
    mnt, _, helpers = cluster
    rng = random.Random(11)
    src = str(tmp_path / "src")
    files, dirs = _make_two_level_tree(src, rng)
    table = _create_sort_key_table(helpers, mnt, "logs")
    run(["rsync", "-a", src + "/", table + "/"], timeout=300)
    _compare_tree(table, files, dirs)
    # No temporary files of rsync are left behind.
    for pk in dirs:
        assert not [n for n in os.listdir(os.path.join(table, pk)) if n.startswith(".")]
    out = run(["rsync", "-a", "--stats", src + "/", table + "/"], timeout=300).stdout
    assert _files_transferred(out) == 0, out
    # And back: the trees are identical.
    back = str(tmp_path / "back")
    run(["rsync", "-a", table + "/", back + "/"], timeout=300)
    _compare_tree(back, files, dirs)
    out = run(["rsync", "-a", "--stats", table + "/", back + "/"], timeout=300).stdout
    assert _files_transferred(out) == 0, out
    # --delete removes a file and a whole directory of the table.
    gone_dir = sorted(dirs)[0]
    run(["rm", "-rf", os.path.join(src, gone_dir)])
    for name in [n for n in files if n.split(os.sep)[0] == gone_dir]:
        del files[name]
    del dirs[gone_dir]
    run(["rsync", "-a", "--delete", src + "/", table + "/"], timeout=300)
    _compare_tree(table, files, dirs)


def test_sort_key_cp_recursive(cluster, tmp_path):
    mnt, _, helpers = cluster
    rng = random.Random(5)
    src = str(tmp_path / "src")
    files, dirs = _make_two_level_tree(src, rng)
    table = _create_sort_key_table(helpers, mnt, "copies")
    # cp -r without -p: contents only (modes follow the umask, times are new).
    run(["cp", "-r", src + "/.", table + "/"], timeout=300)
    assert sorted(os.listdir(table)) == sorted(dirs)
    for name, (body, _, _) in files.items():
        assert read_file(os.path.join(table, name)) == body, name
    # cp -a keeps modes and times too.
    table2 = _create_sort_key_table(helpers, mnt, "copies-a")
    run(["cp", "-a", src + "/.", table2 + "/"], timeout=300)
    _compare_tree(table2, files, dirs)

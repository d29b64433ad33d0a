"""End-to-end tests of partition splits through a real mount: `quorumctl
table split` halves every partition through its group's log (the leader picks
the hash that halves its bytes); every item stays readable and writable, the
new partitions elect leaders of their own, a listing running while the table
splits sees each item exactly once, and the split map survives a restart of
the whole cluster."""

import hashlib
import os
import threading
import time

import pytest

from conftest import read_file, write_file

ITEMS = 240


def make_table(mnt, name="t"):
    path = os.path.join(mnt, name)
    os.mkdir(path)
    return path


def partition_leaders(desc):
    """{partition id: node id of a replica with a fresh report as leader, or None}."""
    leaders = {}
    for p in desc["partitions"]:
        leaders[p["id"]] = None
        for r in p.get("replicas", []):
            if r.get("role") == "leader" and r.get("report_age_ms", 0) < 2000:
                leaders[p["id"]] = r["node_id"]
    return leaders


def wait_all_led(h, table, count, timeout_s=60):
    """Waits until TABLE has COUNT partitions and each reports a leader."""
    deadline = time.monotonic() + timeout_s
    while True:
        desc = h.ctl("table", "describe", table)
        leaders = partition_leaders(desc)
        if len(desc["partitions"]) == count and all(leaders.values()):
            return desc
        assert time.monotonic() < deadline, \
            "%d partitions with leaders %s after %d s" % (len(desc["partitions"]), leaders,
                                                          timeout_s)
        time.sleep(0.3)


def check_ranges(desc):
    """The partitions tile the hash space: no gap, no overlap."""
    ranges = sorted((int(p["hash_first"], 16), int(p["hash_last"], 16))
                    for p in desc["partitions"])
    assert ranges[0][0] == 0 and ranges[-1][1] == 2 ** 64 - 1, ranges
    for (_, last), (first, _) in zip(ranges, ranges[1:]):
        assert first == last + 1, ranges


@pytest.mark.deadline(400)
def test_split_keeps_every_item_and_survives_restart(cluster):
    mnt, datadir, h = cluster
    t = make_table(mnt)
    names = ["k%03d" % i for i in range(ITEMS)]
    for name in names:
        write_file(os.path.join(t, name), b"v-" + name.encode())
    before = h.ctl("table", "describe", "t")
    count = len(before["partitions"])

    desc = h.ctl("table", "split", "t")
    assert len(desc["partitions"]) == 2 * count
    check_ranges(desc)
    desc = wait_all_led(h, "t", 2 * count)
    epochs = {p["id"]: p["epoch"] for p in desc["partitions"]}
    assert all(e == 2 for e in epochs.values()), epochs

    assert sorted(os.listdir(t)) == names
    for name in names:
        assert read_file(os.path.join(t, name)) == b"v-" + name.encode()
    for name in names:
        write_file(os.path.join(t, name), b"w-" + name.encode())

    # Again: four times the partitions, items where they were.
    desc = h.ctl("table", "split", "t")
    assert len(desc["partitions"]) == 4 * count
    check_ranges(desc)
    wait_all_led(h, "t", 4 * count)
    for name in names:
        assert read_file(os.path.join(t, name)) == b"w-" + name.encode()

    h.restart()
    desc = wait_all_led(h, "t", 4 * count)
    check_ranges(desc)
    assert sorted(os.listdir(t)) == names
    for name in names:
        assert read_file(os.path.join(t, name)) == b"w-" + name.encode()
        write_file(os.path.join(t, name), b"x-" + name.encode())


@pytest.mark.deadline(400)
def test_listing_and_writes_during_splits(cluster):
    """Writers keep writing and a reader keeps listing while every partition
    splits twice: no write fails, every listing holds each item once, and
    each item holds its last acknowledged value."""
    mnt, datadir, h = cluster
    t = make_table(mnt)
    names = ["s%03d" % i for i in range(ITEMS)]
    for name in names:
        write_file(os.path.join(t, name), b"0")
    last = {name: b"0" for name in names}
    stop = threading.Event()
    errors, listings = [], []

    def writer(offset):
        own = names[offset::3]
        n = 0
        while not stop.is_set():
            name = own[n % len(own)]
            value = ("%d-%d" % (offset, n)).encode()
            try:
                write_file(os.path.join(t, name), value)
                last[name] = value
            except OSError as e:
                errors.append(("write", name, e.errno))
            n += 1

    def lister():
        while not stop.is_set():
            try:
                entries = os.listdir(t)
            except OSError as e:
                errors.append(("list", e.errno))
                continue
            listings.append(len(entries))
            if len(entries) != len(set(entries)) or set(entries) != set(names):
                errors.append(("listing", sorted(set(entries) ^ set(names))[:5],
                               len(entries) - len(set(entries))))

    # Each writer owns every third name: the last value of a name is one writer's.
    threads = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(3)]
    threads.append(threading.Thread(target=lister, daemon=True))
    for th in threads:
        th.start()
    try:
        time.sleep(1)
        count = len(h.ctl("table", "describe", "t")["partitions"])
        h.ctl("table", "split", "t")
        time.sleep(1)
        h.ctl("table", "split", "t")
        wait_all_led(h, "t", 4 * count)
        time.sleep(1)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=60)
    assert not any(th.is_alive() for th in threads), "a client hung"
    assert not errors, errors[:10]
    assert len(listings) > 3, "the lister made %d listings" % len(listings)
    for name in names:
        assert read_file(os.path.join(t, name)) == last[name]


def key_hash(name):
    """The partition-key hash of cluster/keys.h: the first 8 bytes of SHA-256."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


@pytest.mark.deadline(400)
def test_table_splits_on_its_own_by_size(cluster):
    """With split.bytes at 64 KiB, a table written past it splits by itself,
    more than once, while a listing sees each item exactly once."""
    mnt, datadir, h = cluster
    t = make_table(mnt)
    count = len(h.ctl("table", "describe", "t")["partitions"])
    h.ctl("config", "set", "split.bytes", "64KiB")
    names = ["b%03d" % i for i in range(300)]
    body = os.urandom(4096)
    for name in names:
        write_file(os.path.join(t, name), body)
    deadline = time.monotonic() + 120
    while True:
        listing = os.listdir(t)
        assert sorted(listing) == names, "a listing during splits: %d entries, %d distinct" % (
            len(listing), len(set(listing)))
        desc = h.ctl("table", "describe", "t")
        if len(desc["partitions"]) >= 3 * count:
            break
        assert time.monotonic() < deadline, \
            "%d partitions after 120 s (from %d)" % (len(desc["partitions"]), count)
        time.sleep(1)
    check_ranges(desc)
    assert max(p["epoch"] for p in desc["partitions"]) >= 3, "no partition split twice"
    for name in names:
        assert read_file(os.path.join(t, name)) == body


@pytest.mark.deadline(400)
def test_hot_range_splits_by_consumption(cluster):
    """A sustained write load on a few keys of one partition splits it at a
    point inside the hot range, not at the middle of the partition."""
    mnt, datadir, h = cluster
    t = make_table(mnt)
    desc = h.ctl("table", "describe", "t")
    first = min(desc["partitions"], key=lambda p: int(p["hash_first"], 16))
    low, high = int(first["hash_first"], 16), int(first["hash_last"], 16)
    # Six keys of that partition, in its upper half, spread over a range.
    hot = sorted((n for n in ("hot%d" % i for i in range(4000))
                  if low + (high - low) // 2 < key_hash(n) <= high), key=key_hash)[:6]
    assert len(hot) == 6
    h.ctl("config", "set", "split.rate", "20")
    h.ctl("config", "set", "split.window_s", "2")
    stop = threading.Event()
    errors = []

    def writer(names):
        n = 0
        while not stop.is_set():
            try:
                write_file(os.path.join(t, names[n % len(names)]), b"%d" % n)
            except OSError as e:
                errors.append(e.errno)
            n += 1

    threads = [threading.Thread(target=writer, args=(hot[k::2],), daemon=True)
               for k in range(2)]
    for th in threads:
        th.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            desc = h.ctl("table", "describe", "t")
            parts = [p for p in desc["partitions"]
                     if low <= int(p["hash_first"], 16) <= high]
            if len(parts) > 1:
                break
            assert time.monotonic() < deadline, "the hot partition did not split in 120 s"
            time.sleep(1)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=60)
    assert not errors, errors[:10]
    points = sorted(int(p["hash_first"], 16) for p in parts)[1:]
    hashes = [key_hash(n) for n in hot]
    assert any(hashes[0] < point <= hashes[-1] for point in points), \
        "split at %s, the hot keys span %016x..%016x" % (
            ["%016x" % p for p in points], hashes[0], hashes[-1])

#!/usr/bin/env python3
"""compare_summary.py OUT: the side-by-side tables and the ratios of issue 6 from the JSON
files that compare.sh wrote into OUT (kv_bench, etcd_bench and fs_bench results); writes
OUT/summary.json too. Standard library only. A system that did not run shows as '-'."""
import json
import os
import sys

FS_SYSTEMS = [("quorumfs", "quorumfs"), ("ll", "passthrough_ll"), ("bindfs", "bindfs-mt"),
              ("gluster", "glusterfs r3")]
FS_PHASES = ["create", "stat", "read", "readdir", "ls-l", "overwrite", "reread", "rename",
             "unlink", "rsync-in", "rsync-out", "rsync-in-again", "rsync-out-again"]


def load(out, name):
    path = os.path.join(out, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def kv_row(report, op, clients):
    for r in (report or {}).get("results", []):
        if r["op"] == op and r["clients"] == clients:
            return r
    return None


def fs_row(report, phase, threads):
    for r in (report or {}).get("results", []):
        if r["phase"] == phase and r["threads"] == threads:
            return r
    return None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def ratio(a, b):
    return a / b if a is not None and b else None


def main():
    out = sys.argv[1]
    kv = {"quorumfs": load(out, "quorumfs-kv.json"), "etcd": load(out, "etcd-kv.json")}
    fs = {key: load(out, f"{key}-fs.json") for key, _ in FS_SYSTEMS}
    try:
        with open(os.path.join(out, "machine.txt")) as f:
            print(f.read().rstrip())
    except OSError:
        pass
    for name, rep in [("quorumfs key-value", kv["quorumfs"]), ("etcd", kv["etcd"])] + \
            [(label, fs[key]) for key, label in FS_SYSTEMS]:
        if rep and rep.get("complete") is False:
            print(f"NOTE: the {name} run failed part way: only the phases it finished show")
    busy = [r.get("loadavg_1m_at_start", 0) / max(1, r.get("cpus", 1))
            for r in list(kv.values()) + list(fs.values()) if r]
    if busy and max(busy) > 0.5:
        print("WARNING: the host was busy when a benchmark started (1-minute load average "
              f"up to {max(busy):.1f} per CPU): these figures are preliminary, measured "
              "under load, not to be quoted")

    # ---------------------------------------------------------------- key-value
    print("\n== key-value: 1 KiB values, 3 replicas, acknowledged after fsync on a majority")
    print(f"{'op':<6}{'clients':>8} | {'quorumfs req/s':>14}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'p999 ms':>9} | {'etcd req/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'p999 ms':>9}")
    pairs = set()
    for rep in kv.values():
        for r in (rep or {}).get("results", []):
            pairs.add((r["op"], r["clients"]))
    for op, clients in sorted(pairs, key=lambda p: (p[0] != "put", p[0], p[1])):
        cells = []
        for system in ("quorumfs", "etcd"):
            r = kv_row(kv[system], op, clients) or {}
            cells.append(f"{fmt(r.get('rate'), '.0f'):>{14 if system == 'quorumfs' else 11}}"
                         f"{fmt(r.get('p50_ms'), '.2f'):>9}{fmt(r.get('p99_ms'), '.2f'):>9}"
                         f"{fmt(r.get('p999_ms'), '.2f'):>9}")
        print(f"{op:<6}{clients:>8} | {cells[0]} | {cells[1]}")

    # ---------------------------------------------------------------- filesystem
    first = next((r for r in fs.values() if r), None)
    if first:
        print(f"\n== filesystem: {first['files']} files of {first['size']} B, "
              "operations (listings: entries) per second")
    threads = sorted({r["threads"] for rep in fs.values() if rep for r in rep["results"]})
    print(f"{'phase':<16}{'threads':>8}" + "".join(f"{label:>15}" for _, label in FS_SYSTEMS))
    for t in threads:
        for phase in FS_PHASES:
            cells = [fs_row(fs[key], phase, t) for key, _ in FS_SYSTEMS]
            if not any(cells):
                continue
            print(f"{phase:<16}{t:>8}" + "".join(
                f"{fmt(c and c['rate'], '.0f') + ('!' if c and c['errors'] else ''):>15}"
                for c in cells))

    # ---------------------------------------------------------------- ratios
    def kvv(system, op, clients, field):
        r = kv_row(kv[system], op, clients)
        return r[field] if r else None

    def fsv(key, phase, t):
        r = fs_row(fs[key], phase, t)
        return r["rate"] if r else None

    t_max = max(threads) if threads else 8
    c_max = max((p[1] for p in pairs), default=64)
    targets = [
        (f"put throughput, {c_max} clients: quorumfs / etcd",
         ratio(kvv("quorumfs", "put", c_max, "rate"), kvv("etcd", "put", c_max, "rate")),
         ">=", 1.5),
        (f"p99 put latency, {c_max} clients: quorumfs / etcd",
         ratio(kvv("quorumfs", "put", c_max, "p99_ms"), kvv("etcd", "put", c_max, "p99_ms")),
         "<=", 1.0),
    ]
    for phase in ("create", "stat", "read"):
        targets.append((f"{phase}, {t_max} threads: quorumfs / passthrough_ll",
                        ratio(fsv("quorumfs", phase, t_max), fsv("ll", phase, t_max)),
                        ">=", 0.5))
    reference = []
    for phase in ("create", "stat", "read"):
        reference.append((f"{phase}, {t_max} threads: glusterfs / passthrough_ll",
                          ratio(fsv("gluster", phase, t_max), fsv("ll", phase, t_max))))
        reference.append((f"{phase}, {t_max} threads: quorumfs / glusterfs",
                          ratio(fsv("quorumfs", phase, t_max), fsv("gluster", phase, t_max))))
        reference.append((f"{phase}, {t_max} threads: bindfs-mt / passthrough_ll",
                          ratio(fsv("bindfs", phase, t_max), fsv("ll", phase, t_max))))
    reference.append((f"get throughput, {c_max} clients: quorumfs / etcd",
                      ratio(kvv("quorumfs", "get", c_max, "rate"),
                            kvv("etcd", "get", c_max, "rate"))))

    print("\n== ratios (issue 6 targets)")
    summary = {"targets": [], "reference": []}
    for name, value, op, goal in targets:
        met = None if value is None else (value >= goal if op == ">=" else value <= goal)
        verdict = "-" if met is None else "met" if met else "MISSED"
        print(f"{name:<48}{fmt(value, '.3f'):>9}   target {op} {goal:<4} {verdict}")
        summary["targets"].append({"name": name, "ratio": value, "target": f"{op} {goal}",
                                   "met": met})
    print("reference:")
    for name, value in reference:
        print(f"{name:<48}{fmt(value, '.3f'):>9}")
        summary["reference"].append({"name": name, "ratio": value})
    summary["busy_host"] = bool(busy and max(busy) > 0.5)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

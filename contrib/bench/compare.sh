#!/bin/bash
# compare.sh: quorumfs side by side with what a user would pick instead, in one run on this
# machine, and the ratios that issue 6 sets as targets.
#
#   quorumfs   `quorumfs --local` (quorum-meta and three quorumd), mounted: kv_bench through
#              the router (no FUSE), fs_bench through the mount
#   etcd       three etcd members (Debian's etcd-server) on 127.0.0.1, data on disk:
#              etcd_bench.go, the same load as kv_bench over etcd's native gRPC client
#   ll         libfuse3's passthrough_ll (built from Debian's libfuse3-dev examples,
#              multi-threaded) over a local directory: the floor of FUSE itself; fs_bench
#   bindfs     bindfs --multithreaded over a local directory, a second reference; fs_bench
#   gluster    a GlusterFS replica-3 volume (Debian's glusterfs-server), three bricks on this
#              host, mounted with its FUSE client; fs_bench
#
# Every system runs alone, one after the other, with its state on the same disk: by default
# a scratch journaled ext4 on a loop device (the root filesystem of these machines has no
# journal, and there ext4 slows down creates that follow many unlinks). Everything the
# script starts is stopped and unmounted at the end, on failure and on Ctrl-C too. Needs
# root (mounts, loop device, apt-get); installs the Debian packages it lacks.
#
# usage: compare.sh [--build-dir DIR] [--out DIR] [--only LIST] [--quick] [options]
#   --build-dir DIR   the build tree with fs/quorumfs, contrib/bench/kv_bench, fs_bench
#                     (default: the current directory if it has them, else the source tree)
#   --out DIR         results: one JSON per benchmark, logs, summary.txt, summary.json
#                     (default /var/tmp/quorumfs-bench-DATE)
#   --only LIST       systems to run, comma-separated: quorumfs,etcd,ll,bindfs,gluster
#   --duration S      measured seconds per key-value phase (default 10)
#   --clients LIST    key-value client counts (default 1,64)
#   --keys N          key-value key space (default 10000)
#   --files N         files per filesystem run (default 2000)
#   --threads LIST    filesystem thread counts (default 1,8)
#   --quick           a smoke run: 2 s phases, 2000 keys, 300 files
#   --base DIR        where the systems keep their state (default /var/tmp/quorumfs-compare)
#   --no-scratch      use --base on the disk as it is, no loop-mounted ext4
#   --no-install      fail instead of installing missing packages
#   --keep            keep --base (data and logs of every system) at the end
#
# shellcheck disable=SC2317  # start_X, bench_X, stop_X are called by name ("start_$s")
# shellcheck disable=SC2064  # trap "stop_$s": $s is meant to expand when the trap is set
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=$(cd "$HERE/../.." && pwd)
BUILD_DIR="" OUT="" ONLY="quorumfs,etcd,ll,bindfs,gluster"
DURATION=10 WARMUP=1 CLIENTS=1,64 KEYS=10000 FILES=2000 THREADS=1,8
BASE=/var/tmp/quorumfs-compare SCRATCH=1 INSTALL=1 KEEP=0
GLUSTER_VOL=qfscompare

die() { echo "compare: $*" >&2; exit 1; }
say() { echo "== $*"; }
wanted() { [[ ,$ONLY, == *,$1,* ]]; }
usage() { sed -n '/^# usage:/,/^#   --keep/p' "$0" | sed 's/^# \{0,1\}//'; }


# ------------------------------------------------------------------ packages

ensure_packages() {
    local need=()
    command -v rsync >/dev/null || need+=(rsync)
    command -v python3 >/dev/null || need+=(python3)
    command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
    command -v fusermount3 >/dev/null || need+=(fuse3)
    if wanted etcd; then
        command -v etcd >/dev/null || need+=(etcd-server)
        command -v etcdctl >/dev/null || need+=(etcd-client)
        command -v go >/dev/null || need+=(golang-go)
        [[ -d /usr/share/gocode/src/go.etcd.io/etcd/clientv3 ]] || need+=(golang-etcd-server-dev)
    fi
    if wanted ll; then
        [[ -f /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c ]] || need+=(libfuse3-dev)
        command -v gcc >/dev/null || need+=(gcc)
        command -v pkg-config >/dev/null || need+=(pkg-config)
    fi
    if wanted bindfs; then command -v bindfs >/dev/null || need+=(bindfs); fi
    if wanted gluster; then
        command -v glusterd >/dev/null || need+=(glusterfs-server)
        [[ -x /sbin/mount.glusterfs || -x /usr/sbin/mount.glusterfs ]] || need+=(glusterfs-client)
    fi
    ((${#need[@]})) || return 0
    ((INSTALL)) || die "missing Debian packages: ${need[*]} (apt-get install -y ${need[*]})"
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${need[@]}" >"$OUT/apt.log" 2>&1; then
        apt-get update -q >>"$OUT/apt.log" 2>&1 || true
        apt-get install -y -q --no-install-recommends "${need[@]}" >>"$OUT/apt.log" 2>&1 ||
            die "apt-get install ${need[*]} failed: see $OUT/apt.log"
    fi
}

# -------------------------------------------------------------------- helpers

# alive PIDFILE: the pid in PIDFILE runs.
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid PID [SECONDS]: SIGTERM, up to SECONDS (10) for it to go, then SIGKILL.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < ${2:-10} * 4; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
}

# wait_gone PID SECONDS: 0 once PID has exited.
wait_gone() {
    local i
    for ((i = 0; i < $2 * 4; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.25; done
    return 1
}

# unmount MNT: the mount goes, lazily if it is busy.
unmount() {
    mountpoint -q "$1" 2>/dev/null || return 0
    umount "$1" 2>/dev/null || fusermount3 -u "$1" 2>/dev/null || umount -l "$1" 2>/dev/null || true
}

# wait_mounted MNT SECONDS
wait_mounted() {
    local i
    for ((i = 0; i < $2 * 4; i++)); do mountpoint -q "$1" && return 0; sleep 0.25; done
    return 1
}

free_ports() {   # free_ports N: N distinct free TCP ports on 127.0.0.1
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

fs_run() {   # fs_run NAME DIR: fs_bench on DIR, table on the terminal, JSON in OUT
    say "$1: fs_bench in $2 ($FILES files, threads $THREADS)"
    TMPDIR=$BASE/tmp "$FS_BENCH" --files "$FILES" --threads "$THREADS" --label "$1" \
        --json "$OUT/$1-fs.json" "$2" | tee "$OUT/$1-fs.txt"
}

# ------------------------------------------------------------------- quorumfs

start_quorumfs() {
    mkdir -p "$Q/data" "$Q/mnt"
    say "quorumfs: starting quorum-meta, three quorumd and the mount ($Q)"
    "$BUILD_DIR/fs/quorumfs" --local "$Q/data" "$Q/mnt" >"$OUT/quorumfs.out" 2>&1 ||
        { cat "$OUT/quorumfs.out" >&2; return 1; }
    wait_mounted "$Q/mnt" 30
}
bench_quorumfs() {
    local rc=0
    say "quorumfs: kv_bench (clients $CLIENTS, ${DURATION}s per phase)"
    # The router's warnings go to a log; the table to the terminal.
    "$KV_BENCH" -d "$Q/data" --clients "$CLIENTS" --duration "$DURATION" --warmup "$WARMUP" \
        --keys "$KEYS" --json "$OUT/quorumfs-kv.json" 2>"$OUT/kv_bench.log" |
        tee "$OUT/quorumfs-kv.txt" || { rc=1; tail -5 "$OUT/kv_bench.log" >&2; }
    # The filesystem figures are worth having even when the key-value run failed.
    fs_run quorumfs "$Q/mnt" || rc=1
    return "$rc"
}
stop_quorumfs() {
    local pid="" p
    [[ -s $Q/data/quorumfs.pid ]] && pid=$(cat "$Q/data/quorumfs.pid")
    # The unmount stops the daemon, which stops its cluster.
    unmount "$Q/mnt"
    if [[ -n $pid ]] && ! wait_gone "$pid" 30; then stop_pid "$pid" 15; fi
    # Children left behind by a daemon that was killed: their pids are in cluster.json.
    if [[ -s $Q/data/cluster.json ]]; then
        for p in $(python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))
print(" ".join(str(p) for p in [j.get("meta_pid")] + [n.get("pid") for n in j.get("nodes", [])] if p))' \
                "$Q/data/cluster.json" 2>/dev/null); do
            [[ $(ps -o comm= -p "$p" 2>/dev/null) == quorum* ]] && stop_pid "$p"
        done
    fi
    if [[ -d $Q/data ]]; then cp "$Q"/data/*.log "$OUT/" 2>/dev/null || true; fi
}

# ----------------------------------------------------------------------- etcd

start_etcd() {
    local ports cluster="" endpoints="" i name
    mkdir -p "$E"
    if [[ ! -x $ETCD_BENCH || $HERE/etcd_bench.go -nt $ETCD_BENCH ]]; then
        say "etcd: building etcd_bench (Go, from Debian's golang-etcd-server-dev, no download)"
        GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$BUILD_DIR/contrib/bench/.gocache \
            go build -o "$ETCD_BENCH" "$HERE/etcd_bench.go"
    fi
    read -r -a ports <<<"$(free_ports 6)"
    for i in 0 1 2; do
        cluster+=${cluster:+,}m$((i + 1))=http://127.0.0.1:${ports[$((2 * i + 1))]}
        endpoints+=${endpoints:+,}127.0.0.1:${ports[$((2 * i))]}
    done
    echo "$endpoints" >"$E/endpoints"
    say "etcd: starting three members at $endpoints ($E)"
    for i in 0 1 2; do
        name=m$((i + 1))
        # 8 GiB quota: no compaction during a run; default durability (WAL fdatasync).
        etcd --name "$name" --data-dir "$E/$name" \
            --listen-client-urls "http://127.0.0.1:${ports[$((2 * i))]}" \
            --advertise-client-urls "http://127.0.0.1:${ports[$((2 * i))]}" \
            --listen-peer-urls "http://127.0.0.1:${ports[$((2 * i + 1))]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${ports[$((2 * i + 1))]}" \
            --initial-cluster "$cluster" --initial-cluster-token qfscompare \
            --initial-cluster-state new --quota-backend-bytes 8589934592 \
            --logger zap --log-level warn >"$E/$name.log" 2>&1 &
        echo $! >"$E/$name.pid"
    done
    for ((i = 0; i < 120; i++)); do
        ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "etcd: not healthy after 60 s (logs in $E/m*.log)" >&2
    return 1
}
bench_etcd() {
    local pids
    pids=$(cat "$E"/m*.pid | paste -sd,)
    say "etcd: etcd_bench (clients $CLIENTS, ${DURATION}s per phase)"
    "$ETCD_BENCH" -endpoints "$(cat "$E/endpoints")" -pids "$pids" -clients "$CLIENTS" \
        -duration "$DURATION" -warmup "$WARMUP" -keys "$KEYS" -json "$OUT/etcd-kv.json" |
        tee "$OUT/etcd-kv.txt"
}
stop_etcd() {
    local f
    for f in "$E"/m*.pid; do
        [[ -s $f ]] || continue
        stop_pid "$(cat "$f")" 20
        rm -f "$f"
    done
    cp "$E"/m*.log "$OUT/" 2>/dev/null || true
}

# --------------------------------------------------------- FUSE passthroughs

start_ll() {
    local bin=$LL/passthrough_ll ex=/usr/share/doc/libfuse3-dev/examples
    mkdir -p "$LL/src" "$LL/mnt"
    # shellcheck disable=SC2046
    [[ -x $bin ]] || gcc -O2 -Wall -o "$bin" "$ex/passthrough_ll.c" $(pkg-config fuse3 --cflags --libs)
    say "ll: passthrough_ll (multi-threaded) of $LL/src at $LL/mnt"
    "$bin" -f -o source="$LL/src" "$LL/mnt" >"$LL/fuse.log" 2>&1 &
    echo $! >"$LL/fuse.pid"
    wait_mounted "$LL/mnt" 10
}
bench_ll() { fs_run ll "$LL/mnt"; }
stop_ll() {
    unmount "$LL/mnt"
    if [[ -s $LL/fuse.pid ]]; then stop_pid "$(cat "$LL/fuse.pid")" 10; rm -f "$LL/fuse.pid"; fi
}

start_bindfs() {
    mkdir -p "$BF/src" "$BF/mnt"
    say "bindfs: bindfs --multithreaded of $BF/src at $BF/mnt"
    bindfs -f --multithreaded "$BF/src" "$BF/mnt" >"$BF/fuse.log" 2>&1 &
    echo $! >"$BF/fuse.pid"
    wait_mounted "$BF/mnt" 10
}
bench_bindfs() { fs_run bindfs "$BF/mnt"; }
stop_bindfs() {
    unmount "$BF/mnt"
    if [[ -s $BF/fuse.pid ]]; then stop_pid "$(cat "$BF/fuse.pid")" 10; rm -f "$BF/fuse.pid"; fi
}

# -------------------------------------------------------------------- gluster

GL=(gluster --mode=script)
start_gluster() {
    local host addr i
    # Gluster refuses localhost and 127.0.0.1 as brick hosts: this host's name, which
    # must resolve to loopback, keeps every byte on 127.x.
    host=$(hostname)
    addr=$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }')
    [[ $addr == 127.* ]] || { echo "gluster: $host resolves to '${addr:-nothing}', not 127.x" >&2; return 1; }
    mkdir -p "$G"/brick{1,2,3} "$G/mnt"
    if "${GL[@]}" pool list >/dev/null 2>&1; then
        say "gluster: using the glusterd that runs already"
    else
        glusterd -p "$G/glusterd.pid" -L WARNING
        for ((i = 0; i < 60; i++)); do "${GL[@]}" pool list >/dev/null 2>&1 && break; sleep 0.5; done
        "${GL[@]}" pool list >/dev/null || { echo "gluster: glusterd does not answer" >&2; return 1; }
    fi
    say "gluster: replica-3 volume $GLUSTER_VOL, bricks $G/brick{1,2,3}, mounted at $G/mnt"
    # force: three bricks on one host
    "${GL[@]}" volume create "$GLUSTER_VOL" replica 3 \
        "$host:$G/brick1" "$host:$G/brick2" "$host:$G/brick3" force >/dev/null
    touch "$G/volume-created"
    "${GL[@]}" volume start "$GLUSTER_VOL" force >/dev/null
    mount -t glusterfs "$host:/$GLUSTER_VOL" "$G/mnt"
    for ((i = 0; i < 60; i++)); do stat "$G/mnt/." >/dev/null 2>&1 && return 0; sleep 0.5; done
    echo "gluster: the mount does not answer" >&2
    return 1
}
bench_gluster() { fs_run gluster "$G/mnt"; }
stop_gluster() {
    local f
    unmount "$G/mnt"
    if [[ -e $G/volume-created ]]; then
        "${GL[@]}" volume stop "$GLUSTER_VOL" force >/dev/null 2>&1 || true
        "${GL[@]}" volume delete "$GLUSTER_VOL" >/dev/null 2>&1 || true
        rm -f "$G/volume-created"
        # Brick and self-heal daemons glusterd started for our volume, if still there.
        for f in /var/run/gluster/vols/"$GLUSTER_VOL"/*.pid /var/run/gluster/shd/"$GLUSTER_VOL"/*.pid; do
            [[ -s $f ]] && stop_pid "$(cat "$f")" 10
            rm -f "$f"
        done
    fi
    if [[ -s $G/glusterd.pid ]]; then stop_pid "$(cat "$G/glusterd.pid")" 15; rm -f "$G/glusterd.pid"; fi
}

SYSTEMS=(quorumfs etcd ll bindfs gluster)
cleanup() {
    local rc=$? s
    trap - EXIT INT TERM
    set +e
    for s in "${SYSTEMS[@]}"; do "stop_$s" >/dev/null 2>&1; done
    if ((SCRATCH)) && mountpoint -q "$BASE"; then
        umount "$BASE" || umount -l "$BASE"
    fi
    if ((KEEP)); then
        echo "compare: state kept in $BASE$( ((SCRATCH)) && echo " (image $IMG, not mounted)")"
    else
        rm -f "$IMG"
        if ! mountpoint -q "$BASE"; then rm -rf "$BASE"; fi
    fi
    echo "compare: results in $OUT"
    exit "$rc"
}

# ------------------------------------------------------------------- the run

parse_args() {
    local s p
    while (($#)); do
        case $1 in
            --build-dir) BUILD_DIR=$2; shift ;;
            --out) OUT=$2; shift ;;
            --only) ONLY=$2; shift ;;
            --duration) DURATION=$2; shift ;;
            --clients) CLIENTS=$2; shift ;;
            --keys) KEYS=$2; shift ;;
            --files) FILES=$2; shift ;;
            --threads) THREADS=$2; shift ;;
            --quick) DURATION=2 WARMUP=0.5 KEYS=2000 FILES=300 ;;
            --base) BASE=$2; shift ;;
            --no-scratch) SCRATCH=0 ;;
            --no-install) INSTALL=0 ;;
            --keep) KEEP=1 ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; exit 2 ;;
        esac
        shift
    done

    for s in ${ONLY//,/ }; do
        case $s in quorumfs|etcd|ll|bindfs|gluster) ;; *) die "unknown system '$s' in --only" ;; esac
    done
    ((EUID == 0)) || die "run as root: it mounts filesystems and a loop device, and may apt-get install"

    if [[ -z $BUILD_DIR ]]; then
        if [[ -x ./fs/quorumfs && -x ./contrib/bench/kv_bench ]]; then BUILD_DIR=$PWD
        else BUILD_DIR=$SRC_DIR; fi
    fi
    BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
    for p in fs/quorumfs meta/quorum-meta cluster/quorumd contrib/bench/kv_bench \
             contrib/bench/fs_bench; do
        [[ -x $BUILD_DIR/$p ]] || die "$BUILD_DIR/$p is missing: build first (make, or make bench)"
    done
    KV_BENCH=$BUILD_DIR/contrib/bench/kv_bench
    FS_BENCH=$BUILD_DIR/contrib/bench/fs_bench
    OUT=${OUT:-/var/tmp/quorumfs-bench-$(date -u +%Y%m%d-%H%M%S)}
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
    IMG=$BASE.img
    # Where each system keeps its state.
    Q=$BASE/quorumfs E=$BASE/etcd LL=$BASE/ll BF=$BASE/bindfs G=$BASE/gluster
    ETCD_BENCH=$BUILD_DIR/contrib/bench/etcd_bench
}

main() {
    local s rc
    parse_args "$@"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    ensure_packages
    if mountpoint -q "$BASE"; then die "$BASE is mounted already: another run? (umount it first)"; fi
    rm -rf "$BASE"
    mkdir -p "$BASE"
    if ((SCRATCH)); then
        rm -f "$IMG"
        truncate -s 16G "$IMG"
        mkfs.ext4 -q -F "$IMG"
        mount -o loop "$IMG" "$BASE"
    fi
    mkdir -p "$BASE/tmp"
    {
        echo "time $(date -u +%Y-%m-%dT%H:%M:%SZ), host $(hostname), $(nproc) cpus, kernel $(uname -r)"
        echo "cpu $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
        echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "state on: $(findmnt -no SOURCE,FSTYPE,OPTIONS --target "$BASE" | head -1)"
        echo "quorumfs: $(git -C "$SRC_DIR" describe --always --dirty 2>/dev/null || echo '?'), build $BUILD_DIR"
    } | tee "$OUT/machine.txt"

    FAILED=()
    for s in "${SYSTEMS[@]}"; do
        wanted "$s" || continue
        # Each system in a subshell of its own, so that one failing does not end the run;
        # set -e holds there, and its stop runs whatever happens.
        set +e
        (
            set -e
            trap "stop_$s" EXIT
            trap 'exit 130' INT
            trap 'exit 143' TERM
            "start_$s"
            "bench_$s"
        )
        rc=$?
        set -e
        ((rc == 0)) || { FAILED+=("$s"); echo "compare: $s failed (exit $rc)" >&2; }
        ((rc != 130 && rc != 143)) || exit "$rc"
    done

    python3 "$HERE/compare_summary.py" "$OUT" | tee "$OUT/summary.txt"
    ((${#FAILED[@]} == 0)) || die "failed: ${FAILED[*]} (see the output above and $OUT)"
}

# One line, read whole before it runs: editing this file during a run cannot derail it.
main "$@"; exit $?

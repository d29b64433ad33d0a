#!/bin/bash
# quickstart.sh: from a fresh clone on Debian 12, as root, installs the
# Debian packages that are missing, builds quorumfs in the source tree and
# mounts a local cluster (one quorum-meta, three quorumd) at ./mnt with its
# state in ./data. Running it again is safe: it rebuilds what changed and
# leaves an existing mount alone.
#
# Usage: contrib/quickstart.sh        (from anywhere in the repository)

set -euo pipefail

PACKAGES=(build-essential autoconf automake pkg-config libfuse3-dev fuse3 libleveldb-dev
	  libnanomsg-dev libssl-dev libcmocka-dev libprotobuf-c-dev protobuf-c-compiler
	  libjansson-dev)

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

say() { printf '==> %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and mounts with FUSE)"

# Packages: apt-get only when something is missing.
missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	say "Debian packages: all present"
fi

[ -c /dev/fuse ] || die "/dev/fuse is missing: load the fuse module (modprobe fuse), or run \
the container with --device /dev/fuse --cap-add SYS_ADMIN"

# Build in the source tree; regenerate and configure only when needed.
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	say "autoreconf -fi"
	autoreconf -fi
fi
if [ ! -f Makefile ] || [ configure -nt config.status ]; then
	say "./configure"
	./configure --quiet
fi
say "make -j$(nproc)"
make -j"$(nproc)" >/dev/null

mkdir -p ./data
# The file system type of ./mnt when it is a mount point (read from the
# mount table: a stale FUSE mount fails every stat).
mounted=$(awk -v m="$top/mnt" \
	'$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo)
if [ -z "$mounted" ]; then
	mkdir -p ./mnt
	say "./fs/quorumfs --local ./data ./mnt"
	./fs/quorumfs --local ./data ./mnt
elif [ "$mounted" != fuse.quorumfs ] && [ "$mounted" != fuse ]; then
	die "./mnt is already a mount point of type $mounted"
elif ls ./mnt >/dev/null 2>&1; then
	say "./mnt is already mounted by quorumfs: nothing to start"
else
	# A stale mount left by a killed quorumfs: quorumfs cleans it up.
	say "./mnt is a stale mount; starting again: ./fs/quorumfs --local ./data ./mnt"
	./fs/quorumfs --local ./data ./mnt
fi

cat <<USAGE

quorumfs is mounted at $top/mnt (state and logs in $top/data).

  mkdir mnt/photos                      # a table
  echo hello > mnt/photos/greeting      # an item
  cat mnt/photos/greeting
  ls -l mnt/photos
  rsync -a ~/somedir/ mnt/photos/       # files only: tables have no subdirectories
  ./meta/quorumctl -d data status       # nodes, AZs, health
  ./meta/quorumctl -d data table describe photos

Logs: data/quorumfs.log, data/meta.log, data/node-a.log, data/node-b.log, data/node-c.log
Stop: fusermount3 -u mnt      (stops the metadata service and the three nodes too)
Start again later (every item is kept): ./fs/quorumfs --local ./data ./mnt
USAGE

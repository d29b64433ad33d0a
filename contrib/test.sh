#!/bin/bash
# test.sh: installs what is missing (Debian 12, as root), builds quorumfs
# with warnings as errors and runs `make check`: the cmocka unit tests and
# the end-to-end tests through real FUSE mounts. `.ci/run` calls it.
#
# Usage: contrib/test.sh [--sanitizers | --sanitizers-e2e] [--require-e2e] [--no-install]
#   --sanitizers   also build a copy of the tree with ASan and UBSan
#                  (./configure --enable-sanitizers) and run make check there
#                  (unit tests and simulations)
#   --sanitizers-e2e  the same, with the end-to-end suite too
#   --require-e2e  fail when the end-to-end tests were skipped (no root,
#                  no /dev/fuse); CI uses it
#   --no-install   do not call apt-get
# Environment: JOBS (default: nproc), SANITIZER_DIR (default:
# /tmp/quorumfs-sanitizers), E2E_PYTEST_ARGS (passed to pytest),
# QUORUM_E2E_TIMEOUT_S (the e2e request deadline: 10 s, 20 s with sanitizers).
# Exits non-zero on any failure, after printing the logs of failed tests.

set -euo pipefail

PACKAGES=(build-essential autoconf automake pkg-config libfuse3-dev fuse3 libleveldb-dev
	  libnanomsg-dev libssl-dev libcmocka-dev libprotobuf-c-dev protobuf-c-compiler
	  libjansson-dev
	  python3 python3-pytest rsync attr tar findutils coreutils procps stress-ng)

sanitizers=no
sanitizers_e2e=no
require_e2e=no
install=yes
for arg in "$@"; do
	case "$arg" in
	--sanitizers) sanitizers=yes;;
	--sanitizers-e2e) sanitizers=yes; sanitizers_e2e=yes;;
	--require-e2e) require_e2e=yes;;
	--no-install) install=no;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
	*) echo "test.sh: unknown argument $arg (see --help)" >&2; exit 2;;
	esac
done

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=${JOBS:-$(nproc)}
started=$(date +%s)

say() { printf '==> [%ds] %s\n' "$(($(date +%s) - started))" "$*"; }

install_missing() {
	local missing=() pkg status
	for pkg in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
		[ "$status" = installed ] || missing+=("$pkg")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		say "Debian packages: all present"
		return
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "test.sh: missing packages ${missing[*]}; run as root or install them" >&2
		exit 1
	fi
	say "installing ${missing[*]}"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Regenerates configure when missing or older than its sources.
bootstrap() {
	if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]
	then
		say "autoreconf -fi in $(pwd)"
		autoreconf -fi
	fi
}

# Configures (when the options changed), builds and runs make check in the
# current directory. $1: a label; the rest: configure options.
build_and_check() {
	local label=$1 rc=0
	shift
	if [ ! -f Makefile ] || [ configure -nt config.status ] ||
	   [ "$(./config.status --config)" != "$*" ]; then
		say "[$label] ./configure $*"
		./configure --quiet "$@"
	fi
	say "[$label] make -j$jobs"
	make -j"$jobs"
	say "[$label] make check"
	make -j"${check_jobs:-$jobs}" check VERBOSE=1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		say "[$label] make check FAILED ($rc); logs of the failed tests:"
		local log
		for log in $(find . -name '*.log' -path '*tests/*' -newer config.status); do
			if grep -qE '^(FAIL|ERROR)' "${log%.log}.trs" 2>/dev/null; then
				echo "-------- $log"
				tail -n 300 "$log"
			fi
		done
		return "$rc"
	fi
	if grep -q '^:test-result: SKIP' tests/e2e/run.trs 2>/dev/null; then
		say "[$label] WARNING: the end-to-end tests were SKIPPED:"
		cat tests/e2e/run.log
		[ "$require_e2e" = yes ] && [ -z "${QUORUM_E2E_SKIP:-}" ] &&
			{ echo "test.sh: --require-e2e given" >&2; return 1; }
	fi
	say "[$label] make check passed"
}

[ "$install" = yes ] && install_missing

bootstrap
build_and_check default --enable-werror

if [ "$sanitizers" = yes ]; then
	# The source tree is configured in place (quickstart.sh builds there),
	# which forbids a VPATH build: build the sanitizers in a copy.
	copy=${SANITIZER_DIR:-/tmp/quorumfs-sanitizers}
	say "[sanitizers] copying the tree to $copy"
	mkdir -p "$copy"
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -z --cached --others --exclude-standard |
			rsync -a --from0 --files-from=- . "$copy/"
	else
		make distdir distdir="$copy.dist" >/dev/null
		rsync -a "$copy.dist/" "$copy/"
		rm -rf "$copy.dist"
	fi
	cd "$copy"
	bootstrap
	# ASan and UBSan make every process two to three times slower, and a
	# 2-core machine runs three nodes, meta and the mount at once: the
	# end-to-end tests get a longer request deadline (and scale their own).
	export QUORUM_E2E_TIMEOUT_S=${QUORUM_E2E_TIMEOUT_S:-20}
	# Under the sanitizers on 2 cores, writes on a busy cluster stall past any
	# deadline (peers drop each other's messages when calls exceed 300 ms:
	# the README's Tests section and the open performance issue). Until that is
	# fixed the sanitizer pass runs the unit tests and simulations, among them
	# the real-process test_replication and test_router; --sanitizers-e2e adds
	# the end-to-end suite.
	[ "$sanitizers_e2e" = yes ] ||
		export QUORUM_E2E_SKIP="not in the sanitizer pass (see contrib/test.sh)"
	# One test at a time: test_router's 1 MiB put under the sanitizers misses its
	# deadline when a sanitized simulation shares the two cores with its cluster
	# (it passes alone); the same stall as above, not yet fixed.
	check_jobs=1
	build_and_check sanitizers --enable-werror --enable-sanitizers
	cd "$top"
fi

say "all tests passed"

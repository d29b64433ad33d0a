#!/bin/sh
# run.sh: the end-to-end tests of `make check` (automake TESTS entry).
# Mounts real `quorumfs --local` clusters with FUSE and runs the pytest
# suite of tests/e2e against the programs of the build directory.
#
# Skipped (exit 77) unless run as root with /dev/fuse, fusermount3 and
# pytest for /usr/bin/python3. Extra pytest arguments can be given in
# $E2E_PYTEST_ARGS (for example E2E_PYTEST_ARGS='-k rename').

skip() {
	echo "SKIP: $*"
	exit 77
}

[ -z "${QUORUM_E2E_SKIP:-}" ] || skip "$QUORUM_E2E_SKIP"
[ "$(id -u)" = 0 ] || skip "end-to-end tests mount FUSE file systems: run as root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
command -v fusermount3 >/dev/null 2>&1 || skip "no fusermount3 (apt-get install fuse3)"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
/usr/bin/python3 -c 'import pytest' 2>/dev/null ||
	skip "no pytest for /usr/bin/python3 (apt-get install python3-pytest)"

# automake runs us from the build directory and exports $srcdir.
builddir=$(pwd)
srcdir=${srcdir:-$(dirname "$0")/../..}
srcdir=$(cd "$srcdir" && pwd) || exit 99

for prog in fs/quorumfs meta/quorum-meta meta/quorumctl cluster/quorumd; do
	if [ ! -x "$builddir/$prog" ]; then
		echo "ERROR: $builddir/$prog is not built"
		exit 99
	fi
done

export QUORUMFS_BUILDDIR="$builddir"
# Keep the source tree clean (it may be read-only under distcheck).
export PYTHONDONTWRITEBYTECODE=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

cd "$srcdir" || exit 99
# E2E_PYTEST_ARGS is parsed like a shell command line, so quoting works:
# E2E_PYTEST_ARGS="-k 'rename or xattr'".
eval "set -- $E2E_PYTEST_ARGS"
# --tb=short: the failing line and its message, not the whole test source,
# so that they survive a log cut to its head and tail.
/usr/bin/python3 -m pytest -v -p no:cacheprovider --tb=short -rfEs "$@" tests/e2e
rc=$?
# 5: no test was collected, which must never pass silently.
[ "$rc" -eq 5 ] && { echo "ERROR: pytest collected no test"; rc=1; }
exit "$rc"

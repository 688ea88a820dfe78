#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Checks the shipped systemd unit and journal catalog:
#   - "systemd-analyze verify" accepts the unit, without warnings about it;
#   - "systemd-analyze security --offline=yes" rates it at an exposure of at most 1.5;
#   - the catalog parses ("journalctl --update-catalog" into a scratch root) and
#     "journalctl --list-catalog" lists the 12 MESSAGE_IDs of SPEC §6, §8 and §9, defined by
#     provwatch.
#
# Usage: test-unit.sh [UNIT] [BUILD_DIR | BINARY]
#   UNIT       the configured unit (BUILD_DIR/systemd/provwatch.service). When missing or
#              empty: BUILD_DIR/systemd/provwatch.service, else the template next to this
#              script with @bindir@ and @sysconfdir@ filled in.
#   BUILD_DIR  a meson build directory: the unit and src/provwatch are looked for there.
#   BINARY     the provwatch binary to put in ExecStart= for verify, which insists that the
#              command exists. Without one, ExecStart= runs /bin/true for the check.
# PROVWATCH_CATALOG overrides the catalog (default: systemd/provwatch.catalog in the source).
#
# Exit status: 0 pass, 1 fail, 77 skip (systemd tools missing or too old).

set -u

max_exposure=1.5
message_ids="
bf2330ea95c54fa49007020cb6e9d4c3
a7f82c6270604890a88e115ceceb40be
14f36a7dd41a4f1fadeaa7da5b2b6d5e
60261fa439a94750832e641382fb7cbd
457a2aae1c2649c3b35b315d9f21aa04
9f6401e29ab34fa58a166f2524d21044
f75a4c18c8bc4bdfb7a63e572c4941a0
b4a896983544420b9c3844541d16719f
1b9a567f1b054a309e6973d14f08cb02
72cf64fa0c5d4857ade3893b87143305
1e7e721cd05349ccbbb1bcb900514e8a
a01feaffc91f4f0bae59061c924aa064
"
n_ids=$(echo "$message_ids" | grep -c .)

srcdir=$(cd "$(dirname "$0")/.." && pwd)
unit=${1:-}
where=${2:-}
catalog=${PROVWATCH_CATALOG:-$srcdir/systemd/provwatch.catalog}

skip() {
        echo "SKIP: $*"
        exit 77
}

failed=0
fail() {
        echo "FAIL: $*"
        failed=1
}

command -v systemd-analyze >/dev/null 2>&1 || skip "systemd-analyze not found"
version=$(systemd-analyze --version | awk 'NR == 1 { print $2 }')
case $version in
''|*[!0-9]*) skip "cannot tell the version of systemd-analyze ('$version')" ;;
esac
# "security --offline=" appeared in systemd 250.
[ "$version" -ge 250 ] || skip "systemd-analyze $version has no 'security --offline=' (needs 250)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-unit.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# Find the unit and the binary.
binary=
if [ -n "$where" ] && [ -d "$where" ]; then
        [ -n "$unit" ] || unit=$where/systemd/provwatch.service
        [ -x "$where/src/provwatch" ] && binary=$(cd "$where/src" && pwd)/provwatch
elif [ -n "$where" ] && [ -f "$where" ] && [ -x "$where" ]; then
        binary=$(cd "$(dirname "$where")" && pwd)/$(basename "$where")
elif [ -n "$where" ]; then
        echo "FAIL: '$where' is neither a build directory nor an executable"
        exit 1
fi
[ -n "$unit" ] && [ -d "$unit" ] && unit=$unit/systemd/provwatch.service
if [ -z "$unit" ] || [ ! -f "$unit" ]; then
        [ -n "$unit" ] && echo "note: no unit at '$unit', using the template"
        unit=$srcdir/systemd/provwatch.service
fi
[ -f "$unit" ] || { echo "FAIL: no unit file found"; exit 1; }
if [ -z "$binary" ]; then
        binary=/bin/true
        echo "note: no built provwatch binary given, verifying with ExecStart=/bin/true"
fi

# The file must be called provwatch.service: systemd takes the unit name from it.
sed -e 's|@bindir@|/usr/bin|g' -e 's|@sysconfdir@|/etc|g' \
    -e "s|^ExecStart=[^ ]*|ExecStart=$binary|" "$unit" > "$tmp/provwatch.service" || exit 1
grep -q '@[a-z_]*@' "$tmp/provwatch.service" && fail "unsubstituted @variables@ left in the unit"
echo "unit: $unit (ExecStart=$binary)"

# verify: fails on errors, only warns about unknown keys and the like, so any message that
# names the unit file counts as a failure too. Man pages may not be installed yet: --man=no.
out=$(systemd-analyze verify --man=no "$tmp/provwatch.service" 2>&1)
rc=$?
[ -n "$out" ] && echo "$out"
if [ $rc -ne 0 ]; then
        fail "systemd-analyze verify exited $rc"
elif echo "$out" | grep -q "provwatch.service"; then
        fail "systemd-analyze verify complains about the unit"
else
        echo "ok: systemd-analyze verify"
fi

out=$(LC_ALL=C systemd-analyze security --offline=yes --no-pager "$tmp/provwatch.service" 2>&1)
rc=$?
exposure=$(echo "$out" | sed -n 's/.*Overall exposure level for [^:]*: *\([0-9][0-9.]*\).*/\1/p')
if [ $rc -ne 0 ] || [ -z "$exposure" ]; then
        echo "$out"
        fail "systemd-analyze security --offline=yes exited $rc without an exposure level"
elif awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
        echo "ok: exposure $exposure (at most $max_exposure)"
else
        echo "$out" | grep -E '^✗|^x|exposure' || echo "$out"
        fail "exposure $exposure is above $max_exposure"
fi

# Catalog.
if ! command -v journalctl >/dev/null 2>&1; then
        [ $failed -eq 0 ] || exit 1
        skip "journalctl not found, the catalog is not checked (the unit checks passed)"
fi
[ -f "$catalog" ] || { fail "no catalog at '$catalog'"; exit 1; }
mkdir -p "$tmp/root/usr/lib/systemd/catalog" &&
        cp "$catalog" "$tmp/root/usr/lib/systemd/catalog/provwatch.catalog" || exit 1
out=$(journalctl --root="$tmp/root" --update-catalog 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
        echo "$out"
        fail "journalctl --update-catalog exited $rc or complained about $catalog"
fi
list=$(journalctl --root="$tmp/root" --list-catalog 2>&1)
missing=0
for id in $message_ids; do
        if ! echo "$list" | grep -q "^$id provwatch: "; then
                fail "catalog entry $id missing (or not Defined-By: provwatch)"
                missing=1
        fi
done
n=$(echo "$list" | grep -c '^[0-9a-f]\{32\} ')
[ "$n" -eq "$n_ids" ] || fail "catalog defines $n entries, expected $n_ids"
[ $missing -eq 0 ] && [ "$n" -eq "$n_ids" ] && echo "ok: catalog lists the $n_ids MESSAGE_IDs"

[ $failed -eq 0 ] && echo "PASS" || echo "FAILED"
exit $failed

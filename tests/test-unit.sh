#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Checks the shipped systemd units and journal catalog:
#   - "systemd-analyze verify" accepts provwatch.service and the template unit
#     provwatch@.service, without warnings about them;
#   - "systemd-analyze security --offline=yes" rates each at an exposure of at most 1.5;
#   - the template runs /etc/provwatch/%i.conf with StateDirectory=provwatch/%i, the three
#     per-instance credentials and PROVWATCH_INSTANCE=%i, and is sandboxed exactly like the
#     plain unit (every other setting is the same);
#   - the catalog parses ("journalctl --update-catalog" into a scratch root) and
#     "journalctl --list-catalog" lists the 12 MESSAGE_IDs of SPEC §6, §8 and §9, defined by
#     provwatch.
#
# Usage: test-unit.sh [ARG...], each ARG one of (in any order; empty ones are ignored):
#   UNIT       a configured unit, provwatch.service or provwatch@.service (told apart by
#              their names). A unit not given is looked for in BUILD_DIR/systemd/, else the
#              source file next to this script is used with @bindir@ and @sysconfdir@
#              filled in.
#   BUILD_DIR  a meson build directory: the units and src/provwatch are looked for there.
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

abspath() {
        echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
}

# Sort out the arguments.
plain='' template='' binary='' builddir=''
for arg in "$@"; do
        case $arg in
        '') ;;
        *provwatch.service) plain=$arg ;;
        *provwatch@.service) template=$arg ;;
        *)
                if [ -d "$arg" ]; then
                        builddir=$arg
                elif [ -f "$arg" ] && [ -x "$arg" ]; then
                        binary=$(abspath "$arg")
                else
                        echo "FAIL: '$arg' is neither a unit, a build directory nor an executable"
                        exit 1
                fi
                ;;
        esac
done
if [ -n "$builddir" ]; then
        [ -n "$plain" ] || plain=$builddir/systemd/provwatch.service
        [ -n "$template" ] || template=$builddir/systemd/provwatch@.service
        [ -n "$binary" ] || { [ -x "$builddir/src/provwatch" ] && binary=$(abspath "$builddir/src/provwatch"); }
fi
if [ -z "$binary" ]; then
        binary=/bin/true
        echo "note: no built provwatch binary given, verifying with ExecStart=/bin/true"
fi

# Puts the unit NAME, configured and with ExecStart= running $binary, into $tmp/NAME.
# The file name matters: systemd takes the unit name (and whether it is a template) from it.
prepare() { # name, given file (may be empty)
        src=$2
        if [ -z "$src" ] || [ ! -f "$src" ]; then
                [ -n "$src" ] && echo "note: no unit at '$src', using the source file"
                src=$srcdir/systemd/$1
        fi
        [ -f "$src" ] || { fail "no unit file $1 found"; return 1; }
        sed -e 's|@bindir@|/usr/bin|g' -e 's|@sysconfdir@|/etc|g' \
            -e "s|^ExecStart=[^ ]*|ExecStart=$binary|" "$src" > "$tmp/$1" || return 1
        if grep -q '@[a-z_]*@' "$tmp/$1"; then
                fail "unsubstituted @variables@ left in $1"
                return 1
        fi
        echo "$1: $src (ExecStart=$binary)"
}

# verify fails on errors but only warns about unknown keys and the like, so any message that
# names the unit file counts as a failure too. Man pages may not be installed yet: --man=no.
# Then the exposure, which must not exceed $max_exposure.
check_unit() { # name
        out=$(systemd-analyze verify --man=no "$tmp/$1" 2>&1)
        rc=$?
        [ -n "$out" ] && echo "$out"
        if [ $rc -ne 0 ]; then
                fail "$1: systemd-analyze verify exited $rc"
        elif echo "$out" | grep -qF "$1"; then
                fail "$1: systemd-analyze verify complains about the unit"
        else
                echo "ok: $1: systemd-analyze verify"
        fi

        out=$(LC_ALL=C systemd-analyze security --offline=yes --no-pager "$tmp/$1" 2>&1)
        rc=$?
        exposure=$(echo "$out" | sed -n 's/.*Overall exposure level for [^:]*: *\([0-9][0-9.]*\).*/\1/p')
        if [ $rc -ne 0 ] || [ -z "$exposure" ]; then
                echo "$out"
                fail "$1: systemd-analyze security --offline=yes exited $rc without an exposure level"
        elif awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
                echo "ok: $1: exposure $exposure (at most $max_exposure)"
        else
                echo "$out" | grep -E '^✗|^x|exposure' || echo "$out"
                fail "$1: exposure $exposure is above $max_exposure"
        fi
}

# The settings (Key=value lines) of a unit, comments and blank lines left out.
settings() { # file
        grep -E '^[A-Za-z]+=' "$1"
}

# Checks that the template has exactly the lines in $want for the key, and nothing else.
expect_key() { # key, wanted lines (newline-separated)
        got=$(grep "^$1=" "$tmp/provwatch@.service")
        if [ "$got" = "$2" ]; then
                echo "ok: provwatch@.service: $(echo "$got" | paste -s -d ' ')"
        else
                fail "provwatch@.service: expected
$2
got
${got:-(no $1=)}"
        fi
}

if prepare provwatch.service "$plain"; then
        check_unit provwatch.service
fi
if prepare provwatch@.service "$template"; then
        check_unit provwatch@.service

        # The same command as the plain unit's, with the instance's configuration file (the
        # directory depends on the prefix the build was configured with).
        conf=$(sed -n 's|^ExecStart=[^ ]* -c \(.*\)/provwatch\.conf run$|\1|p' "$tmp/provwatch.service" 2>/dev/null)
        expect_key ExecStart "ExecStart=$binary -c ${conf:-/etc/provwatch}/%i.conf run"
        expect_key StateDirectory "StateDirectory=provwatch/%i"
        expect_key Environment "Environment=PROVWATCH_INSTANCE=%i"
        expect_key LoadCredential "LoadCredential=client-secret:provwatch-%i.client-secret
LoadCredential=refresh-token:provwatch-%i.refresh-token
LoadCredential=webhook-secret:provwatch-%i.webhook-secret
LoadCredential=webhook-url:provwatch-%i.webhook-url"

        # Hardened exactly like the plain unit: apart from what makes an instance, every
        # setting is the same in both.
        if [ -f "$tmp/provwatch.service" ]; then
                per_instance='^(Description|ExecStart|Environment|StateDirectory|LoadCredential|Conflicts)='
                settings "$tmp/provwatch.service" | grep -Ev "$per_instance" | sort > "$tmp/plain.settings"
                settings "$tmp/provwatch@.service" | grep -Ev "$per_instance" | sort > "$tmp/template.settings"
                if diff=$(diff "$tmp/plain.settings" "$tmp/template.settings"); then
                        echo "ok: provwatch@.service has the settings and sandbox of provwatch.service"
                else
                        echo "$diff"
                        fail "provwatch@.service differs from provwatch.service (< plain, > template)"
                fi
        fi
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

#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Installs provwatch as a distribution package would (meson setup --prefix=/usr, meson install
# --destdir) into a scratch directory and checks the tree:
#   - usr/bin/provwatch, executable, reporting the project version;
#   - the unit and the template unit provwatch@.service in systemd's unit directory (pkg-config
#     systemd systemdsystemunitdir), with their ExecStart= pointing at the installed binary and
#     config;
#   - the journal catalog in systemd's catalogdir;
#   - etc/provwatch/provwatch.conf with every key commented out, and etc/provwatch/orders.d/;
#   - the man pages provwatch.8 and provwatch.conf.5 (when scdoc is there);
#   - the installed provwatch.conf is rejected as it is (required keys missing) and accepted by
#     "provwatch check-config" once the required keys are filled in.
#
# Usage: test-install.sh [SOURCE_DIR]   (default: the directory above this script)
# Exit status: 0 pass, 1 fail, 77 skip (meson or ninja missing).

set -u

srcdir=${1:-$(cd "$(dirname "$0")/.." && pwd)}
failures=0

skip() {
    echo "SKIP: $*"
    exit 77
}
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
ok() {
    echo "ok   $*"
}

command -v meson >/dev/null 2>&1 || skip "meson is not installed"
command -v ninja >/dev/null 2>&1 || command -v samu >/dev/null 2>&1 || skip "ninja is not installed"
[ -f "$srcdir/meson.build" ] || { echo "FAIL: $srcdir is not the provwatch source directory"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/provwatch-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP
build=$tmp/build
dest=$tmp/dest

# The build is bounded by meson test's timeout; the tests and fuzzers are not needed here.
if ! meson setup "$build" "$srcdir" --prefix=/usr -Dtests=false -Dfuzz=false >"$tmp/setup.log" 2>&1; then
    cat "$tmp/setup.log"
    echo "FAIL: meson setup"
    exit 1
fi
if ! meson install -C "$build" --destdir "$dest" >"$tmp/install.log" 2>&1; then
    tail -n 60 "$tmp/install.log"
    echo "FAIL: meson install"
    exit 1
fi
echo "installed files:"
(cd "$dest" && find . \( -type f -o -type d -empty \) | sort | sed 's/^\./    /')

# ---- the binary ----
bin=$dest/usr/bin/provwatch
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$srcdir/meson.build" | head -n 1)
if [ -f "$bin" ] && [ -x "$bin" ]; then
    v=$("$bin" --version 2>&1)
    if [ "$v" = "provwatch $version" ]; then
        ok "usr/bin/provwatch is executable ($v)"
    else
        fail "usr/bin/provwatch --version says '$v', expected 'provwatch $version'"
    fi
else
    fail "usr/bin/provwatch is missing or not executable"
fi

# ---- systemd unit and catalog ----
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists systemd; then
    unitdir=$(pkg-config --variable=systemdsystemunitdir systemd)
    catalogdir=$(pkg-config --variable=catalogdir systemd)
else
    echo "note: no pkg-config file for systemd; expecting the prefix's default directories"
    unitdir=/usr/lib/systemd/system
    catalogdir=/usr/lib/systemd/catalog
fi
unit=$dest$unitdir/provwatch.service
if [ -f "$unit" ]; then
    ok "unit installed in $unitdir"
    exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
    if [ "$exec_start" = "/usr/bin/provwatch -c /etc/provwatch/provwatch.conf run" ]; then
        ok "ExecStart=$exec_start"
    else
        fail "ExecStart= is '$exec_start', expected the installed binary and config"
    fi
    if grep -n '@[a-z]*@' "$unit"; then
        fail "the installed unit has unreplaced @placeholders@"
    fi
else
    fail "no provwatch.service in $unitdir (under DESTDIR); found: $(find "$dest" -name provwatch.service)"
fi
template=$dest$unitdir/provwatch@.service
if [ -f "$template" ]; then
    exec_start=$(sed -n 's/^ExecStart=//p' "$template")
    if [ "$exec_start" = "/usr/bin/provwatch -c /etc/provwatch/%i.conf run" ]; then
        ok "template unit provwatch@.service installed in $unitdir (ExecStart=$exec_start)"
    else
        fail "provwatch@.service: ExecStart= is '$exec_start', expected the installed binary and /etc/provwatch/%i.conf"
    fi
else
    fail "no provwatch@.service in $unitdir (under DESTDIR)"
fi
catalog=$dest$catalogdir/provwatch.catalog
if [ -f "$catalog" ] && cmp -s "$catalog" "$srcdir/systemd/provwatch.catalog"; then
    ok "catalog installed in $catalogdir"
else
    fail "no provwatch.catalog (identical to systemd/provwatch.catalog) in $catalogdir (under DESTDIR)"
fi

# ---- configuration ----
conf=$dest/etc/provwatch/provwatch.conf
if [ -f "$conf" ] && cmp -s "$conf" "$srcdir/conf/provwatch.conf"; then
    ok "etc/provwatch/provwatch.conf installed"
    # every key commented out: only comments, blank lines and section headers are left
    keys=$(grep -v -e '^[[:space:]]*$' -e '^[[:space:]]*[#;]' -e '^\[[a-z -]*\][[:space:]]*$' "$conf")
    if [ -n "$keys" ]; then
        fail "the installed provwatch.conf sets keys: $keys"
    fi
else
    fail "etc/provwatch/provwatch.conf is missing or differs from conf/provwatch.conf"
fi
if [ -d "$dest/etc/provwatch/orders.d" ]; then
    ok "etc/provwatch/orders.d/ installed"
else
    fail "etc/provwatch/orders.d/ is missing"
fi

# ---- man pages ----
if command -v scdoc >/dev/null 2>&1; then
    for page in man8/provwatch.8 man5/provwatch.conf.5; do
        f=$dest/usr/share/man/$page
        name=${page#*/}
        if [ -s "$f" ] && grep -q "^\.TH \"${name%.*}\" \"${name##*.}\"" "$f"; then
            ok "usr/share/man/$page"
        else
            fail "usr/share/man/$page is missing or not a man page of section ${name##*.}"
        fi
    done
else
    echo "skip: scdoc is not installed, so the man pages were not built; not checking them"
fi

# ---- the installed configuration with the required keys filled in ----
if [ -x "$bin" ] && [ -f "$conf" ]; then
    cp "$conf" "$tmp/provwatch.conf"
    out=$(env -u CREDENTIALS_DIRECTORY -u STATE_DIRECTORY "$bin" -c "$tmp/provwatch.conf" check-config 2>&1)
    rc=$?
    if [ $rc -eq 78 ] && printf '%s\n' "$out" | grep -q 'tenant-id is required'; then
        ok "as shipped, check-config asks for the required keys (exit 78)"
    else
        fail "check-config of the shipped file: exit $rc, expected 78 naming tenant-id: $out"
    fi

    echo "bearer-token-for-the-test" >"$tmp/token"
    chmod 600 "$tmp/token"
    # The shipped file may not end with a newline; the orders go to the installed orders.d,
    # which holds only a sample that must not be read.
    cat >>"$tmp/provwatch.conf" <<EOF

[partner-center]
auth = token-file
token-file = $tmp/token

[orders]
orders-dir = $dest/etc/provwatch/orders.d
EOF
    out=$(env -u CREDENTIALS_DIRECTORY -u STATE_DIRECTORY "$bin" -c "$tmp/provwatch.conf" check-config 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q '^  auth: *token-file$' &&
        printf '%s\n' "$out" | grep -q '^  orders: *0$'; then
        ok "check-config accepts the shipped file with auth = token-file filled in"
    else
        fail "check-config with the required keys: exit $rc: $out"
    fi
    if printf '%s\n' "$out" | grep -q 'bearer-token-for-the-test'; then
        fail "check-config printed the token"
    fi
fi

if [ $failures -gt 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
exit 0

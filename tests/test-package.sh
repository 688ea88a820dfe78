#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Builds the Debian package with tools/package (which fails on lintian errors and warnings)
# and checks the result:
#   - the file list: usr/bin/provwatch, provwatch.service and provwatch@.service, the catalog
#     in usr/lib/systemd/catalog/ (the directory systemd's dpkg trigger watches to run
#     "journalctl --update-catalog"), etc/provwatch/provwatch.conf, etc/provwatch/orders.d/,
#     the man pages provwatch.8.gz and provwatch.conf.5.gz;
#   - conffiles lists etc/provwatch/provwatch.conf;
#   - the package never starts provwatch: no maintainer script asks for a start, and run
#     against stand-ins for deb-systemd-helper, deb-systemd-invoke and systemctl, a first
#     installation enables provwatch.service (not the template) and starts nothing, an upgrade
#     only try-restarts (what is running), and removal stops the service and its instances;
#   - as root, installed into a scratch root with dpkg --root (maintainer scripts included):
#     provwatch.conf is a registered conffile, provwatch.service is enabled and the template is
#     not; a purge removes files, conffiles, enablement and state;
#   - the packaged binary's --version, and the package's upstream version, are meson.build's.
#
# Usage: test-package.sh [SOURCE_DIR]   (default: the directory above this script)
# Exit status: 0 pass, 1 fail, 77 skip (dpkg-buildpackage is not installed).

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

command -v dpkg-buildpackage >/dev/null 2>&1 ||
    skip "dpkg-buildpackage is not installed (tools/setup installs dpkg-dev)"
[ -x "$srcdir/tools/package" ] || { echo "FAIL: no tools/package in $srcdir"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/provwatch-package-test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

# The suite has already run the tests the package build would run; no debug symbols either.
if ! DEB_BUILD_OPTIONS="nocheck noautodbgsym parallel=2" "$srcdir/tools/package" "$tmp/out" >"$tmp/package.log" 2>&1; then
    cat "$tmp/package.log"
    echo "FAIL: tools/package (the package build or lintian) failed"
    exit 1
fi
sed -n '/^tools\/package: lintian/,$p' "$tmp/package.log"
deb=
for f in "$tmp"/out/provwatch_*.deb; do [ -f "$f" ] && deb=$f; done
[ -n "$deb" ] || { cat "$tmp/package.log"; echo "FAIL: tools/package made no provwatch_*.deb"; exit 1; }
ok "built $(basename "$deb"), lintian without errors or warnings"

# ---- the file list ----
dpkg-deb -c "$deb" | awk '{ print $NF }' | sed 's|^\./|/|' >"$tmp/files"
has() { # path as dpkg-deb lists it
    grep -qx "$1" "$tmp/files"
}
for f in /usr/bin/provwatch /usr/lib/systemd/catalog/provwatch.catalog \
    /etc/provwatch/provwatch.conf /etc/provwatch/orders.d/ \
    /usr/share/man/man8/provwatch.8.gz /usr/share/man/man5/provwatch.conf.5.gz; do
    if has "$f"; then ok "ships $f"; else fail "$f is not in the package"; fi
done
# The unit directory is /lib/systemd/system up to Debian 12, /usr/lib/systemd/system later.
for u in provwatch.service provwatch@.service; do
    if has "/lib/systemd/system/$u" || has "/usr/lib/systemd/system/$u"; then
        ok "ships the unit $u"
    else
        fail "the unit $u is not in the package"
    fi
done

# ---- conffiles ----
dpkg-deb --ctrl-tarfile "$deb" | tar -xf - -C "$tmp" ./conffiles 2>/dev/null || : >"$tmp/conffiles"
if grep -qx /etc/provwatch/provwatch.conf "$tmp/conffiles"; then
    ok "/etc/provwatch/provwatch.conf is a conffile"
else
    fail "/etc/provwatch/provwatch.conf is not in conffiles: $(cat "$tmp/conffiles")"
fi

# ---- the maintainer scripts never start provwatch ----
mkdir "$tmp/ctrl"
dpkg-deb -e "$deb" "$tmp/ctrl"
# A start can be spelt "deb-systemd-invoke start", "systemctl start|restart|enable --now", or
# go through debhelper's "_dh_action=start" (used when a unit is started on installation).
if grep -nE '(deb-systemd-invoke|systemctl)( +--?[a-z-]+)* +(start|restart|reload-or-restart)( |$)|enable +--now|_dh_action=start' \
    "$tmp"/ctrl/*inst "$tmp"/ctrl/*rm 2>/dev/null; then
    fail "a maintainer script starts or restarts a unit unconditionally (lines above)"
else
    ok "no maintainer script starts or restarts a unit (only try-restart)"
fi

# Run the scripts with stand-ins that record their calls. The scripts act only when systemd
# runs (/run/systemd/system), which a build host may not: point them at a directory here.
mkdir -p "$tmp/bin" "$tmp/run-systemd"
for tool in deb-systemd-helper deb-systemd-invoke systemctl; do
    printf '#!/bin/sh\necho "%s $*" >>"%s/calls"\nexit 0\n' "$tool" "$tmp" >"$tmp/bin/$tool"
    chmod +x "$tmp/bin/$tool"
done
run_script() { # script, arguments...
    script=$1; shift
    : >"$tmp/calls"
    [ -f "$tmp/ctrl/$script" ] || return 0
    sed "s|/run/systemd/system|$tmp/run-systemd|g" "$tmp/ctrl/$script" >"$tmp/$script.sh"
    if ! env -u DPKG_ROOT PATH="$tmp/bin:$PATH" sh -e "$tmp/$script.sh" "$@" >"$tmp/script.log" 2>&1; then
        cat "$tmp/script.log"
        fail "$script $* exited with an error"
    fi
}
# The unit actions: the deb-systemd-invoke and systemctl calls but daemon-reload.
actions() {
    grep -E '^(deb-systemd-invoke|systemctl) ' "$tmp/calls" | grep -v 'daemon-reload'
}

run_script postinst configure
if grep -qx 'deb-systemd-helper enable provwatch.service' "$tmp/calls"; then
    ok "first installation enables provwatch.service"
else
    fail "first installation does not enable provwatch.service: $(cat "$tmp/calls")"
fi
if grep -q '^deb-systemd-helper .*enable.*provwatch@' "$tmp/calls"; then
    fail "first installation enables the template unit: $(cat "$tmp/calls")"
fi
if [ -n "$(actions)" ]; then
    fail "first installation acts on units: $(actions)"
else
    ok "first installation starts nothing"
fi

run_script postinst configure 0.1.0-1
if [ -n "$(actions)" ] && ! actions | grep -qv '^deb-systemd-invoke try-restart ' &&
    actions | grep -q 'try-restart provwatch.service' && actions | grep -q 'try-restart provwatch@\*.service'; then
    ok "an upgrade try-restarts provwatch.service and its running instances, nothing else"
else
    fail "an upgrade should only try-restart provwatch.service and provwatch@*.service: $(actions)"
fi

run_script prerm remove
if actions | grep -q '^deb-systemd-invoke stop provwatch.service provwatch@\*.service$'; then
    ok "removal stops provwatch.service and its instances"
else
    fail "removal does not stop provwatch.service and provwatch@*.service: $(actions)"
fi
run_script prerm upgrade 0.2.1-1
[ -z "$(actions)" ] || fail "prerm upgrade acts on units (the upgrade restarts afterwards): $(actions)"

# ---- installed into a scratch root, maintainer scripts included ----
# dpkg --root runs the scripts on this host with DPKG_ROOT set (they and deb-systemd-helper
# act inside it and never on running units); the package's dependencies are not in the root.
if [ "$(id -u)" -ne 0 ]; then
    echo "note: not root, so the package is not installed into a scratch root with dpkg --root"
else
    r=$tmp/dpkg-root
    mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates"
    : >"$r/var/lib/dpkg/status"
    rdpkg() {
        dpkg --root="$r" --force-script-chrootless --force-depends "$@" >"$tmp/dpkg.log" 2>&1 ||
            { cat "$tmp/dpkg.log"; fail "dpkg --root $*"; }
    }
    wants=$r/etc/systemd/system/multi-user.target.wants
    rdpkg -i "$deb"
    if dpkg --root="$r" -s provwatch 2>/dev/null | grep -q '^ /etc/provwatch/provwatch.conf '; then
        ok "dpkg --root -i: /etc/provwatch/provwatch.conf registered as a conffile"
    else
        fail "dpkg --root -i: provwatch.conf is not a registered conffile"
    fi
    if [ -L "$wants/provwatch.service" ] && [ -z "$(find "$wants" -name 'provwatch@*')" ]; then
        ok "dpkg --root -i: provwatch.service enabled, the template not"
    else
        fail "dpkg --root -i: expected multi-user.target.wants/provwatch.service only: $(ls "$wants" 2>&1)"
    fi
    mkdir -p "$r/var/lib/private/provwatch"
    rdpkg --purge provwatch
    if [ ! -e "$wants/provwatch.service" ] && [ ! -e "$r/etc/provwatch/provwatch.conf" ] &&
        [ ! -e "$r/var/lib/private/provwatch" ] && [ ! -e "$r/usr/bin/provwatch" ]; then
        ok "dpkg --root --purge removes the files, the conffiles, the enablement and the state"
    else
        fail "dpkg --root --purge left: $(cd "$r" && find etc usr var/lib/private -name '*provwatch*' 2>/dev/null)"
    fi
fi

# ---- versions ----
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$srcdir/meson.build" | head -n 1)
pkgversion=$(dpkg-deb -f "$deb" Version)
if [ "${pkgversion%-*}" = "$version" ]; then
    ok "package version $pkgversion is meson.build's $version"
else
    fail "package version $pkgversion does not match meson.build's $version (debian/changelog)"
fi
mkdir "$tmp/root"
dpkg-deb -x "$deb" "$tmp/root"
v=$("$tmp/root/usr/bin/provwatch" --version 2>&1)
if [ "$v" = "provwatch $version" ]; then
    ok "the packaged provwatch --version says '$v'"
else
    fail "the packaged provwatch --version says '$v', expected 'provwatch $version'"
fi

if [ $failures -gt 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
exit 0

#!/bin/bash
# Sets up erofs-top on a fresh Debian/Ubuntu machine, as root:
#  - system packages from apt (BCC, erofs-utils, a kernel header tree, tools),
#  - a kernel header tree for BCC when the running kernel has none,
#  - tracefs/debugfs/securityfs mounted where the kernel has them unmounted,
#  - a venv in .venv that sees Debian's BCC module (dist-packages),
#  - erofs-top installed (editable) with its test extras.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "setup.sh: run as root (it installs packages and mounts tracefs)" >&2; exit 1; }

PKGS=(python3 python3-venv python3-pip python3-bpfcc bpfcc-tools erofs-utils util-linux
      e2fsprogs kmod procps tmux)
# Prometheus server and promtool: the exporter's integration test scrapes with a real one.
PKGS+=(prometheus)
# The qemu lab (tests/vm): a Linux 7.x guest with page-cache sharing.
PKGS+=(qemu-system-x86 debootstrap)
kver=$(uname -r)
if [[ ! -e /lib/modules/$kver/build/include ]]; then
    if apt-cache show "linux-headers-$kver" >/dev/null 2>&1; then
        PKGS+=("linux-headers-$kver")
    else
        PKGS+=(linux-headers-amd64)   # distro headers; fine for tracepoint programs only
    fi
fi
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
    echo "setup.sh: apt-get install ${missing[*]}" >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# BCC needs /lib/modules/$(uname -r)/build. On a kernel without its own header
# package, point it at the distro's newest header tree. Tracepoint programs are
# fine with it (BCC reads tracepoint formats from tracefs); struct reads are not,
# and erofs-top never does them on a mismatched tree (`erofs-top doctor` says so).
if [[ ! -e /lib/modules/$kver/build/include ]]; then
    amd=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1)
    common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1)
    [[ -n $amd && -n $common ]] || { echo "setup.sh: no kernel header tree in /usr/src" >&2; exit 1; }
    mkdir -p "/lib/modules/$kver"
    ln -sfn "$amd" "/lib/modules/$kver/build"
    ln -sfn "$common" "/lib/modules/$kver/source"
    echo "setup.sh: /lib/modules/$kver/build -> $amd (distro headers: tracepoint tier only)" >&2
fi

mnt() { mountpoint -q "$2" 2>/dev/null || mount -t "$1" "$1" "$2" 2>/dev/null || true; }
mnt tracefs /sys/kernel/tracing
mnt debugfs /sys/kernel/debug
mnt securityfs /sys/kernel/security
mnt bpf /sys/fs/bpf

# The venv must see Debian's BCC module, so it is built on Debian's python3.
if [[ ! -x .venv/bin/python ]]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -c 'import bcc' 2>/dev/null || { echo "setup.sh: .venv cannot import bcc" >&2; exit 1; }
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
echo "setup.sh: ready: .venv/bin/erofs-top" >&2

#!/bin/bash
# tests/vm/lab.sh - the erofs-top qemu lab: a Debian sid Linux 7.x guest with
# EROFS page-cache sharing (CONFIG_EROFS_FS_PAGE_CACHE_SHARE=y) and BCC, booted
# under qemu TCG (no KVM needed), running this checkout's tests as root.
#
#   lab.sh build              build (or reuse) the cached guest under $LAB_CACHE
#   lab.sh test [PYTEST ARGS] build if needed, boot, run
#                             `python3 -m pytest tests/vm [ARGS]` on a copy of
#                             this checkout; exit with pytest's status
#   lab.sh run CMD...         boot, run CMD as root in the checkout copy (/src)
#   lab.sh shell              interactive root shell in the guest
#   lab.sh info               what is cached, kernel and package versions
#   lab.sh clean              delete $LAB_CACHE
#
# Settings (environment): LAB_CACHE (/var/cache/erofs-top-lab), LAB_MIRROR
# (default: taken from this host's apt sources), LAB_TIMEOUT (3600 s per boot),
# LAB_MEM (3G), LAB_CPUS (2), LAB_BOOT_RETRIES (2), LAB_OUT (guest /out is
# copied here), LAB_KEEP=1 (keep the run folder), LAB_REBUILD=1.
# docs/vm-lab.md explains the design, the timings and the pitfalls.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAB_CACHE=${LAB_CACHE:-/var/cache/erofs-top-lab}
LAB_SUITE=${LAB_SUITE:-sid}
LAB_MEM=${LAB_MEM:-3G}
LAB_CPUS=${LAB_CPUS:-2}
# per boot: the whole suite ran 879-1,025 s under TCG on one machine of this
# kind, and had reached half its tests at 1,500 s on a slower one (AMD EPYC,
# 2026-12-07): the bound is for a guest that hangs, not for a slow host
LAB_TIMEOUT=${LAB_TIMEOUT:-3600}
LAB_BOOT_RETRIES=${LAB_BOOT_RETRIES:-2}
LAB_OUT=${LAB_OUT:-}
# Multi-threaded TCG once oopsed during boot-time text patching (int3 left in
# a stale translated block); one host thread for both vCPUs is the safe default.
LAB_TCG_THREAD=${LAB_TCG_THREAD:-single}
LAB_KERNEL_FLAVOUR=cloud-amd64

ROOTFS=$LAB_CACHE/rootfs
ROOT_IMG=$LAB_CACHE/root.img
KERNEL=$LAB_CACHE/vmlinuz
INFO=$LAB_CACHE/build-info.env

# Guest userspace. python3-textual is added at build time when sid has it.
GUEST_PKGS=(python3 python3-bpfcc erofs-utils kmod util-linux util-linux-extra
            procps xz-utils zstd e2fsprogs
            python3-pytest python3-pytest-timeout python3-click
            python3-prometheus-client python3-pyelftools python3-yaml
            containerd runc busybox-static prometheus)
# Headline check (docs/sharing.md): two versions of real Debian packages,
# fetched from two suites at build time and unpacked into the guest image.
# Format: suite:package. The guest finds them in /opt/lab-data/<pkg>/<version>/.
# Pairs of close versions, like the maintainers' "two minor versions" images.
DATA_PKGS=(${LAB_DATA_PKGS:-forky:python3-django sid:python3-django
           forky:libpython3.14-stdlib sid:libpython3.14-stdlib
           trixie:redis-tools sid:redis-tools
           forky:mariadb-server-core sid:mariadb-server-core
           trixie:tzdata sid:tzdata
           trixie:python3-urllib3 sid:python3-urllib3})
MIN_EROFS_UTILS=1.9

# PID-1 stub baked into root.img. The real init travels on the per-run ctl
# disk (tests/vm/guest-init), so changing it never needs an image rebuild.
read -r -d '' INIT_STUB <<'STUB' || true
#!/bin/bash
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /lab
# ctl disk: virtio-blk with serial "labctl" (virtio_blk is a module here)
modprobe virtio_blk
for i in $(seq 300); do
    for d in /sys/block/vd*; do
        [ "$(cat "$d/serial" 2>/dev/null)" = labctl ] && ctl=/dev/${d##*/} && break 2
    done
    sleep 0.1
done
if [ -n "$ctl" ] && mount -t ext4 "$ctl" /lab && [ -x /lab/init ]; then exec /lab/init; fi
echo "lab stub: no ctl disk or no /lab/init" >/dev/console
sync; echo o >/proc/sysrq-trigger; sleep 10
STUB
INIT_STUB+=$'\n'

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }
need_root() { [[ $(id -u) == 0 ]] || die "run as root (debootstrap, chroot and qemu disk images need it)"; }
need_cmd() { command -v "$1" >/dev/null || die "$1 not found: apt-get install $2 (or run scripts/setup.sh)"; }

# ---------------------------------------------------------------- mirror
# The Debian mirror comes from this host's apt configuration at run time
# (deb822 *.sources, then sources.list); no host name is written in the repo.
mirror() {
    local f uri
    [[ -n ${LAB_MIRROR:-} ]] && { echo "$LAB_MIRROR"; return; }
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        uri=$(awk '
            function flush() { if (!done && u != "" && s !~ /-security/ && t ~ /deb( |$)/) { print u; done=1; exit } u=""; s=""; t="" }
            /^[[:space:]]*$/ { flush(); next }
            /^Types:/  { t=$0 " " }
            /^URIs:/   { u=$2 }
            /^Suites:/ { s=$0 }
            END { flush() }' "$f" | head -n1)
        [[ -n $uri ]] && { echo "$uri"; return; }
    done
    if [[ -f /etc/apt/sources.list ]]; then
        uri=$(awk '$1=="deb" && $0 !~ /-security/ { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
        [[ -n $uri ]] && { echo "$uri"; return; }
    fi
    die "cannot find a Debian mirror in /etc/apt; set LAB_MIRROR=http://..."
}

# ---------------------------------------------------------------- chroot
chroot_up() {
    local m
    for m in proc sys dev dev/pts; do
        mountpoint -q "$ROOTFS/$m" && continue
        mkdir -p "$ROOTFS/$m"
        case $m in
            proc)    mount -t proc proc "$ROOTFS/proc" ;;
            sys)     mount -t sysfs sys "$ROOTFS/sys" ;;
            dev)     mount --bind /dev "$ROOTFS/dev" ;;
            dev/pts) mount -t devpts devpts "$ROOTFS/dev/pts" -o newinstance,ptmxmode=0666 ;;
        esac
    done
    printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"   # no daemons
    chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
}
chroot_down() {   # unmount everything below the rootfs, deepest first
    [[ -d $ROOTFS ]] || return 0
    awk -v r="$ROOTFS/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
rm_rootfs() {     # never rm -rf a tree with the host's /dev bound inside
    chroot_down
    if awk -v r="$ROOTFS/" 'index($2, r) == 1 {f=1} END {exit !f}' /proc/mounts; then
        die "mounts remain under $ROOTFS; refusing to delete it"
    fi
    rm -rf "$ROOTFS"
}
in_chroot() {
    chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
apt_log() { "$@" >> "$LAB_CACHE/apt.log" 2>&1 || { tail -n 25 "$LAB_CACHE/apt.log" >&2; die "failed: ${*: -3} (log: $LAB_CACHE/apt.log)"; }; }

# ---------------------------------------------------------------- build
recipe() {
    { printf '%s\n' "${GUEST_PKGS[*]}" "${DATA_PKGS[*]}" "$LAB_SUITE" "$INIT_STUB"
      printf 'v3\n'; } | sha256sum | cut -c1-16
}

cmd_build() {
    need_root
    local r; r=$(recipe)
    if [[ -z ${LAB_REBUILD:-} && -f $ROOT_IMG && -f $KERNEL && -f $INFO ]] && grep -qx "LAB_RECIPE=$r" "$INFO"; then
        log "lab is built ($LAB_CACHE; LAB_REBUILD=1 rebuilds)"; return 0
    fi
    need_cmd debootstrap debootstrap; need_cmd mke2fs e2fsprogs
    mkdir -p "$LAB_CACHE"
    # one build at a time (CI and a developer may start one together)
    exec 8>"$LAB_CACHE/.build.lock"
    if ! flock -n 8; then
        log "another build holds $LAB_CACHE/.build.lock; waiting"
        flock 8
        if [[ -z ${LAB_REBUILD:-} && -f $ROOT_IMG && -f $KERNEL && -f $INFO ]] && grep -qx "LAB_RECIPE=$r" "$INFO"; then
            log "lab is built ($LAB_CACHE)"; exec 8>&-; return 0
        fi
    fi
    : > "$LAB_CACHE/apt.log"
    local t0 m kpkg kver p cfg
    t0=$(date +%s)
    m=$(mirror)
    log "building the lab in $LAB_CACHE from $m ($LAB_SUITE)"
    trap chroot_down EXIT
    trap 'exit 130' INT TERM

    if [[ -n ${LAB_REBUILD:-} || ! -f $ROOTFS/.lab-debootstrap ]]; then
        rm_rootfs
        log "debootstrap --variant=minbase $LAB_SUITE (about 30 s)"
        debootstrap --variant=minbase "$LAB_SUITE" "$ROOTFS" "$m" > "$LAB_CACHE/debootstrap.log" 2>&1 \
            || { tail -n 25 "$LAB_CACHE/debootstrap.log" >&2
                 die "debootstrap $LAB_SUITE from $m failed (log: $LAB_CACHE/debootstrap.log); LAB_MIRROR=<a Debian mirror> picks another"; }
        touch "$ROOTFS/.lab-debootstrap"
    fi
    chroot_up
    cat > "$ROOTFS/etc/apt/apt.conf.d/90lab" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
// a sid Release file on a mirror can be past its Valid-Until date
Acquire::Check-Valid-Until "false";
EOF
    echo "deb $m $LAB_SUITE main" > "$ROOTFS/etc/apt/sources.list"
    apt_log in_chroot apt-get -q update

    # userspace; textual only if this suite has it (else the guest tests must not import it)
    local pkgs=("${GUEST_PKGS[@]}")
    if in_chroot apt-cache show python3-textual >/dev/null 2>&1; then pkgs+=(python3-textual); fi
    log "apt-get install ${pkgs[*]}"
    apt_log in_chroot apt-get -q -y install "${pkgs[@]}"
    local ev; ev=$(in_chroot dpkg-query -W -f '${Version}' erofs-utils)
    dpkg --compare-versions "$ev" ge "$MIN_EROFS_UTILS" \
        || die "erofs-utils $ev in $LAB_SUITE is older than $MIN_EROFS_UTILS (no --xattr-inode-digest)"

    # kernel: the newest 7.x cloud kernel; its config must enable page-cache sharing
    kpkg=$(in_chroot apt-cache search --names-only "^linux-image-7\.[0-9.]+.*-$LAB_KERNEL_FLAVOUR\$" \
           | awk '{print $1}' | grep -v -e -dbg -e -unsigned | sort -V | tail -n1)
    [[ -n $kpkg ]] || die "no linux-image-7.*-$LAB_KERNEL_FLAVOUR package in $LAB_SUITE at $m (an old snapshot mirror? set LAB_MIRROR)"
    kver=${kpkg#linux-image-}
    log "kernel $kver"
    # linux-image-$kver is a metapackage that only adds an initramfs generator;
    # the lab boots without initramfs, so install the payload packages.
    # linux-base-$kver (if it exists) carries the config and System.map.
    local kpk=("linux-binary-$kver" "linux-modules-$kver")
    in_chroot apt-cache show "linux-base-$kver" >/dev/null 2>&1 && kpk+=("linux-base-$kver")
    if in_chroot apt-cache show "linux-binary-$kver" >/dev/null 2>&1; then
        apt_log in_chroot apt-get -q -y install "${kpk[@]}"
    else
        apt_log in_chroot apt-get -q -y install "$kpkg"   # older, unsplit packaging
    fi
    cfg=
    for p in "$ROOTFS/usr/lib/modules/$kver/config" "$ROOTFS/boot/config-$kver"; do
        [[ -f $p ]] && { cfg=$p; break; }
    done
    [[ -n $cfg ]] || die "no kernel config for $kver in the installed packages (looked in /usr/lib/modules/$kver/config and /boot)"
    grep -qx 'CONFIG_EROFS_FS_PAGE_CACHE_SHARE=y' "$cfg" \
        || die "$kver is built without CONFIG_EROFS_FS_PAGE_CACHE_SHARE=y ($cfg); the lab needs EROFS page-cache sharing"
    [[ -f $ROOTFS/usr/lib/modules/$kver/vmlinuz ]] || ls "$ROOTFS"/boot/vmlinuz-"$kver" >/dev/null 2>&1 \
        || die "no vmlinuz for $kver"

    # Header tree for BCC. linux-headers-$kver depends on a host gcc BCC never
    # uses (~200 MB): unpack the header packages with dpkg-deb -x instead.
    local hdr
    hdr=$(in_chroot apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances "linux-headers-$kver" \
          | grep -E '^linux-(headers|kbuild)-' | sort -u | tr '\n' ' ')
    log "unpacking header packages: $hdr"
    rm -rf "$ROOTFS/var/tmp/labdebs"; mkdir -p "$ROOTFS/var/tmp/labdebs"
    apt_log in_chroot sh -c "cd /var/tmp/labdebs && apt-get -q download $hdr"
    for p in "$ROOTFS"/var/tmp/labdebs/*.deb; do dpkg-deb -x "$p" "$ROOTFS"; done
    rm -rf "$ROOTFS/var/tmp/labdebs"
    in_chroot depmod -a "$kver"
    [[ -e $ROOTFS/usr/lib/modules/$kver/build/include ]] || die "header tree missing after unpack: /lib/modules/$kver/build"

    build_data "$m"

    # guest configuration
    printf '%s' "$INIT_STUB" > "$ROOTFS/usr/local/sbin/lab-init"
    chmod 0755 "$ROOTFS/usr/local/sbin/lab-init"
    echo lab > "$ROOTFS/etc/hostname"
    echo "127.0.0.1 localhost lab" > "$ROOTFS/etc/hosts"
    : > "$ROOTFS/etc/fstab"
    in_chroot apt-get -q clean
    rm -f "$ROOTFS/usr/sbin/policy-rc.d"
    local versions
    versions=$(in_chroot dpkg-query -W -f '${Package}=${Version}\n' "${pkgs[@]}" "linux-binary-$kver" 2>/dev/null \
               | tr '\n' ' ' || true)
    chroot_down
    trap - EXIT

    if [[ -f $ROOTFS/usr/lib/modules/$kver/vmlinuz ]]; then cp "$ROOTFS/usr/lib/modules/$kver/vmlinuz" "$KERNEL.tmp"
    else cp "$ROOTFS/boot/vmlinuz-$kver" "$KERNEL.tmp"; fi
    mv "$KERNEL.tmp" "$KERNEL"
    local used_mb size_mb
    used_mb=$(du -sm --apparent-size "$ROOTFS" | cut -f1)
    size_mb=$(( used_mb * 13 / 10 + 1024 ))   # room for test images under /var/tmp
    log "mke2fs -d rootfs (${used_mb} MiB) -> ${size_mb} MiB sparse root.img"
    rm -f "$ROOT_IMG.tmp"
    mke2fs -q -F -t ext4 -L labroot -E root_owner=0:0 -d "$ROOTFS" "$ROOT_IMG.tmp" "${size_mb}M" >/dev/null
    mv "$ROOT_IMG.tmp" "$ROOT_IMG"
    cat > "$INFO" <<EOF
LAB_RECIPE=$r
LAB_KVER=$kver
LAB_PACKAGES="$versions"
LAB_DATA="$(cd "$ROOTFS/opt/lab-data" && for f in */*.suite; do printf '%s=%s(%s) ' "${f%%/*}" "$(basename "$f" .suite)" "$(cat "$f")"; done)"
LAB_BUILT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LAB_BUILD_SECONDS=$(( $(date +%s) - t0 ))
LAB_ROOTFS_MB=$used_mb
EOF
    log "built in $(( $(date +%s) - t0 )) s: kernel $kver"
    exec 8>&-
}

# Two versions of real packages for the headline check. A second apt state
# (own sources list and lists dir) keeps the extra suites out of the guest's apt.
build_data() {
    local m=$1 e suite pkg ver d
    local dstate=/var/lib/lab-data-apt
    rm -rf "$ROOTFS/opt/lab-data" "$ROOTFS$dstate"
    mkdir -p "$ROOTFS/opt/lab-data" "$ROOTFS$dstate/lists/partial" "$ROOTFS$dstate/debs"
    local suites
    suites=$(printf '%s\n' "${DATA_PKGS[@]}" | cut -d: -f1 | sort -u)
    for suite in $suites; do echo "deb $m $suite main"; done > "$ROOTFS$dstate/sources.list"
    local aopt=(-o "Dir::Etc::SourceList=$dstate/sources.list" -o "Dir::Etc::SourceParts=-"
                -o "Dir::State::Lists=$dstate/lists" -o "Dir::Cache=$dstate/cache")
    mkdir -p "$ROOTFS$dstate/cache/archives/partial"
    if ! in_chroot apt-get -q "${aopt[@]}" update >> "$LAB_CACHE/apt.log" 2>&1; then
        log "WARNING: apt-get update for the data suites ($suites) failed; no headline data"
        rm -rf "$ROOTFS$dstate"; return 0
    fi
    for e in "${DATA_PKGS[@]}"; do
        suite=${e%%:*}; pkg=${e#*:}
        # madison: " pkg | version | http://mirror suite/main amd64 Packages"
        ver=$(in_chroot apt-cache "${aopt[@]}" madison "$pkg" | awk -F'|' -v s="$suite" \
              'index($3, " " s "/") {gsub(/ /, "", $2); print $2; exit}')
        if [[ -z $ver ]]; then
            log "WARNING: data package $pkg not found in $suite; the headline check will skip it"
            echo "$suite:$pkg" >> "$ROOTFS/opt/lab-data/MISSING"; continue
        fi
        d="$ROOTFS/opt/lab-data/$pkg/${ver#*:}"    # directory name without the epoch
        [[ -d $d ]] && continue
        log "data: $pkg $ver ($suite)"
        rm -rf "$ROOTFS$dstate/debs"; mkdir -p "$ROOTFS$dstate/debs"
        apt_log in_chroot sh -c "cd $dstate/debs && apt-get -q ${aopt[*]} download $pkg=$ver"
        mkdir -p "$d"
        dpkg-deb -x "$ROOTFS$dstate/debs/${pkg}_"*.deb "$d"
        echo "$suite" > "$d.suite"
    done
    rm -rf "$ROOTFS$dstate"
    local n; n=$(find "$ROOTFS/opt/lab-data" -mindepth 2 -maxdepth 2 -type d | wc -l)
    log "data: $n package trees in /opt/lab-data ($(du -sm "$ROOTFS/opt/lab-data" | cut -f1) MiB)"
}

# ---------------------------------------------------------------- run
# Disks: root.img is the ONLY NVMe namespace (NVMe and ext4 are built into the
# cloud kernel: no initramfs; namespaces are probed asynchronously, so a second
# one would make nvme0n1 unstable), snapshot=on so the cache is never written.
# ctl (init, cmd, rc, out/) and src (the checkout copy) are virtio-blk disks
# found by serial. ttyS0 = kernel console -> console.log, ttyS1 = command output.
RUN=
copy_checkout() {   # tracked + untracked-but-not-ignored files; no .git, no .venv
    local dst=$1
    mkdir -p "$dst"
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$REPO" && git ls-files -z -c -o --exclude-standard \
            | while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done \
            | tar --null -T - -cf -) | tar -xf - -C "$dst"
    else
        tar -C "$REPO" --exclude=.git --exclude=.venv --exclude='*.egg-info' \
            --exclude=__pycache__ -cf - . | tar -xf - -C "$dst"
    fi
}

cmd_run() {
    need_root
    [[ $# -gt 0 ]] || die "usage: lab.sh run CMD [ARGS...]"
    [[ -f $ROOT_IMG && -f $KERNEL ]] || die "the lab is not built: run tests/vm/lab.sh build (or make vm-build)"
    need_cmd qemu-system-x86_64 qemu-system-x86; need_cmd debugfs e2fsprogs; need_cmd timeout coreutils
    RUN=$(mktemp -d /tmp/erofs-top-lab.XXXXXX)
    # interrupted (scripts/test.sh stops the lab's process group): nothing is kept
    trap 'rm -rf "$RUN"; exit 130' INT TERM
    mkdir -p "$RUN/ctl/out"
    if [[ $# -eq 1 ]]; then printf '%s\n' "$1" > "$RUN/ctl/cmd"      # a shell string
    else printf '%q ' "$@" > "$RUN/ctl/cmd"; echo >> "$RUN/ctl/cmd"; fi  # an exact argv
    install -m 0755 "$HERE/guest-init" "$RUN/ctl/init"
    [[ -n ${LAB_INTERACTIVE:-} ]] && touch "$RUN/ctl/interactive"
    copy_checkout "$RUN/src"
    local smb; smb=$(( $(du -sm --apparent-size "$RUN/src" | cut -f1) * 13 / 10 + 64 ))
    mke2fs -q -F -t ext4 -L labsrc -E root_owner=0:0 -d "$RUN/src" "$RUN/src.img" "${smb}M" >/dev/null
    rm -rf "$RUN/src"

    local append="console=ttyS0,115200 root=/dev/nvme0n1 rootfstype=ext4 rootwait rw"
    append+=" init=/usr/local/sbin/lab-init panic=-1 oops=panic quiet loglevel=4"
    append+=" mitigations=off audit=0 nowatchdog random.trust_cpu=on no5lvl ${LAB_APPEND:-}"
    local qemu=(qemu-system-x86_64 -accel "tcg,thread=$LAB_TCG_THREAD" -cpu max -machine q35
        -smp "$LAB_CPUS" -m "$LAB_MEM" -nographic -no-reboot -nodefaults -monitor none
        -kernel "$KERNEL" -append "$append"
        -drive "if=none,id=root,file=$ROOT_IMG,format=raw,snapshot=on"
        -device nvme,drive=root,serial=labroot
        -drive "if=none,id=ctl,file=$RUN/ctl.img,format=raw"
        -device virtio-blk-pci,drive=ctl,serial=labctl
        -drive "if=none,id=src,file=$RUN/src.img,format=raw"
        -device virtio-blk-pci,drive=src,serial=labsrc
        -serial "file:$RUN/console.log" -serial stdio)
    local attempt rc grc started t0 failed_boots=0
    for (( attempt = 0; ; attempt++ )); do
        mke2fs -q -F -t ext4 -L labctl -E root_owner=0:0 -d "$RUN/ctl" "$RUN/ctl.img" "${LAB_OUT_MB:-64}M" >/dev/null
        t0=$(date +%s)
        set +e
        if [[ -n ${LAB_INTERACTIVE:-} ]]; then
            timeout --foreground -k 10 "$LAB_TIMEOUT" "${qemu[@]}"
        else
            timeout --foreground -k 10 "$LAB_TIMEOUT" "${qemu[@]}" </dev/null
        fi
        rc=$?
        set -e
        if [[ $rc == 124 || $rc == 137 ]]; then
            log "timeout: the guest ran longer than LAB_TIMEOUT=${LAB_TIMEOUT}s; kernel console: $RUN/console.log"
            tail -n 30 "$RUN/console.log" >&2
            rm -f "$RUN/src.img"; return 124
        fi
        grc=$(debugfs -R 'cat /rc' "$RUN/ctl.img" 2>/dev/null | tr -dc '0-9')
        started=$(debugfs -R 'stat /started' "$RUN/ctl.img" 2>/dev/null | grep -c Inode: || true)
        # died before the command began (e.g. a boot-time oops under TCG):
        # nothing ran, so booting again is safe
        if [[ -z $grc && $started == 0 && $attempt -lt $LAB_BOOT_RETRIES ]]; then
            mv "$RUN/console.log" "$RUN/console.boot-failure-$attempt.log"
            log "the guest died before the command started (boot attempt $((attempt + 1))); booting again"
            grep -m3 -E 'Oops|panic|BUG|error' "$RUN/console.boot-failure-$attempt.log" >&2 || true
            failed_boots=1
            continue
        fi
        break
    done
    if [[ -n $LAB_OUT ]]; then
        mkdir -p "$LAB_OUT" "$RUN/outdump"
        debugfs -R "rdump /out $RUN/outdump" "$RUN/ctl.img" >/dev/null 2>&1 || true
        cp -a "$RUN/outdump/out/." "$LAB_OUT/" 2>/dev/null || true
    fi
    if [[ -z $grc ]]; then
        log "the guest reported no exit status (qemu exit $rc); kernel console: $RUN/console.log"
        tail -n 40 "$RUN/console.log" >&2
        rm -f "$RUN/src.img"; return 125
    fi
    log "guest exit status $grc, VM ran $(( $(date +%s) - t0 )) s"
    if [[ -n ${LAB_KEEP:-} || $failed_boots == 1 ]]; then rm -f "$RUN/src.img"; log "kept $RUN"
    else rm -rf "$RUN"; fi
    return "$grc"
}

cmd_test() {
    cmd_build
    local args="" a
    [[ -t 1 ]] || args=" --color=no"      # a log file or CI: no escape codes
    local where=" tests/vm"
    for a in "$@"; do
        args+=" $(printf '%q' "$a")"
        [[ $a == tests/* ]] && where=""      # the caller named what to run
    done
    # -p no:cacheprovider: the checkout copy is thrown away anyway
    cmd_run "python3 -m pytest -p no:cacheprovider$where$args"
}

cmd_info() {
    echo "cache: $LAB_CACHE"
    if [[ -f $INFO ]]; then cat "$INFO"; else echo "(not built: tests/vm/lab.sh build)"; fi
    [[ -d $LAB_CACHE ]] && du -sh "$LAB_CACHE" 2>/dev/null || true
}

cmd_clean() { need_root; rm_rootfs; rm -rf "$LAB_CACHE"; log "removed $LAB_CACHE"; }

case ${1:-} in
    build) shift; cmd_build "$@" ;;
    test)  shift; cmd_test "$@" ;;
    run)   shift; cmd_run "$@" ;;
    shell) shift; LAB_INTERACTIVE=1 cmd_run "exec bash -i" ;;
    info)  cmd_info ;;
    clean) cmd_clean ;;
    -h|--help|help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

#!/bin/bash
# Sets everything up and runs every test erofs-top has, as root:
#   1. scripts/setup.sh (apt packages, header tree, tracefs, .venv)
#   2. the qemu lab's build (or its cache): a Linux 7.x guest with EROFS
#      page-cache sharing (`make vm-build`); EROFS_TOP_SKIP_VM=1 skips the lab
#   3. the host suite: unit tests + root integration tests on this kernel
#      (real images, mounts, cgroups, BPF, a real Prometheus server), while
#      the lab runs tests/vm inside the guest (`make vm-test`) beside it: the
#      guest's vCPUs share one host thread under TCG (tests/vm/lab.sh), so the
#      two take about the time of the longer one, not their sum.  The lab's
#      output is kept in a file and shown after the host suite's.
# Extra arguments go to the host pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
vm_rc=0
lab_pid=""
lab_log=""
stop_lab() {
    # the lab runs in its own session: make, lab.sh, timeout and qemu go together
    if [[ -n $lab_pid ]]; then kill -TERM -- "-$lab_pid" 2>/dev/null || true; fi
    if [[ -n $lab_log ]]; then rm -f "$lab_log"; fi
}
if [[ ${EROFS_TOP_SKIP_VM:-0} != 1 ]]; then
    echo "== qemu lab: build (or reuse the cache)"
    # built before the host suite starts: the build's chroot mounts stay off its way
    if make vm-build; then
        lab_log=$(mktemp /tmp/erofs-top-lab-output.XXXXXX)
        trap 'stop_lab; exit 130' INT TERM
        trap stop_lab EXIT
        setsid make vm-test > "$lab_log" 2>&1 < /dev/null &
        lab_pid=$!
        echo "== qemu lab tests started beside the host tests (output: $lab_log, shown after them)"
    else
        vm_rc=$?
    fi
fi
echo "== host tests (kernel $(uname -r))"
host_rc=0
# tests/vm runs inside the lab, not on the host
.venv/bin/python -m pytest -p no:cacheprovider --ignore=tests/vm "$@" || host_rc=$?
if [[ -n $lab_pid ]]; then
    echo "== qemu lab tests (Linux 7.x with page-cache sharing)"
    # the output so far, then the rest as it comes, until the lab ends (in the
    # background: a signal's trap runs at once in `wait`, not after tail ends)
    tail -n +1 -f --pid="$lab_pid" "$lab_log" &
    wait $! || true
    wait "$lab_pid" || vm_rc=$?
    lab_pid=""
fi
echo "== host tests exit $host_rc, lab tests exit $vm_rc"
(( host_rc == 0 && vm_rc == 0 ))

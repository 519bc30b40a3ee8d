#!/bin/bash
# Sets everything up and runs every test erofs-top has, as root:
#   1. scripts/setup.sh (apt packages, header tree, tracefs, .venv)
#   2. the qemu lab's build (or its cache): a Linux 7.x guest with EROFS
#      page-cache sharing (`make vm-build`); EROFS_TOP_SKIP_VM=1 skips the lab
#   3. the host suite: unit tests + root integration tests on this kernel
#      (real images, mounts, cgroups, BPF, a real Prometheus server), with
#      the lab's first guest running beside it, and the second guest started
#      when the host suite ends: each guest runs its own part of tests/vm
#      (LAB_FIRST below).  Under TCG a guest's vCPUs share one host thread
#      (tests/vm/lab.sh), so two of these at a time keep both cores busy;
#      three at a time (both guests beside the host suite) made the guests'
#      page-cache measurements miss twice in one run (docs/vm-lab.md).  The
#      guests' output is kept in files and shown after the host suite's.
# Extra arguments go to the host pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
# The lab's test files of the first guest (the containerd tests, the headline
# check and the CLI and domain tests: a bit more than half the lab's time, as
# it starts with the host suite); the second runs every other file of
# tests/vm, so a new file runs there unless it is named here.
LAB_FIRST=(tests/vm/test_containerd.py tests/vm/test_headline.py tests/vm/test_cli_lab.py
           tests/vm/test_domains_lab.py)
LAB_DURATIONS=--durations=15    # the slowest tests of each guest, for the suite's time budget
./scripts/setup.sh
vm_rc=0
lab_pids=()
lab_logs=()
stop_lab() {
    # each guest runs in its own session: make, lab.sh, timeout and qemu go together
    local p
    for p in "${lab_pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
    if (( ${#lab_logs[@]} )); then rm -f "${lab_logs[@]}"; fi
}
start_guest() {      # start_guest NAME PYTEST-ARGS...
    local log
    log=$(mktemp "/tmp/erofs-top-lab-$1.XXXXXX")
    lab_logs+=("$log")
    shift
    setsid make vm-test VM_PYTEST="$*" > "$log" 2>&1 < /dev/null &
    lab_pids+=($!)
}
if [[ ${EROFS_TOP_SKIP_VM:-0} != 1 ]]; then
    echo "== qemu lab: build (or reuse the cache)"
    # built before the host suite starts: the build's chroot mounts stay off its way
    if make vm-build; then
        trap 'stop_lab; exit 130' INT TERM
        trap stop_lab EXIT
        start_guest first "${LAB_FIRST[@]}" "$LAB_DURATIONS"
        echo "== qemu lab tests, guest 1 started beside the host tests (output: ${lab_logs[*]}, shown after them)"
    else
        vm_rc=$?
    fi
fi
echo "== host tests (kernel $(uname -r))"
host_rc=0
# tests/vm runs inside the lab, not on the host
.venv/bin/python -m pytest -p no:cacheprovider --ignore=tests/vm "$@" || host_rc=$?
if (( ${#lab_pids[@]} )); then
    rest=()
    for f in "${LAB_FIRST[@]}"; do rest+=("--ignore=$f"); done
    start_guest rest "${rest[@]}" "$LAB_DURATIONS"
    echo "== qemu lab tests, guest 2 started (the rest of tests/vm; output: ${lab_logs[1]})"
fi
for i in "${!lab_pids[@]}"; do
    echo "== qemu lab tests, guest $((i + 1)) of ${#lab_pids[@]} (Linux 7.x with page-cache sharing)"
    # the output so far, then the rest as it comes, until the guest ends (in the
    # background: a signal's trap runs at once in `wait`, not after tail ends)
    tail -n +1 -f --pid="${lab_pids[$i]}" "${lab_logs[$i]}" &
    wait $! || true
    rc=0
    wait "${lab_pids[$i]}" || rc=$?
    (( rc == 0 )) || vm_rc=$rc
done
lab_pids=()
echo "== host tests exit $host_rc, lab tests exit $vm_rc"
(( host_rc == 0 && vm_rc == 0 ))

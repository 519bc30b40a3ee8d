#!/bin/bash
# Sets everything up and runs every test erofs-top has, as root:
#   1. scripts/setup.sh (apt packages, header tree, tracefs, .venv)
#   2. the host suite: unit tests + root integration tests on this kernel
#      (real images, mounts, cgroups, BPF, a real Prometheus server)
#   3. the qemu lab: a Linux 7.x guest with EROFS page-cache sharing,
#      running tests/vm inside (`make vm-test`); EROFS_TOP_SKIP_VM=1 skips it.
# Extra arguments go to the host pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
echo "== host tests (kernel $(uname -r))"
host_rc=0
# tests/vm runs inside the lab below, not on the host
.venv/bin/python -m pytest -p no:cacheprovider --ignore=tests/vm "$@" || host_rc=$?
vm_rc=0
if [[ ${EROFS_TOP_SKIP_VM:-0} != 1 ]]; then
    echo "== qemu lab tests (Linux 7.x with page-cache sharing)"
    make vm-test || vm_rc=$?
fi
echo "== host tests exit $host_rc, lab tests exit $vm_rc"
(( host_rc == 0 && vm_rc == 0 ))

# erofs-top developer targets. The lab targets need root, qemu-system-x86,
# debootstrap and e2fsprogs (scripts/setup.sh installs them); see docs/vm-lab.md.
.PHONY: vm-build vm-test vm-shell vm-info

# Extra arguments for the in-guest pytest, e.g. make vm-test VM_PYTEST='-k sharing -x'
VM_PYTEST ?=

vm-build:
	tests/vm/lab.sh build

vm-test:
	tests/vm/lab.sh test $(VM_PYTEST)

vm-shell:
	tests/vm/lab.sh shell

vm-info:
	tests/vm/lab.sh info

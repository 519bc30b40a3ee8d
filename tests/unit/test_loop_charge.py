"""doctor's check of who pays a loop mount's backing-file cache (the io controller)."""
from erofs_top.kernel.host import loop_charge_check


def test_io_on_for_the_roots_children_means_readers_pay():
    ok, detail, fix = loop_charge_check("cpuset cpu io memory pids\n", "cpu io memory\n")
    assert ok and fix == "" and "each reader" in detail


def test_io_available_but_off_names_the_root_and_the_fix():
    ok, detail, fix = loop_charge_check("cpuset cpu io memory pids\n", "memory\n")
    assert ok and "root memcg pays" in detail
    assert fix.startswith("enable it") and "+io" in fix


def test_empty_subtree_control_is_off():
    ok, detail, fix = loop_charge_check("io memory", "")
    assert "root memcg pays" in detail and "+io" in fix


def test_io_bound_to_cgroup_v1_cannot_be_fixed_in_v2():
    # a hybrid host: "io" missing from the v2 root's controllers ("iocost" is not "io")
    ok, detail, fix = loop_charge_check("memory pids iocost", "memory")
    assert "bound to v1" in detail and "unified_cgroup_hierarchy" in fix


def test_no_cgroup_v2_says_so_without_a_fix():
    assert loop_charge_check(None, None) == (True, "no cgroup v2 root to check", "")

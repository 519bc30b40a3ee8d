"""erofs_top/kernel/startup.py without BPF: the process age and the stage clock."""
from __future__ import annotations

import subprocess
import sys
import time

from erofs_top.kernel import startup


def test_process_age_of_a_fresh_process_covers_its_sleep():
    code = ("import time; time.sleep(0.4); "
            "from erofs_top.kernel.startup import process_age_s; print(process_age_s())")
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    outside_s = time.monotonic() - t
    age = float(out)
    # clock ticks: 10 ms steps, so allow one tick either way
    assert 0.4 - 0.02 <= age <= outside_s + 0.02


def test_stages_add_up_in_order():
    clock = startup.StartupClock()
    clock.stages_s.clear()
    clock.add(startup.COMPILE, 0.25)
    with clock.stage(startup.LOAD):
        time.sleep(0.05)
    clock.add(startup.COMPILE, 0.5)          # a stage recorded twice adds up
    assert list(clock.stages_s) == [startup.COMPILE, startup.LOAD]
    assert clock.stages_s[startup.COMPILE] == 0.75
    assert 0.05 <= clock.stages_s[startup.LOAD] < 1.0
    assert clock.total_s() == clock.stages_s[startup.COMPILE] + clock.stages_s[startup.LOAD]
    line = clock.summary()
    assert line.startswith(f"{clock.total_s():.2f} s to probes attached (")
    assert "compile (clang, headers, maps) 0.75 s, load (verifier) 0.0" in line

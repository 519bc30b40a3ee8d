"""A stop signal during the interpreter's teardown, after an orderly stop
(erofs_top/signals.py, cli.entry): seen under load in
tests/integration/test_signals_root.py, where the exporter's import thread
was still alive when a second SIGTERM came as Python tore down.  The
teardown puts the default action back for the handlers Python installed;
the kernel hands a process's signal to any thread that does not block it.
The exit status must stay 128 + the first signal, not death by the signal."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

# The child: a daemon thread alive, a first SIGTERM in the command (the
# orderly stop), a second one from an object cleared with the modules, late
# in the teardown.  Its command is a stand-in (main.main replaced): the
# teardown is the same for every command.
CHILD = textwrap.dedent("""
    import os, signal, threading, time
    from erofs_top import cli

    class SignalInTeardown:
        def __del__(self, kill=os.kill, pid=os.getpid(), sleep=time.sleep,
                    sig=signal.SIGTERM):
            kill(pid, sig)
            sleep(0.5)

    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    last = SignalInTeardown()

    class StoppedCommand:
        @staticmethod
        def main(**_kw):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)

    cli.main = StoppedCommand
    cli.entry()
""")


def test_a_signal_during_teardown_keeps_the_exit_status_of_the_first():
    p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, (p.returncode, p.stderr)
    assert p.stderr == "erofs-top: interrupted\n"

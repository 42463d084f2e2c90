"""benchmarks/process_cpu.py: the CPU profile names the processes a launch runs beside training."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.process_cpu import ProcessCPU

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A DataLoader's way of starting workers, in a process of its own so that this test's
# process keeps no fork server: the child sums for about 0.7 s of CPU, and the fork
# server, which reaped it, lives on a while to be sampled with the child's CPU time.
LOADER_LIKE = """
import multiprocessing, time
if __name__ == "__main__":
    child = multiprocessing.get_context("forkserver").Process(
        target=sum, args=(range(60_000_000),))
    child.start()
    child.join()
    time.sleep(1.5)
"""


def test_loader_processes_are_named_and_their_cpu_counted():
    """DataLoader workers start from a fork server: their command line is the fork
    server's, which the profile names for what they are, CPU seconds included."""
    with ProcessCPU() as cpu:
        subprocess.run([sys.executable, "-c", LOADER_LIKE], check=True)
    loader = cpu.totals()["loader processes (fork server and its children)"]
    assert sum(loader) >= 0.5

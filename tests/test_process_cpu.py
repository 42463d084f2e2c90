"""benchmarks/process_cpu.py: the CPU profile names the processes a launch runs beside training."""

from __future__ import annotations

import multiprocessing
import sys
import time

import pytest

from benchmarks.process_cpu import ProcessCPU

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_loader_processes_are_named_and_their_cpu_counted():
    """DataLoader workers start from a fork server: their command line is the fork
    server's, which the profile names for what they are, CPU seconds included."""
    context = multiprocessing.get_context("forkserver")
    with ProcessCPU() as cpu:
        child = context.Process(target=_spin, args=(0.6,))
        child.start()
        child.join()
    loader = cpu.totals()["loader processes (fork server and its children)"]
    assert sum(loader) >= 0.5

"""Where the CPU goes during a benchmark phase: user and system seconds per process kind,
read from /proc (Linux) before and after, for every process alive at either moment or
sampled in between (a process that starts and ends inside the phase is caught by sampling).

    with ProcessCPU() as cpu:
        run_something()
    print(cpu.table())
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from pathlib import Path
from types import TracebackType

CLOCK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.5


def _kind(pid: int) -> str | None:
    """A readable name: Ray's actors by their title, Python scripts by module, else comm."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [part.decode(errors="replace") for part in raw if part]
    if not words:
        return None
    if words[0].startswith("ray::"):
        return words[0]
    if words[0].startswith("ray-dashboard-"):  # its modules' titles: "ray-dashboard-X (cmd)"
        return "ray dashboard modules"
    name = Path(words[0]).name
    if any("multiprocessing.forkserver" in word for word in words):
        return "loader processes (fork server and its children)"
    if "-m" in words[:3]:
        return f"{name} -m {words[words.index('-m') + 1]}"
    if len(words) > 1 and words[1].endswith(".py"):
        return f"{name} {Path(words[1]).name}"
    return name


def _times(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of a process and its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    user, system, child_user, child_system = (int(fields[i]) for i in (11, 12, 13, 14))
    return (user + child_user) / CLOCK, (system + child_system) / CLOCK


class ProcessCPU:
    def __init__(self) -> None:
        self.start: dict[int, tuple[float, float]] = {}
        self.last: dict[int, tuple[float, float]] = {}
        self.kinds: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _snapshot(self) -> dict[int, tuple[float, float]]:
        found = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                pid = int(entry.name)
                # newest name first: a Ray worker retitles itself once it hosts an actor
                times, kind = _times(pid), _kind(pid) or self.kinds.get(pid)
                if times is not None and kind is not None:
                    found[pid], self.kinds[pid] = times, kind
        return found

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.last.update(self._snapshot())

    def __enter__(self) -> ProcessCPU:
        self.start = self._snapshot()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.last.update(self._snapshot())

    def totals(self) -> dict[str, tuple[float, float]]:
        """Process kind -> (user s, system s) spent inside the block."""
        spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for pid, (user, system) in self.last.items():
            user0, system0 = self.start.get(pid, (0.0, 0.0))
            spent[self.kinds[pid]][0] += user - user0
            spent[self.kinds[pid]][1] += system - system0
        return {kind: (u, s) for kind, (u, s) in spent.items() if u + s >= 0.05}

    def table(self, title: str) -> str:
        rows = sorted(self.totals().items(), key=lambda item: -sum(item[1]))
        lines = [f"| {title}: process | user s | system s |", "| --- | --- | --- |"]
        lines += [f"| {kind} | {u:.1f} | {s:.1f} |" for kind, (u, s) in rows]
        return "\n".join(lines)

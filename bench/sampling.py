"""Where a server's time goes: py-spy samples gunicorn's processes while a load runs, and the
samples are summed by function, the site's own code apart from the libraries.

Used by the benchmarks for a goal they miss (`--profile`); the load that is sampled is an
extra one, never the measured one (sampling slows the server down a little).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY_SPY = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def available() -> bool:
    return PY_SPY is not None


@contextmanager
def sampled(pid: int, seconds: float | None, out: Path) -> Iterator[None]:
    """py-spy records `pid` and its children (gunicorn's workers) for `seconds`, or (None)
    for as long as the block runs (at most an hour)."""
    if PY_SPY is None:
        yield
        return
    command = [
        PY_SPY,
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--duration",
        str(max(1, round(seconds or 3600))),
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    ]
    with open(out.with_suffix(".log"), "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            if seconds is None:
                process.send_signal(signal.SIGINT)  # py-spy writes what it has, then exits
            try:
                process.wait(timeout=(seconds or 0) + 60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _where(frame: str) -> tuple[str, str]:
    found = FRAME.match(frame.strip())
    if not found:
        return frame.strip(), ""
    file = found.group("file")
    try:
        file = str(Path(file).resolve().relative_to(ROOT))
    except ValueError:
        file = re.sub(r"^.*site-packages/", "", file)
    return found.group("function"), file


def _own(file: str) -> bool:
    """A file of the site's (relative to ROOT), not of the virtualenv or Python."""
    return bool(file) and not file.startswith(("/", "<", ".venv")) and Path(ROOT, file).exists()


def summary(raw: Path, top: int = 12) -> list[str]:
    """The functions with the largest share of the samples: inclusive time in the site's own
    files, and self time anywhere."""
    if not raw.exists():
        return [f"profile: no samples ({raw.with_suffix('.log')} says why)"]
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_where(f) for f in stack.split(";")[1:]]  # the first is the process
        seen = set()
        for function, file in frames:
            name = f"{function} ({file})"
            if _own(file) and name not in seen:
                inclusive[name] += samples
                seen.add(name)
        if frames:
            function, file = frames[-1]
            own[f"{function} ({file})"] += samples
    if not total:
        return ["profile: no samples"]
    lines = [f"profile: {total:,} samples of gunicorn's processes (py-spy, 200 Hz)"]
    lines.append("profile: inclusive time in the site's code:")
    lines += [f"profile:   {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    lines.append("profile: self time (where the CPU is):")
    lines += [f"profile:   {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    return lines


def busy_threads(pid: int, timeout: float = 60.0) -> list[str]:
    """What the threads of `pid` and its children (gunicorn's workers) are doing now, from
    `py-spy dump`: each thread that is in the site's own code, with its stack (innermost
    first), for a request that waits and waits. Threads waiting for work are left out."""
    if PY_SPY is None:
        return ["py-spy is not installed: pip install -e '.[bench]'"]
    command = [PY_SPY, "dump", "--pid", str(pid), "--subprocesses", "--full-filenames"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [f"py-spy dump took longer than {timeout:g} s"]
    lines: list[str] = []
    for block in re.split(r"\n(?=Thread |Process )", done.stdout):
        header, *frames = block.strip().splitlines() or [""]
        if header.startswith("Thread ") and any(_own(_where(f)[1]) for f in frames):
            lines.append(header.strip())
            lines += [f"    {f.strip()}" for f in frames]
    return lines or [f"no thread in the site's code ({done.stderr.strip() or 'py-spy said'})"]

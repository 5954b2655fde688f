"""py-spy on the server during a scenario, and a text summary of where the time went.

The summary reads py-spy's collapsed stacks (`--format raw`): each line is a stack,
root first, and the number of samples it was seen in. A function's *self* share counts
the samples where it is the innermost frame; its *inclusive* share those where it is
anywhere on the stack (once per stack, so recursion does not count twice).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")
SITE_PACKAGES = re.compile(r".*/site-packages/")


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(pid: int, output: Path, seconds: int, fmt: str) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` (and its worker processes) for `seconds`."""
    binary = py_spy()
    if binary is None:
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(seconds),
            "--rate",
            "200",
            "--format",
            fmt,
            "--output",
            str(output),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = SITE_PACKAGES.sub("", match["file"])
    file = file.replace(str(Path(__file__).resolve().parents[1]) + "/", "")
    return f"{match['func']} ({file})"


def summarize(raw: Path, top: int = 25) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";") if f.strip()]
        # py-spy puts the process and thread names first; they are not code.
        frames = [f for f in frames if "(" in f]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
        modules[_module(frames[-1])] += count
    if not total:
        return "no samples"

    def share(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    lines = [f"{total} samples", "", "self time by package:"]
    lines += [f"  {share(n)}  {m}" for m, n in modules.most_common(12)]
    lines += ["", "self time (innermost frame):"]
    lines += [f"  {share(n)}  {f}" for f, n in self_time.most_common(top)]
    lines += ["", "inclusive time (on the stack):"]
    lines += [f"  {share(n)}  {f}" for f, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def _module(frame: str) -> str:
    """The top-level package a frame's file belongs to."""
    match = re.search(r"\(([^)]*)\)$", frame)
    path = match[1] if match else frame
    if path.startswith("flows_graphql/"):
        return "/".join(path.split("/")[:2])
    if "/lib/python3" in path or path.startswith("<"):
        return "python stdlib / builtins"
    return path.split("/")[0]


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25))

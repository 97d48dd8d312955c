"""Wall time of ``kerasdojo --help`` (a fresh process each time), median of 10. Target: <= 0.5 s.

python benchmarks/cli_help.py
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, today, update_section  # noqa: E402

TARGET = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    exe = shutil.which("kerasdojo")
    command = [exe, "--help"] if exe else [sys.executable, "-m", "kerasdojo", "--help"]
    subprocess.run(command, capture_output=True, check=True)  # warm the file cache and .pyc files
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    body = "\n".join(
        [
            "## `kerasdojo --help` wall time (`benchmarks/cli_help.py`)",
            "",
            f"Machine: {machine()}. Date: {today()}. Command: `{' '.join(Path(c).name for c in command)}`.",
            "",
            f"Median of {args.runs}: {median:.3f} s (min {min(times):.3f}, max {max(times):.3f}); "
            f"target <= {TARGET} s: {'met' if median <= TARGET else 'MISSED'}.",
        ]
    )
    print(body)
    if not args.no_write:
        update_section("cli_help", body)


if __name__ == "__main__":
    main()

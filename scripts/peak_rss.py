"""Run a command and print the peak resident memory of its whole process tree (workers included) and its wall time.

    python scripts/peak_rss.py perface embed $PERFACE_DATA/lfw/images --out lfw.parquet

The tree is sampled every 0.2 s with psutil (a peak shorter than that can be missed); the result goes to
stderr as ``exit CODE wall SECONDS peak RSS tree MiB main MiB``.
"""

from __future__ import annotations

import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    import psutil

    if not argv:
        print("usage: python scripts/peak_rss.py COMMAND [ARG ...]", file=sys.stderr)
        return 2
    start = time.time()
    proc = subprocess.Popen(argv)
    root = psutil.Process(proc.pid)
    peak = peak_main = 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            peak = max(peak, sum(q.memory_info().rss for q in procs if q.is_running()))
            peak_main = max(peak_main, root.memory_info().rss)
        except psutil.Error:  # a worker ended between listing and reading
            pass
        time.sleep(0.2)
    print(f"exit {proc.returncode} wall {time.time() - start:.1f}s peak RSS tree {peak / 2**20:.0f} MiB "
          f"main {peak_main / 2**20:.0f} MiB", file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""HiGHS stays silent by its own options: plans made in several threads at once (two sites
re-planning together) print nothing and leave the process's stdout as it was."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A fresh interpreter: HiGHS prints its banner once per process, so only a process that has not
# solved anything yet shows whether the first solves are silent.
SCRIPT = textwrap.dedent(
    """
    import sys
    import threading

    import numpy as np

    from bessai.optimize import StorageSpec, optimize

    original = sys.stdout
    barrier = threading.Barrier(8)
    solvers = []

    def plan(k: int) -> None:
        rng = np.random.default_rng(k)
        normal = rng.normal(60.0, 30.0, 24)
        # Half a day of negative prices makes the LP trade both ways: the MILP path runs too.
        negative = np.concatenate([np.full(12, -50.0 - k), normal[12:]])
        barrier.wait()
        for prices in (normal, negative) * 3:
            s = optimize(prices, 1.0, StorageSpec(), soc_initial_pct=50)
            solvers.append(s.solver)

    threads = [threading.Thread(target=plan, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sys.stdout is original, "sys.stdout was replaced"
    assert len(solvers) == 48, solvers
    assert "milp" in solvers and "lp" in solvers, solvers
    print("done")
    """
)


def test_concurrent_solves_print_nothing_and_keep_stdout() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    # Only the script's own line: no banner, no solver log, and stdout still reaches the pipe.
    assert out.stdout == "done\n"
    assert "HiGHS" not in out.stderr

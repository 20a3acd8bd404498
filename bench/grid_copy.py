"""Driver CPU time Ray Tune spends creating N trials from one grid of N trial specs.

    python bench/grid_copy.py            # N = 300, 1000, 3000
    python bench/grid_copy.py --smoke    # N = 20 (the test runs this)

Ray's variant generator deep-copies the unresolved grid, all N specs, for each trial it creates:
O(N²). ntkmtl hands Ray its plan as ``GridEntry`` values (ntkmtl/sweep/tuner.py), read-only
dicts whose deep copy is themselves; this times ``generate_variants`` over the specs of
bench/driver_scale.py's sweep as plain dicts and as GridEntry values, in one process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def variant_seconds(values: list) -> tuple[float, int]:
    from ray.tune.search.variant_generator import generate_variants

    start = time.process_time()
    count = sum(1 for _ in generate_variants({"sweep": {"epochs": 4}, "trial": {"grid_search": values}}))
    return time.process_time() - start, count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[300, 1000, 3000])
    parser.add_argument("--smoke", action="store_true", help="N = 20: every code path in a second")
    args = parser.parse_args(argv)
    from driver_scale import sweep_config

    from ntkmtl.sweep.plan import build_plan
    from ntkmtl.sweep.tuner import GridEntry

    print("| N trials | plain dicts | GridEntry | ratio |\n|---|---|---|---|")
    for n in [20] if args.smoke else args.trials:
        specs = [s.to_dict() for s in build_plan(sweep_config(Path(tempfile.mkdtemp()), n, 4))]
        (plain, made), (shared, made_shared) = variant_seconds(specs), variant_seconds([GridEntry(s) for s in specs])
        assert made == made_shared == n, (made, made_shared)
        print(f"| {n} | {plain:.2f} s | {shared:.2f} s | {plain / max(shared, 1e-9):.0f} |", flush=True)


if __name__ == "__main__":
    main()

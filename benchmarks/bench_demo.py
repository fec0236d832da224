"""Benchmark: generating the demo district (target: full scale in ≤ 30 s).

Each scale runs in a fresh process so that peak memory (max RSS) is its own.

    python benchmarks/bench_demo.py [--scales 0.1 1 10] [--repeat 3]

Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, tempfile, time
from gisgrid.demo import make_district
from gisgrid.demo.pipeline import run_demo
scale = float(sys.argv[1])
t = time.perf_counter()
layers = make_district(scale=scale, seed=0)
generate = time.perf_counter() - t
with tempfile.TemporaryDirectory() as out:
    t = time.perf_counter()
    result = run_demo(out, scale=scale, seed=0)
    demo = time.perf_counter() - t
print(json.dumps({
    "generate_s": generate, "demo_s": demo, "stages": result.seconds,
    "buildings": len(layers["buildings"]), "households": result.households,
    "population": result.population, "communities": len(layers["communities"]),
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 1.0, 10.0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, date {time.strftime('%Y-%m-%d')}"
    )
    print(
        "| scale | communities | buildings | households | population | generate s (best) "
        "| demo end-to-end s (best) | peak MB | vs 30 s budget |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for scale in args.scales:
        runs = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", CHILD, str(scale)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            for _ in range(args.repeat)
        ]
        best = min(runs, key=lambda r: r["generate_s"])
        demo = min(r["demo_s"] for r in runs)
        print(
            f"| {scale:g} | {best['communities']} | {best['buildings']:,} | "
            f"{best['households']:,} | {best['population']:,} | {best['generate_s']:.2f} | "
            f"{demo:.2f} | {max(r['peak_mb'] for r in runs):.0f} | "
            f"{best['generate_s'] / 30:.2f}× |"
        )


if __name__ == "__main__":
    main()

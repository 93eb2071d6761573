"""latentode's benchmark suite: speed, memory and accuracy against the 2019 union-grid approach.

    python benchmarks/run.py --quick               # about 3-5 minutes on 2 CPU cores
    python benchmarks/run.py                       # full sizes and repeats (30-40 minutes)
    python benchmarks/run.py --device cuda         # the parts that run on a GPU, on the GPU
    python benchmarks/run.py --quick --only memory prediction

Sections (registered in ``sections.py`` and ``speed_sections.py``; see
benchmarks/README.md): encoder grid, training throughput, time to quality and validation
MSE after equal epochs, memory (adjoint against backprop), prediction, solver tolerance,
profiles of the clinical training step, speed next to a CPU-bound process (busy), the
clinical step against the baseline commit, read_csv, the union-grid step's parts.
Every table is headed by the machine, device, torch version, torch threads and the
command. All figures go to ``benchmarks/results/latest.json`` (``--out``) and the printed
text next to it (``latest.txt``); a run of some sections (``--only``) goes to
``results/partial.json`` and ``partial.txt`` instead (not kept in git), so that it cannot
replace the whole suite's record with a part of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import sections  # noqa: F401  registers the model's sections (alphabetical = run order)
import speed_sections  # noqa: F401  registers issue 14's sections after them
import torch
from harness import Tee, machine_info
from suite import MODES, SECTIONS, Context

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for everything timed (default 1: the ops are small)",
    )
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these")
    parser.add_argument(
        "--out", type=Path, help="default: results/latest.json, with --only results/partial.json"
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = RESULTS / ("partial.json" if args.only else "latest.json")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but CUDA is not available here.")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    if args.only:  # in registry order, whatever the order asked
        chosen = [s for s in SECTIONS.values() if s.name in args.only]
    else:
        chosen = [s for s in SECTIONS.values() if s.quick or mode == "full"]
    tee = Tee(sys.stdout)
    sys.stdout = tee
    start = time.perf_counter()
    info = machine_info(device, ["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    ctx = Context(mode, device, args.threads, info)
    results: dict = {"machine": info, "mode": mode, "sections": {}}
    figures: dict = {}
    try:
        for section in chosen:
            result = section.run(MODES[mode].get(section.name, {}), ctx)
            for text in result.tables:
                print(text)
            results["sections"][section.name] = result.data
            figures.update(result.figures)
        results["figures"] = figures
        results["seconds"] = time.perf_counter() - start
        print("\n## Figures")
        for key, value in figures.items():
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            print(f"{key:>45}: {text}")
        print(f"\ntotal {results['seconds']:.0f} s")
    finally:
        sys.stdout = tee.stream
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    args.out.with_suffix(".txt").write_text(tee.text())
    print(f"wrote {args.out} and {args.out.with_suffix('.txt')}")
    return results


if __name__ == "__main__":
    main()

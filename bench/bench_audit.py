"""Benchmark `audit run` on the bundled models: examples per second per stage, peak memory.

    .venv/bin/python bench/bench_audit.py [--model minilm-sentiment --model minilm] [--attribute-top 10]

Each model runs in its own process so peak memory (max RSS) is per model. Prints a Markdown table
to paste into bench/RESULTS.md, with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def one(model: str, attribute_top: str, device: str) -> dict[str, object]:
    from rich.console import Console

    from audit.config import AuditConfig
    from audit.runner import run_audit

    with tempfile.TemporaryDirectory() as tmp:
        config = AuditConfig(
            models=[model], out=Path(tmp), name="bench", attribute_top=attribute_top, device=device
        )  # type: ignore[arg-type]
        result = run_audit(config, model, console=Console(stderr=True, quiet=True))
        manifest = result.manifest
    timings = manifest["timings"]
    summary = manifest["summary"]
    n_examples = summary["n_examples"]
    n_attr = summary["n_attributed_examples"] * len(manifest["config"]["attribution_methods"])
    return {
        "model": model,
        "device": manifest["device"],
        "examples": n_examples,
        "score_s": timings.get("score"),
        "score_examples_per_s": round(n_examples / timings["score"], 1) if timings.get("score") else None,
        "attributed_examples": summary["n_attributed_examples"],
        "attribution_s": timings.get("attributions"),
        "attribution_examples_per_s": round(summary["n_attributed_examples"] / timings["attributions"], 2)
        if timings.get("attributions")
        else None,
        "attribution_method_runs": n_attr,
        "attention_s": timings.get("attention"),
        "attention_examples_per_s": round(n_examples / timings["attention"], 1)
        if timings.get("attention")
        else None,
        "total_s": round(sum(timings.values()), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--attribute-top", default="10")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.attribute_top, args.device)))
        return
    results = []
    for model in args.model or ["minilm-sentiment", "minilm"]:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            model,
            "--attribute-top",
            args.attribute_top,
            "--device",
            args.device,
        ]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    keys = list(results[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in results:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()

"""probelens against lm-evaluation-harness 0.4.13 on CrowS-Pairs: the same pairs, the same model.

lm-eval's ``crows_pairs_english`` task scores each pair's two sentences as loglikelihood requests
with an empty context (``doc_to_text: ""``, ``target_delimiter: ""``), so each sentence is scored
after ``HFLM.prefix_token_id`` (the tokenizer's BOS, else EOS), and ``process_results`` counts a
pair as preferring the stereotype when ``loglik(sent_more) > loglik(sent_less)``
(``pct_stereotype``). Its task downloads the data from the Hugging Face hub, which this machine
cannot reach, so the bench runs lm-eval's own pipeline (``simple_evaluate`` with the task's own
``doc_to_choice`` and ``process_results``) on the release CSV read from disk, and probelens'
CLI on the same file (``--start-token bos``, the default, and ``none``, the old convention).

lm-eval lives in its own virtual environment (torch 2.13 CPU, lm_eval 0.4.13, transformers as
probelens'), never imported here: this script runs it as a worker process
(``--lmeval-python PY``), so the rest of probelens needs no lm-eval. Run from the repository:

    python bench/bench_lmeval_crows.py --crows crows_pairs_anonymized.csv \\
        --lmeval-python /work/lmeval-venv/bin/python [--model smollm2] [--limit N] [--out DIR]

Prints and writes (``DIR/comparison.json``) per convention: the share of pairs preferring the
stereotype (lm-eval's rule: strictly more likely), how many pairs' signs agree with lm-eval's,
the mean |log-likelihood difference| per sentence between the tools, and the overall and
per-type stereotype-preference rows of probelens' findings table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKER = "lmeval-worker"


# --------------------------------------------------------------------------- lm-eval (its own venv)


def lmeval_worker(crows: Path, model: Path, out: Path, batch_size: int) -> None:
    """Score every pair with lm-eval's crows_pairs_english pipeline; write one record per pair."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks.crows_pairs import utils

    lm = HFLM(pretrained=str(model), dtype="float32", device="cpu", batch_size=batch_size)
    task = {  # crows_pairs_english.yaml, its data read from the local release CSV
        "task": "crows_pairs_english_local",
        "dataset_path": "csv",
        "dataset_kwargs": {"data_files": {"test": str(crows)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "",
        "doc_to_target": 0,
        "doc_to_choice": utils.doc_to_choice,
        "target_delimiter": "",
        "process_results": utils.process_results,
        "metric_list": [
            {"metric": "likelihood_diff", "aggregation": "mean", "higher_is_better": False},
            {"metric": "pct_stereotype", "aggregation": "mean", "higher_is_better": False},
        ],
    }
    started = time.perf_counter()
    results = lm_eval.simple_evaluate(model=lm, tasks=[task], log_samples=True, bootstrap_iters=1000)
    seconds = time.perf_counter() - started
    samples = results["samples"]["crows_pairs_english_local"]
    records = []
    for sample in sorted(samples, key=lambda s: s["doc_id"]):
        doc = sample["doc"]
        (more, _), (less, _) = (r[0] for r in sample["resps"])
        records.append(
            {
                "sent_more": doc["sent_more"],
                "sent_less": doc["sent_less"],
                "bias_type": doc["bias_type"],
                "loglik_more": float(more),
                "loglik_less": float(less),
                "pct_stereotype": sample["pct_stereotype"],
            }
        )
    metrics = results["results"]["crows_pairs_english_local"]
    summary = {
        "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "0.4.x",
        "prefix_token_id": lm.prefix_token_id,
        "prefix_token": lm.tokenizer.convert_ids_to_tokens(lm.prefix_token_id),
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        "seconds": seconds,
        "pairs": records,
    }
    out.write_text(json.dumps(summary), encoding="utf-8")


# --------------------------------------------------------------------------- probelens


def probelens_run(crows: Path, model: str, out: Path, start_token: str) -> dict[str, Any]:
    """probelens' CLI on the CSV; per pair the two sentences' log-likelihoods, and its findings."""
    import pandas as pd

    name = f"crows-{start_token}"
    command = [
        sys.executable, "-m", "audit", "run", "--model", model, "--probes", str(crows), "--out", str(out),
        "--name", name, "--no-attributions", "--no-attention", "--start-token", start_token, "--overwrite",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - started
    run = out / name
    examples = pd.read_parquet(run / "examples.parquet")
    predictions = pd.read_parquet(run / "predictions.parquet")
    scored = examples.merge(predictions[predictions["output"] == "loglik"], on="example_id")
    wide = scored.pivot_table(index="instance_id", columns="variant", values="score", aggfunc="first")
    texts = scored.pivot_table(index="instance_id", columns="variant", values="text", aggfunc="first")
    pairs = {
        (texts.at[i, "stereotype"], texts.at[i, "anti-stereotype"]): (
            float(wide.at[i, "stereotype"]),
            float(wide.at[i, "anti-stereotype"]),
        )
        for i in wide.index
    }
    findings = pd.read_parquet(run / "findings.parquet")
    preference = findings[findings["metric"].str.startswith("stereotype_preference")]
    columns = ["metric", "attribute", "effect", "ci_low", "ci_high", "p_value", "q_value", "n", "significant"]
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    return {
        "pairs": pairs,
        "findings": preference[columns].to_dict(orient="records"),
        "start_token": manifest["model"]["start_token"],
        "seconds": seconds,
    }


# --------------------------------------------------------------------------- comparison


def compare(lmeval: dict[str, Any], probelens: dict[str, Any]) -> dict[str, Any]:
    """Per pair: the sign of loglik(stereotype) - loglik(anti-stereotype) under each tool, and how
    far the sentences' log-likelihoods are apart."""
    agree = n = ties = 0
    sentence_gaps: list[float] = []
    delta_gaps: list[float] = []
    prefers = 0
    disagreements = []
    for pair in lmeval["pairs"]:
        key = (pair["sent_more"], pair["sent_less"])
        if key not in probelens["pairs"]:
            continue
        ours_more, ours_less = probelens["pairs"][key]
        n += 1
        ours, theirs = ours_more - ours_less, pair["loglik_more"] - pair["loglik_less"]
        prefers += ours > 0
        ties += ours == 0
        if (ours > 0) == (theirs > 0):
            agree += 1
        else:
            disagreements.append({"sent_more": key[0], "probelens_delta": ours, "lm_eval_delta": theirs})
        sentence_gaps += [abs(ours_more - pair["loglik_more"]), abs(ours_less - pair["loglik_less"])]
        delta_gaps.append(abs(ours - theirs))
    theirs_share = sum(p["pct_stereotype"] for p in lmeval["pairs"]) / len(lmeval["pairs"])
    return {
        "pairs_compared": n,
        "share_preferring_stereotype": prefers / n,
        "lm_eval_pct_stereotype": theirs_share,
        "signs_agree": agree,
        "signs_differ": n - agree,
        "ties": ties,
        "mean_abs_sentence_loglik_difference": sum(sentence_gaps) / len(sentence_gaps),
        "max_abs_sentence_loglik_difference": max(sentence_gaps),
        "mean_abs_pair_delta_difference": sum(delta_gaps) / len(delta_gaps),
        "disagreements": disagreements[:20],
    }


def limited_copy(crows: Path, limit: int | None, out: Path) -> Path:
    """The release CSV, or its first ``limit`` pairs (same layout) for a quick run."""
    if limit is None:
        return crows
    with crows.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    copy = out / f"crows_first_{limit}.csv"
    with copy.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows[: limit + 1])
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="compare", choices=["compare", WORKER])
    parser.add_argument("--crows", type=Path, required=True, help="crows_pairs_anonymized.csv (the release)")
    parser.add_argument("--model", default="smollm2", help="probelens model name or folder")
    parser.add_argument("--lmeval-python", default="/work/lmeval-venv/bin/python")
    parser.add_argument("--out", type=Path, default=Path("bench-crows"))
    parser.add_argument("--limit", type=int, default=None, help="the first N pairs only")
    parser.add_argument("--batch-size", type=int, default=16, help="lm-eval's batch size")
    parser.add_argument("--lmeval-out", type=Path, default=None, help="worker: where to write its records")
    args = parser.parse_args()
    if args.mode == WORKER:
        lmeval_worker(args.crows, Path(args.model), args.lmeval_out, args.batch_size)
        return

    args.out.mkdir(parents=True, exist_ok=True)
    crows = limited_copy(args.crows.resolve(), args.limit, args.out.resolve())
    model_dir = Path(args.model)
    if not model_dir.exists():
        from audit.bundled.registry import ensure_bundled

        model_dir = ensure_bundled(args.model)
    lmeval_file = args.out / "lmeval.json"
    if not lmeval_file.exists():
        subprocess.run(
            [args.lmeval_python, __file__, WORKER, "--crows", str(crows), "--model", str(model_dir),
             "--lmeval-out", str(lmeval_file), "--batch-size", str(args.batch_size)],
            check=True, env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
    lmeval = json.loads(lmeval_file.read_text(encoding="utf-8"))
    report: dict[str, Any] = {
        "pairs": len(lmeval["pairs"]),
        "model": str(model_dir),
        "lm_eval": {k: lmeval[k] for k in ("prefix_token", "prefix_token_id", "metrics", "seconds")},
    }
    for start_token in ("bos", "none"):
        ours = probelens_run(crows, str(model_dir), args.out.resolve() / "runs", start_token)
        report[f"probelens_{start_token}"] = {
            **compare(lmeval, ours),
            "start_token": ours["start_token"],
            "findings": ours["findings"],
            "seconds": ours["seconds"],
        }
    (args.out / "comparison.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    for key in ("probelens_bos", "probelens_none"):
        row = report[key]
        print(
            f"{key}: share {row['share_preferring_stereotype']:.4f} (lm-eval {row['lm_eval_pct_stereotype']:.4f}), "
            f"signs agree {row['signs_agree']}/{row['pairs_compared']}, mean |sentence loglik diff| "
            f"{row['mean_abs_sentence_loglik_difference']:.2e} (max {row['max_abs_sentence_loglik_difference']:.2e})"
        )


if __name__ == "__main__":
    main()

"""Golden audits: a fixed set of real CLI runs whose tables must not change when the code is moved.

Each case builds a tiny model of one task family (or names the bundled ``minilm-sentiment``), runs
``audit run`` on it with probe sets of every probe kind (counterfactual, parallel, long document,
multiple choice), with attributions and attention statistics where the family has them, and
compares every parquet table of the run with the one recorded under ``tests/data/golden/<case>/``.
The command of each case is stored beside its tables (``command.txt``).

Record (only when a change is meant to alter the tables; say why in the commit):

    .venv/bin/python -m tests.support.golden record [CASE ...]

``tests/test_golden.py`` reruns every case and compares (floats within 1e-9). Everything runs on
one torch thread, so results do not depend on how many cores the machine has.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "data" / "golden"
TOLERANCE = 1e-9
FAST = ("--attribute-top", "2", "--ig-steps", "8")


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], tuple[str, tuple[str, ...]]]  # work folder -> (model, probe arguments)
    extra: tuple[str, ...] = FAST
    exit_code: int = 0


def _classifier(work: Path) -> tuple[str, tuple[str, ...]]:
    from tests.support import tiny_models

    model = tiny_models.train_tiny_classifier(work / "clf", planted_bias=True)
    probes = tiny_models.write_pairs_csv(work / "gender-pairs.csv")
    return str(model), ("--probes", str(probes))


def _embedder(work: Path) -> tuple[str, tuple[str, ...]]:
    from tests.support import tiny_models

    model = tiny_models.train_tiny_embedder(work / "emb", planted_association=True)
    probes = tiny_models.write_gender_probe_yaml(work / "tiny-gender.yaml")
    return str(model), ("--probes", str(probes))


def _parallel(work: Path) -> tuple[str, tuple[str, ...]]:
    from tests.support.multilingual_models import train_multilingual_classifier, write_parallel_csv

    model = train_multilingual_classifier(work / "multi", planted_language="de")
    probes = write_parallel_csv(work / "tiny-parallel.csv")
    return str(model), ("--probes", str(probes))


def _long_document(work: Path) -> tuple[str, tuple[str, ...]]:
    from tests.support.long_models import train_key_reader, write_long_probe_file

    model = train_key_reader(work / "key-reader")
    probes = write_long_probe_file(
        work / "tiny-long.yaml", lengths=(128, 600), positions=(0.0, 0.5, 1.0), swaps=True
    )
    return str(model), ("--probes", str(probes))


def _question_answering(work: Path) -> tuple[str, tuple[str, ...]]:
    from tests.support.ner_qa_models import train_tiny_qa

    return str(train_tiny_qa(work / "qa", planted_in="ambig")), ()


def _token_classification(work: Path) -> tuple[str, tuple[str, ...]]:
    from tests.support.ner_qa_models import train_tiny_ner

    return str(train_tiny_ner(work / "ner", planted=True)), ()


def _masked_lm(work: Path) -> tuple[str, tuple[str, ...]]:
    from tests.support.mlm_models import build_masked_lm

    crows = REPO / "tests" / "data" / "public" / "crows_pairs_anonymized.csv"
    return str(build_masked_lm(work / "mlm", seed=3)), ("--probes", str(crows))


def _causal_lm(work: Path) -> tuple[str, tuple[str, ...]]:
    from tests.support import causal_models

    model = causal_models.train_tiny_causal_lm(work / "causal", trained=True)
    probes = causal_models.write_occupation_probes(work / "occupations.yaml")
    return str(model), ("--probes", str(probes))


def _seq2seq(work: Path) -> tuple[str, tuple[str, ...]]:
    from tests.support.seq2seq_models import save_random_seq2seq

    model = save_random_seq2seq(work / "t5", "t5", t5_prefix=True)
    return str(model), ("--probes", "translation-gender-de", "--max-instances", "4")


def _module(work: Path) -> tuple[str, tuple[str, ...]]:
    return "tests.lstm_package.models:build_planted", ("--probes", "gender", "--max-instances", "12")


def _minilm_sentiment(work: Path) -> tuple[str, tuple[str, ...]]:
    return "minilm-sentiment", ("--probes", "gender", "--probes", "multilingual", "--max-instances", "6")


CASES: tuple[Case, ...] = (
    Case("classifier", _classifier),
    Case("embedder", _embedder),
    Case("parallel", _parallel),
    Case("long-document", _long_document),
    Case("question-answering", _question_answering),
    Case("token-classification", _token_classification),
    Case("masked-lm", _masked_lm),
    Case("causal-lm", _causal_lm, extra=(*FAST, "--generate", "2")),
    Case("seq2seq", _seq2seq),
    Case("module", _module),
    Case("minilm-sentiment", _minilm_sentiment),
)


def command(case: Case, model: str, probes: tuple[str, ...], out: Path) -> list[str]:
    return [
        "run",
        "--model",
        model,
        *probes,
        *case.extra,
        "--out",
        str(out),
        "--name",
        case.name,
        "--seed",
        "0",
    ]


def run_case(case: Case, work: Path) -> tuple[Path, list[str]]:
    """Build the case's model in ``work``, run the real CLI in-process; the run folder and the command."""
    import torch

    from tests.support.cli import invoke_main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        work.mkdir(parents=True, exist_ok=True)
        model, probes = case.build(work)
        args = command(case, model, probes, work / "runs")
        code = invoke_main(*args)
    finally:
        torch.set_num_threads(threads)
    if code != case.exit_code:
        raise AssertionError(f"golden case {case.name}: audit {' '.join(args)} exited {code}")
    return work / "runs" / case.name, args


def tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    return {path.stem: pd.read_parquet(path) for path in sorted(run_dir.glob("*.parquet"))}


def differences(expected: pd.DataFrame, actual: pd.DataFrame, table: str) -> list[str]:
    """What differs between two tables (columns, rows, values; floats beyond TOLERANCE)."""
    if list(expected.columns) != list(actual.columns):
        return [f"{table}: columns {list(expected.columns)} != {list(actual.columns)}"]
    if len(expected) != len(actual):
        return [f"{table}: {len(expected)} rows recorded, {len(actual)} now"]
    problems = []
    for column in expected.columns:
        a, b = expected[column].reset_index(drop=True), actual[column].reset_index(drop=True)
        if pd.api.types.is_float_dtype(a) and pd.api.types.is_float_dtype(b):
            both_missing = a.isna() & b.isna()
            close = ((a - b).abs() <= TOLERANCE) | both_missing | (a == b)
            bad = ~close
        else:
            bad = ~((a.astype(object) == b.astype(object)) | (a.isna() & b.isna()))
            bad = bad.astype(bool)
            # nested values (lists, arrays): compare by their text
            if bad.any():
                bad = a.astype(str) != b.astype(str)
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            problems.append(
                f"{table}.{column}: {int(bad.sum())} rows differ, first at row {row}: {a[row]!r} != {b[row]!r}"
            )
    return problems


def record(names: list[str]) -> None:
    import shutil
    import tempfile

    unknown = sorted(set(names) - {case.name for case in CASES})
    if unknown:
        raise SystemExit(f"no golden case {unknown}; the cases: {[case.name for case in CASES]}")
    chosen = [case for case in CASES if not names or case.name in names]
    with tempfile.TemporaryDirectory() as tmp:
        for case in chosen:
            run_dir, args = run_case(case, Path(tmp) / case.name)
            dest = GOLDEN / case.name
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            for path in sorted(run_dir.glob("*.parquet")):
                shutil.copy(path, dest / path.name)
            shown = [a.replace(tmp, "$WORK").replace(str(REPO), "$REPO") for a in args]
            (dest / "command.txt").write_text("audit " + " ".join(shown) + "\n", encoding="utf-8")
            print(f"recorded {case.name}: {len(list(dest.glob('*.parquet')))} tables")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "record":
        raise SystemExit("usage: python -m tests.support.golden record [CASE ...]")
    record(sys.argv[2:])

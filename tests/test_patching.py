"""Activation patching (--patching, audit/patching.py): real tiny models through the CLI.

- layer 0: patching a pair's one swapped token restores the whole difference, any other token
  nothing (encoder classifier, decoder, encoder-decoders with and without a task prefix);
- a classifier whose planted bias passes through one known attention layer (tests/support/
  circuit_models.py): the effect sits at the swapped token up to that layer and at [CLS] after
  it; the control moves the circuit to another layer and the map moves with it;
- the batched hooks agree with a one-patch-per-pass reference written here;
- off by default (empty tables), refused with a warning where a task cannot be patched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from audit.metrics.options import TestOptions
from audit.metrics.stats import BCA_BOOTSTRAP, SIGN_FLIP_INVERSION
from audit.patching import patching_effects, relative_positions, transformer_blocks
from audit.tables import TABLES
from tests.support.cli import invoke_main

TOL = 1e-5
PAIR = ["probe_set", "instance_id", "group_a", "group_b"]


def run(model: Path | str, probes: list[str], out: Path, name: str, *extra: str) -> Path:
    code = invoke_main(
        "run", "--model", model, *probes, "--out", out, "--name", name,
        "--no-attributions", "--no-attention", *extra,
    )  # fmt: skip
    assert code == 0, f"audit run {name} exited {code}"
    return out / name


def single_swaps(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of pairs that differ in exactly one token and have a difference to restore."""
    swapped = table[(table["layer"] == 0)].groupby(PAIR)["is_focus"].sum()
    keep = swapped[swapped == 1].index
    rows = table.set_index(PAIR).loc[keep].reset_index()
    return rows[rows["restored_fraction"].notna()]


def assert_layer_zero(table: pd.DataFrame) -> int:
    """At layer 0 the swapped token restores 1 and every other token 0; returns the pairs checked."""
    rows = single_swaps(table)
    zero = rows[rows["layer"] == 0]
    assert len(zero), "no single-token swap to check"
    focus, other = zero[zero["is_focus"]], zero[~zero["is_focus"]]
    assert np.allclose(focus["restored_fraction"], 1.0, atol=TOL), focus["restored_fraction"].describe()
    assert np.allclose(other["restored_fraction"], 0.0, atol=TOL), other["restored_fraction"].abs().max()
    return len(focus)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.support import causal_models, tiny_models
    from tests.support.circuit_models import train_circuit_classifier
    from tests.support.seq2seq_models import save_random_seq2seq

    root = tmp_path_factory.mktemp("patching-models")
    return {
        "planted": tiny_models.train_tiny_classifier(root / "planted", planted_bias=True),
        "pairs": tiny_models.write_pairs_csv(root / "pairs.csv"),
        "circuit-1": train_circuit_classifier(root / "circuit-1", circuit_layer=1),
        "circuit-2": train_circuit_classifier(root / "circuit-2", circuit_layer=2),
        "llama": causal_models.train_tiny_causal_lm(root / "llama"),
        "occupations": causal_models.write_occupation_probes(root / "occupations.yaml"),
        "mood": causal_models.write_mood_probes(root / "mood.yaml", continuations=["happy", "tired and sad"]),
        "t5": save_random_seq2seq(root / "t5", "t5", t5_prefix=True),
        "bart": save_random_seq2seq(root / "bart", "bart"),
    }


@pytest.fixture(scope="module")
def planted_run(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("planted-runs")
    return run(
        models["planted"],
        ["--probes", str(models["pairs"])],
        out,
        "planted",
        "--attribute-top",
        "all",
        "--patching",
    )


def test_layer_zero_restores_the_swap_and_nothing_else_on_the_planted_classifier(planted_run: Path) -> None:
    table = pd.read_parquet(planted_run / "patching.parquet")
    assert list(table.columns) == TABLES["patching"]
    effects = pd.read_parquet(planted_run / "effects.parquet")
    pairs = effects[effects["group_b"] != "rest"]
    patched = table[PAIR].drop_duplicates()
    assert len(patched) == len(pairs) == 80  # every he/she pair is aligned and attributed ('all')
    restorable = int(table.groupby(PAIR)["restored_fraction"].apply(lambda s: s.notna().any()).sum())
    assert restorable >= 75 and assert_layer_zero(table) == restorable
    # the table's delta is the finding's, and the restored fraction is its own definition
    merged = table.merge(pairs[[*PAIR, "output", "delta"]], on=[*PAIR, "output"], suffixes=("", "_effects"))
    assert np.allclose(merged["delta"], merged["delta_effects"])
    assert np.allclose(
        merged["score_a"] - merged["score_b"], merged["delta"], atol=1e-5
    )  # a classifier: f(b)
    defined = merged[merged["restored_fraction"].notna()]
    recomputed = (defined["score_patched"] - defined["score_a"]) / (defined["score_b"] - defined["score_a"])
    assert np.allclose(recomputed, defined["restored_fraction"], atol=1e-6)
    summary = pd.read_parquet(planted_run / "patching_effects.parquet")
    assert list(summary.columns) == TABLES["patching_effects"]
    first = summary[(summary["layer"] == 0) & (summary["relative_position"] == "focus")].iloc[0]
    assert first["effect"] == pytest.approx(1.0, abs=TOL) and first["n"] == restorable
    manifest = json.loads((planted_run / "manifest.json").read_text())
    assert manifest["summary"]["n_patched_pairs"] == 80
    assert "patching" in manifest["timings"]


def reference_patch(model_dir: Path, text_a: str, text_b: str, layer: int, token: int) -> float:
    """P(positive) of a with b's layer output at one token, one patch per forward pass."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    a, b = (tokenizer(t, return_tensors="pt")["input_ids"] for t in (text_a, text_b))
    with torch.no_grad():
        source = model(input_ids=b, output_hidden_states=True).hidden_states[layer]
        module: nn.Module = model.bert.encoder.layer[layer - 1]

        def swap(_: nn.Module, __: object, output: torch.Tensor) -> torch.Tensor:
            output = output.clone()
            output[0, token] = source[0, token]
            return output

        handle = module.register_forward_hook(swap)
        try:
            probabilities = torch.softmax(model(input_ids=a).logits, dim=-1)
        finally:
            handle.remove()
    return float(probabilities[0, 1])


def test_batched_patches_match_one_patch_per_pass(planted_run: Path, models: dict[str, Path]) -> None:
    table = pd.read_parquet(planted_run / "patching.parquet")
    examples = pd.read_parquet(planted_run / "examples.parquet").set_index(["instance_id", "variant"])["text"]
    checked = 0
    for instance in ("positive-03", "negative-07", "neutral-12"):
        rows = table[(table["instance_id"] == instance) & (table["layer"] > 0)]
        group_a, group_b = rows["group_a"].iloc[0], rows["group_b"].iloc[0]
        for row in rows.itertuples():
            expected = reference_patch(
                models["planted"],
                examples[(instance, group_a)],
                examples[(instance, group_b)],
                row.layer,
                row.token_index,
            )
            assert row.score_patched == pytest.approx(expected, abs=1e-5), (instance, row.layer, row.token)
            checked += 1
    assert checked > 30


@pytest.mark.parametrize("circuit", [1, 2])
def test_the_heat_map_puts_the_effect_where_the_circuit_was_built(
    circuit: int, models: dict[str, Path], tmp_path: Path
) -> None:
    """Control: the same probes on the circuit built one layer earlier give the map shifted with it."""
    run_dir = run(
        models[f"circuit-{circuit}"], ["--probes", str(models["pairs"])], tmp_path, "circuit",
        "--attribute-top", "all", "--patching",
    )  # fmt: skip
    findings = pd.read_parquet(run_dir / "findings.parquet")
    assert findings.loc[findings["metric"] == "mean_delta", "significant"].all()  # the planted bias is real
    table = single_swaps(pd.read_parquet(run_dir / "patching.parquet"))
    assert table[PAIR].drop_duplicates().shape[0] >= 40
    carried = np.where(table["layer"] < circuit, table["is_focus"], table["relative_position"] == "start")
    assert np.allclose(table.loc[carried, "restored_fraction"], 1.0, atol=TOL)
    assert np.allclose(table.loc[~carried, "restored_fraction"], 0.0, atol=TOL)
    heat = pd.read_parquet(run_dir / "patching_effects.parquet")
    strongest = heat.loc[heat.groupby("layer")["effect"].idxmax()].set_index("layer")["relative_position"]
    assert strongest.to_dict() == {layer: "focus" if layer < circuit else "start" for layer in range(4)}


def test_decoder_patching_scores_a_tokens_and_respects_causality(
    models: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = run(
        models["llama"], ["--probes", str(models["occupations"]), "--probes", str(models["mood"])], tmp_path,
        "llama", "--attribute-top", "6", "--patching",
    )  # fmt: skip
    table = pd.read_parquet(run_dir / "patching.parquet")
    assert set(table["probe_set"]) == {"tiny-occupations", "tiny-mood-continuations"}
    assert table["layer"].max() == 2  # embeddings and the two blocks
    assert assert_layer_zero(table) >= 8
    # nothing before the first swapped token can change: the causal mask hides what comes after
    first = table[table["is_focus"]].groupby(PAIR)["token_index"].min().rename("first").reset_index()
    before = table.merge(first, on=PAIR)
    assert (before.loc[before["token_index"] < before["first"], "restored_fraction"].abs() <= TOL).all()
    effects = pd.read_parquet(run_dir / "effects.parquet")
    merged = table.merge(effects, on=[*PAIR, "output"], suffixes=("", "_effects"))
    assert np.allclose(merged["score_a"], merged["score_a_effects"], atol=1e-4)
    continuations = merged[merged["probe_set"] == "tiny-mood-continuations"]
    assert np.allclose(
        continuations["score_b"], continuations["score_b_effects"], atol=1e-4
    )  # shared targets
    loglik = merged[merged["probe_set"] == "tiny-occupations"]
    # whole-text log-likelihood: b's words, a's tokens scored; differs from f(b) by the swapped tokens' own terms
    assert (abs(loglik["score_b"] - loglik["score_b_effects"]) > 1e-3).all()
    notes = pd.read_parquet(run_dir / "patching_effects.parquet").groupby("probe_set")["note"].first()
    assert "context" in notes["tiny-occupations"] and pd.isna(notes["tiny-mood-continuations"])


@pytest.mark.parametrize("architecture", ["t5", "bart"])
def test_encoder_decoder_patching_on_the_encoder_side(
    architecture: str, models: dict[str, Path], tmp_path: Path
) -> None:
    """T5 with a task prefix inserted after the leading special tokens, BART with a leading <s>."""
    run_dir = run(
        models[architecture], ["--probes", "translation-gender-de", "--max-instances", "6"], tmp_path,
        architecture, "--attribute-top", "6", "--patching",
    )  # fmt: skip
    table = pd.read_parquet(run_dir / "patching.parquet")
    assert table["layer"].max() == 2
    assert assert_layer_zero(table) >= 2
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert any("different numbers of tokens" in w for w in manifest["warnings"])  # unaligned pairs say so
    notes = pd.read_parquet(run_dir / "patching_effects.parquet")["note"]
    assert notes.str.startswith("encoder side").all()


def test_patching_and_pair_attributions_cover_the_same_pairs(models: dict[str, Path], tmp_path: Path) -> None:
    """One choice of pairs for both stages (audit.attribution.contrast.attributed_pairs): the pairs
    patched are exactly those pair integrated gradients explains (aligned token for token), every one
    of them also explained by occlusion, and the ones occlusion explains alone are those the warning
    counts as unaligned (T5: translations of different lengths)."""
    code = invoke_main(
        "run", "--model", models["t5"], "--probes", "translation-gender-de", "--max-instances", "6",
        "--out", tmp_path, "--name", "both", "--no-attention", "--attribute-top", "6", "--ig-steps", "8",
        "--patching",
    )  # fmt: skip
    assert code == 0
    patched = pd.read_parquet(tmp_path / "both" / "patching.parquet")[PAIR].drop_duplicates()
    explained = pd.read_parquet(tmp_path / "both" / "pair_attributions.parquet")
    by_method = {
        m: set(map(tuple, rows[PAIR].drop_duplicates().to_numpy())) for m, rows in explained.groupby("method")
    }
    patched_pairs = set(map(tuple, patched.to_numpy()))
    assert patched_pairs and patched_pairs == by_method["pair_integrated_gradients"]
    left_out = by_method["occlusion"] - patched_pairs
    assert patched_pairs < by_method["occlusion"] and left_out
    warnings = json.loads((tmp_path / "both" / "manifest.json").read_text())["warnings"]
    line = next(w for w in warnings if "do not align token for token" in w)
    assert line.startswith(
        f"activation patching: {len(left_out)} of {len(by_method['occlusion'])} attributed pairs"
    )


def test_patching_is_off_by_default_and_refused_where_it_cannot_follow_the_model(
    models: dict[str, Path], tmp_path: Path
) -> None:
    from tests.support.mlm_models import build_masked_lm, preference_pairs, write_crows_pairs_csv

    plain = run(models["planted"], ["--probes", str(models["pairs"])], tmp_path, "plain")
    for name in ("patching", "patching_effects"):
        frame = pd.read_parquet(plain / f"{name}.parquet")
        assert frame.empty and list(frame.columns) == TABLES[name]
    assert json.loads((plain / "manifest.json").read_text())["config"]["patching"] is False
    crows = write_crows_pairs_csv(tmp_path / "crows.csv", preference_pairs()[:6])
    mlm = run(build_masked_lm(tmp_path / "mlm"), ["--probes", str(crows)], tmp_path, "mlm-run", "--patching")
    warnings = json.loads((mlm / "manifest.json").read_text())["warnings"]
    assert any(w.startswith("activation patching skipped") and "masked LM" in w for w in warnings), warnings
    assert pd.read_parquet(mlm / "patching.parquet").empty


def restored_rows(fractions: list[float], probe_set: str) -> pd.DataFrame:
    """One patching row per instance (one pair, one token at layer 1's focus) with these fractions."""
    return pd.DataFrame(
        {
            "probe_set": probe_set,
            "instance_id": [f"i{i}" for i in range(len(fractions))],
            "group_a": "female",
            "group_b": "male",
            "output": "prob:positive",
            "layer": 1,
            "relative_position": "focus",
            "restored_fraction": fractions,
        }
    )


def test_the_aggregate_interval_agrees_with_its_test_at_every_n() -> None:
    """As findings' mean_delta: up to 29 instances the inverted sign-flip test (unbounded at n <= 5,
    never BCa's zero-width interval at n = 1 or [min, max] at n = 2), BCa above; the interval
    excludes 0 exactly when p <= 0.05."""
    rng = np.random.default_rng(3)
    sizes = {"one": [0.4], "two": [0.2, 0.6], "five": [0.1, 0.2, 0.3, 0.4, 0.5]}
    sizes |= {"ten": list(rng.normal(0.3, 0.2, 10)), "null": list(rng.normal(0.0, 0.2, 12))}
    sizes |= {"forty": list(rng.normal(0.1, 0.3, 40))}
    table = pd.concat([restored_rows(v, k) for k, v in sizes.items()], ignore_index=True)
    options = TestOptions(n_resamples=500, n_permutations=2000)
    effects = patching_effects(table, {}, {}, options).set_index("probe_set")
    assert list(effects.reset_index().columns) == TABLES["patching_effects"]
    for name in ("one", "two", "five"):
        row = effects.loc[name]
        assert (row["ci_low"], row["ci_high"]) == (-np.inf, np.inf), name
        assert row["ci_method"] == SIGN_FLIP_INVERSION and row["p_value"] > 0.05
    assert effects.loc["forty", "ci_method"] == BCA_BOOTSTRAP
    assert (effects.loc[["ten", "null"], "ci_method"] == SIGN_FLIP_INVERSION).all()
    assert effects.loc["ten", "p_value"] <= 0.05 < effects.loc["null", "p_value"]
    excludes = (effects["ci_low"] > 0) | (effects["ci_high"] < 0)
    assert (excludes == (effects["p_value"] <= 0.05)).all()
    assert effects.loc["two", "effect"] == pytest.approx(0.4) and effects.loc["ten", "n"] == 10


def test_relative_positions_line_up_on_the_swapped_tokens() -> None:
    special = [True, False, False, False, False, False, False, False, True]
    focus = [False, False, False, False, True, False, False, False, False]
    assert relative_positions(special, focus) == [
        "start", "before:3+", "before:2", "before:1", "focus", "after:1", "after:2", "after:3+", "end",
    ]  # fmt: skip
    two = [False, True, False, True, False]
    assert relative_positions([False] * 5, two) == ["before:1", "focus", "between", "focus", "after:1"]


def test_blocks_are_found_or_the_error_says_what_was_there() -> None:
    class Stack(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
            self.inner = nn.ModuleList([nn.Sequential(nn.ModuleList([nn.Linear(2, 2)] * 3))])

    found = transformer_blocks(Stack(), 3)
    assert len(found) == 3 and all(isinstance(m, nn.Linear) for m in found)
    with pytest.raises(ValueError, match=r"no list of 4 blocks .*layers \(3\).*run without --patching"):
        transformer_blocks(Stack(), 4)

    class Twin(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.left = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
            self.right = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])

    with pytest.raises(
        ValueError, match=r"several lists .*left, right.*Llama-family.*run without --patching"
    ):
        transformer_blocks(Twin(), 3)


def block_output(block: nn.Module, call: Callable[[], object]) -> torch.Tensor:
    """The first output of ``block`` during ``call()``."""
    kept: list[torch.Tensor] = []
    handle = block.register_forward_hook(lambda m, i, o: kept.append(o[0].clone()))
    try:
        call()
    finally:
        handle.remove()
    return kept[0]


def test_t5_blocks_are_patched_behind_the_task_prefix(models: dict[str, Path], tmp_path: Path) -> None:
    """T5 reads "translate English to German: " + the text: a block's position of token t is t + the
    prefix's length. A one-patch-per-pass reference through the run's own score head agrees."""
    from audit.config import AuditConfig
    from audit.stages.encode import encode
    from audit.stages.prepare import prepare
    from audit.stages.progress import Timer
    from tests.support.seq2seq_models import T5_PREFIX

    probes = ["--probes", "translation-gender-de", "--max-instances", "6"]
    run_dir = run(models["t5"], probes, tmp_path, "t5", "--attribute-top", "6", "--patching")
    table = pd.read_parquet(run_dir / "patching.parquet")
    config = AuditConfig(models=[str(models["t5"])], probes=["translation-gender-de"], max_instances=6)
    prepared = prepare(config, str(models["t5"]), Timer())
    item = encode(prepared, Timer()).sets[0]
    target = prepared.target
    shift = len(target.tokenizer(T5_PREFIX, add_special_tokens=False)["input_ids"])
    key = table.loc[table["restored_fraction"].notna(), PAIR].iloc[0]
    rows = table[(table[PAIR] == key).all(axis=1) & (table["layer"] > 0)]
    a, b = (
        item.example_ids.index(f"{key.probe_set}/{key.instance_id}/{key[g]}") for g in ("group_a", "group_b")
    )
    inputs = {v: torch.tensor([item.texts[v].windows[0].input_ids]) for v in (a, b)}
    output = item.head.outputs.index(rows["output"].iloc[0])
    blocks = target.transformer().block
    with torch.no_grad():
        for row in rows.itertuples():
            block = blocks[row.layer - 1]
            kept = block_output(
                block, lambda: item.head.forward(inputs[b], torch.ones_like(inputs[b]), torch.tensor([a]))
            )

            def swap(
                _: nn.Module,
                __: object,
                out: tuple,
                t: int = row.token_index + shift,
                source: torch.Tensor = kept,
            ) -> tuple:
                hidden = out[0].clone()
                hidden[0, t] = source[0, t]
                return (hidden, *out[1:])

            handle = block.register_forward_hook(swap)
            score = item.head.forward(inputs[a], torch.ones_like(inputs[a]), torch.tensor([a]))[0, output]
            handle.remove()
            assert row.score_patched == pytest.approx(float(score), abs=1e-4), (row.layer, row.token)
    assert len(rows) >= 10


def tiny_bert() -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
    )
    return BertForSequenceClassification(config).eval()


def test_hooks_follow_a_score_that_runs_its_rows_in_slices_and_more_than_once() -> None:
    """A causal LM's head runs a batch in slices of rows (its logit budget) and once per continuation:
    the patched scores must not depend on how the score splits or repeats its passes."""
    from audit.patching import PatchPair, PatchSites, patch_pairs

    model = tiny_bert()
    sites = PatchSites([model.bert.embeddings.word_embeddings, *model.bert.encoder.layer])

    def whole(ids: torch.Tensor, mask: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return (
            model(input_ids=ids, attention_mask=mask).logits * 100
        )  # a random model: make its difference count

    def sliced_twice(ids: torch.Tensor, mask: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        runs = [
            torch.cat([whole(ids[i : i + 3], mask[i : i + 3], index) for i in range(0, len(ids), 3)])
            for _ in range(2)
        ]
        return (runs[0] + runs[1]) / 2

    pairs = [
        PatchPair([2, 5, 6, 7, 3], [2, 5, 9, 7, 3], 0, 1, lead=1),
        PatchPair([2, 8, 5, 6, 7, 4, 3], [2, 11, 5, 6, 7, 4, 3], 1, 1, lead=1),
    ]
    expected = patch_pairs(whole, sites, pairs, pad_id=0, device=torch.device("cpu"))
    found = patch_pairs(sliced_twice, sites, pairs, pad_id=0, device=torch.device("cpu"), batch_tokens=40)
    for one, other in zip(expected, found, strict=True):
        assert np.allclose(one.patched, other.patched, atol=1e-6)
        assert one.ran.sum() > one.ran.shape[1]  # blocks were patched, not only layer 0
    assert np.allclose(expected[0].restored[0], [0, 0, 1, 0, 0], atol=TOL)


def test_a_score_that_adds_positions_the_hooks_do_not_know_stops_with_an_error() -> None:
    """A head that put a start token in front of the text inside its forward would shift every
    position: patching refuses to guess rather than patch the wrong token."""
    from audit.patching import PatchPair, PatchSites, patch_pairs

    model = tiny_bert()
    sites = PatchSites([model.bert.embeddings.word_embeddings, *model.bert.encoder.layer])

    def with_start_token(ids: torch.Tensor, mask: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ids = torch.cat([torch.full_like(ids[:, :1], 2), ids], dim=1)
        mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        return torch.softmax(model(input_ids=ids, attention_mask=mask).logits, dim=-1)

    with pytest.raises(RuntimeError, match="returned 6 positions for inputs of 5 tokens"):
        patch_pairs(
            with_start_token,
            sites,
            [PatchPair([2, 5, 6, 7, 3], [2, 5, 9, 7, 3], 0, 1)],
            pad_id=0,
            device=torch.device("cpu"),
        )

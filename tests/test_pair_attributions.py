"""What explains the difference between two variants (the pair_attributions table), on real tiny models
through the CLI: pair integrated gradients adds up to the finding's delta, occlusion puts the swapped
word first where a bias was planted, an unbiased control explains small deltas and claims nothing,
and a plain PyTorch module is explained by occlusion without gradients."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from audit.attribution.batches import TokenizedText
from audit.attribution.integrated import COMPLETENESS_FLOOR, IntegrationSettings
from audit.attribution.occlusion import OcclusionPair, neutral_token, occlusion_values, word_units
from audit.attribution.pairs import AlignedPair, pair_integrated_gradients
from audit.tables import TABLES
from tests.support.cli import invoke_main

PAIR = ["probe_set", "instance_id", "group_a", "group_b"]


def pair_table(run_dir: Path) -> pd.DataFrame:
    table = pd.read_parquet(run_dir / "pair_attributions.parquet")
    assert list(table.columns) == TABLES["pair_attributions"]
    return table


@pytest.fixture(scope="module")
def fair_run(
    tmp_path_factory: pytest.TempPathFactory, fair_classifier: Path, classifier_probes: Path
) -> Path:
    runs = tmp_path_factory.mktemp("pair-fair")
    code = invoke_main(
        "run", "--model", fair_classifier, "--probes", classifier_probes, "--out", runs, "--name", "fair",
        "--attribute-top", "5", "--ig-steps", "16",
    )  # fmt: skip
    assert code == 0
    return runs / "fair"


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch) -> Path:
    """The planted LSTM (a plain module) with gradient x input as the only attribution method: no
    integrated gradients anywhere, so the pairs are explained by occlusion alone."""
    runs = tmp_path_factory.mktemp("pair-lstm")
    config = runs / "audit.yaml"
    config.write_text("attribution_methods: [gradient_x_input]\n", encoding="utf-8")
    code = invoke_main(
        "run", "--model", "tests.lstm_package.models:build_planted", "--probes", "gender", "--max-instances", "12",
        "--attribute-top", "4", "--config", config, "--out", runs, "--name", "lstm",
    )  # fmt: skip
    assert code == 0
    return runs / "lstm"


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(Path(__file__).resolve().parent.parent)  # tests.lstm_package imports from the repository
        yield patch


# ---------------------------------------------------------------- the planted-bias classifier


def test_pair_ig_sums_to_the_findings_delta(cli_run_dir: Path) -> None:
    run_dir = cli_run_dir / "tiny-biased"
    table = pair_table(run_dir)
    effects = pd.read_parquet(run_dir / "effects.parquet")
    ig = table[table["method"] == "pair_integrated_gradients"]
    assert ig[PAIR].drop_duplicates().shape[0] == 5 * 1  # five instances, one pair of groups each
    sums = ig.groupby(PAIR).agg(total=("attribution", "sum"), delta=("pair_delta", "first"))
    merged = sums.reset_index().merge(effects[[*PAIR, "output", "delta"]], on=PAIR)
    assert (merged["delta_x"] == merged["delta_y"]).all(), "pair_delta is the effects table's delta"
    assert ((merged["total"] - merged["delta_x"]).abs() <= 0.01 * merged["delta_x"].abs()).all()
    # one integrator: the run's --ig-steps 16 first, refined (trapezoid) up to --ig-max-steps, held to
    # min(--ig-tolerance 5%, 1%) of the pair's delta
    assert ig["converged"].all() and ig["n_steps"].between(16, 1024).all()
    per_pair = ig.drop_duplicates(PAIR).merge(merged[[*PAIR, "total"]], on=PAIR)
    recorded = (per_pair["total"] - per_pair["pair_delta"]).abs() / per_pair["pair_delta"].abs()
    assert (per_pair["completeness_error"] - recorded).abs().max() < 1e-4, "the error is the rows' own"
    assert (ig["completeness_error"] <= 0.01).all()
    # the path starts at b's tokens: shared tokens have nothing to integrate
    assert (ig.loc[~ig["is_focus"], "attribution"] == 0).all()


def test_occlusion_ranks_the_swapped_word_first(cli_run_dir: Path) -> None:
    table = pair_table(cli_run_dir / "tiny-biased")
    occlusion = table[table["method"] == "occlusion"]
    swapped = occlusion[occlusion["is_focus"]]
    assert swapped.groupby(PAIR).size().eq(1).all(), "the swapped words form one unit per pair"
    assert swapped["text"].isin(["he → she", "she → he"]).all()
    # measured, not set: he and she are one token each and the classifier reads only its input, so
    # with them neutralised a and b are the same input and the whole delta goes away
    assert (
        (swapped["attribution"] - swapped["pair_delta"]).abs() <= 1e-5 * swapped["pair_delta"].abs()
    ).all()
    first = occlusion.assign(size=occlusion["attribution"].abs()).sort_values("size", ascending=False)
    top = first.groupby(PAIR).head(1)
    assert top["is_focus"].mean() >= 0.8, top[["instance_id", "text", "attribution", "pair_delta"]]
    # every word of a's text has its unit, with its own characters
    examples = pd.read_parquet(cli_run_dir / "tiny-biased" / "examples.parquet").set_index(
        ["instance_id", "variant"]
    )
    for row in occlusion.itertuples(index=False):
        text = examples.loc[(row.instance_id, row.group_a), "text"]
        pieces = [text[s:e] for s, e in json.loads(row.spans)]
        assert " ".join(pieces) == row.text.split(" → ")[0]


def test_unbiased_control_has_small_deltas_and_no_claim(cli_run_dir: Path, fair_run: Path) -> None:
    biased, fair = pair_table(cli_run_dir / "tiny-biased"), pair_table(fair_run)
    assert fair["pair_delta"].abs().max() < 0.05
    assert fair["pair_delta"].abs().max() < biased["pair_delta"].abs().min() / 10
    findings = pd.read_parquet(fair_run / "findings.parquet")
    assert not findings["significant"].any()
    ig = fair[fair["method"] == "pair_integrated_gradients"]
    sums = ig.groupby(PAIR).agg(total=("attribution", "sum"), delta=("pair_delta", "first"))
    assert ((sums["total"] - sums["delta"]).abs() <= 1e-6 + 0.01 * sums["delta"].abs()).all()


# ---------------------------------------------------------------- a plain module, no gradients


def test_plain_module_pairs_are_explained_by_occlusion(lstm_run: Path) -> None:
    table = pair_table(lstm_run)
    manifest = json.loads((lstm_run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "complete"
    assert set(table["method"]) == {"occlusion"}, "no integrated gradients was asked for"
    attributions = pd.read_parquet(lstm_run / "attributions.parquet")
    assert set(attributions["method"]) == {"gradient_x_input"}
    pairs = table[PAIR].drop_duplicates()
    assert len(pairs) >= 4
    swapped = table[table["is_focus"]]
    assert len(swapped) == len(pairs)
    assert (
        (swapped["attribution"] - swapped["pair_delta"]).abs() <= 1e-5 * swapped["pair_delta"].abs()
    ).all()
    assert table["n_steps"].isna().all() and table["converged"].isna().all()


def test_occlusion_runs_without_gradients(tiny_dir: Path) -> None:
    from tests.lstm_package.models import build_planted

    built = build_planted()
    texts = ["she is lovely .", "he is lovely ."]
    encoded = [built.encode(t) for t in texts]  # type: ignore[operator]
    a, b = (TokenizedText(ids, offsets, [False] * len(ids)) for ids, offsets in encoded)
    module = built.module

    def forward(ids: torch.Tensor, mask: torch.Tensor, variant_index: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled(), "occlusion must not build a graph"
        return torch.softmax(module(ids, mask), dim=-1)

    with torch.no_grad():
        scores = forward(
            torch.tensor([a.input_ids, b.input_ids]), torch.ones(2, 4, dtype=torch.long), torch.zeros(2)
        )
    units = word_units(*texts)
    pair = OcclusionPair(a, b, 0, 1, 1, float(scores[0, 1]), float(scores[1, 1]), units)
    (values,) = occlusion_values(forward, [pair], neutral_id=1, pad_id=0, device=torch.device("cpu"))
    delta = float(scores[0, 1] - scores[1, 1])
    assert values[0] == pytest.approx(delta)
    lovely = [u.text for u in units].index("lovely")
    with torch.no_grad():
        occluded = forward(
            torch.tensor(
                [
                    [a.input_ids[0], a.input_ids[1], 1, a.input_ids[3]],
                    [b.input_ids[0], b.input_ids[1], 1, b.input_ids[3]],
                ]
            ),
            torch.ones(2, 4, dtype=torch.long),
            torch.zeros(2),
        )
    assert values[lovely] == pytest.approx(delta - float(occluded[0, 1] - occluded[1, 1]), abs=1e-6)


def test_occlusion_measures_the_swapped_unit_where_it_is_not_the_delta() -> None:
    """Two cases where neutralising the swapped words leaves the variants different: b's swapped word
    has two tokens (the occluded inputs differ in length), and a head that adds a per-variant term
    (``variant_index``, like a masked LM's focus or an answer span). The swapped unit's value is then
    what the occlusion measures, delta - (f(a occluded) - f(b occluded)), not the delta."""
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(8, 4)
    weights, own = torch.randn(4, 1), torch.tensor([[0.0], [0.7]])

    def forward(ids: torch.Tensor, mask: torch.Tensor, variant_index: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh((embedding(ids) * mask[:, :, None]).sum(dim=1))
        return hidden @ weights + own[variant_index.long()]

    def score(ids: list[int], variant: int) -> float:
        with torch.no_grad():
            return float(forward(torch.tensor([ids]), torch.ones(1, len(ids)), torch.tensor([variant])))

    texts = "x he y", "x they z y"  # "he" one token, "they z" stands for a word of two tokens
    a = TokenizedText([2, 3, 5], [(0, 1), (2, 4), (5, 6)], [False] * 3)
    b = TokenizedText([2, 4, 6, 5], [(0, 1), (2, 6), (7, 8), (9, 10)], [False] * 4)
    units = word_units(*texts)
    assert [u.text for u in units] == ["x", "he → they z", "y"]
    pair = OcclusionPair(a, b, 0, 1, 0, score(a.input_ids, 0), score(b.input_ids, 1), units)
    (values,) = occlusion_values(forward, [pair], neutral_id=1, pad_id=0, device=torch.device("cpu"))
    delta = pair.score_a - pair.score_b
    measured = delta - (score([2, 1, 5], 0) - score([2, 1, 1, 5], 1))
    assert values[1] == pytest.approx(measured, abs=1e-6)
    assert abs(values[1] - delta) > 0.1, "the occluded variants still differ: not the delta"
    assert values[0] == pytest.approx(delta - (score([1, 3, 5], 0) - score([1, 4, 6, 5], 1)), abs=1e-6)
    # the same length, but a head with a per-variant term: what is left is that term
    b_same = TokenizedText([2, 4, 5], [(0, 1), (2, 6), (7, 8)], [False] * 3)
    same = OcclusionPair(
        a,
        b_same,
        0,
        1,
        0,
        score(a.input_ids, 0),
        score(b_same.input_ids, 1),
        word_units("x he y", "x they y"),
    )
    (values,) = occlusion_values(forward, [same], neutral_id=1, pad_id=0, device=torch.device("cpu"))
    delta = same.score_a - same.score_b
    assert values[1] == pytest.approx(delta - (0.0 - 0.7), abs=1e-6), "the per-variant term stays"


# ---------------------------------------------------------------- the pieces


def test_word_units_align_shared_words_and_join_the_swapped_ones() -> None:
    units = word_units("He said his work was done.", "She said her work was done.")
    assert [u.text for u in units] == ["He his → She her", "said", "work", "was", "done", "."]
    assert (
        units[0].swapped and units[0].spans_a == ((0, 2), (8, 11)) and units[0].spans_b == ((0, 3), (9, 12))
    )
    assert units[2].spans_a == ((12, 16),) and units[2].spans_b == ((13, 17),)
    inserted = word_units("The nurse left.", "The male nurse left.")
    assert [u.text for u in inserted] == ["The", "∅ → male", "nurse", "left", "."]
    assert inserted[1].spans_a == ()


def test_neutral_token_is_chosen_per_family(biased_classifier: Path) -> None:
    from transformers import AutoTokenizer

    assert neutral_token(AutoTokenizer.from_pretrained(biased_classifier)) == (4, "mask")
    vocab = {"</s>": 0, "<unk>": 1, "he": 2, "she": 3}
    with_unknown = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
        eos_token="</s>",
        unk_token="<unk>",
    )
    assert neutral_token(with_unknown) == (1, "unknown")
    bare = Tokenizer(models.WordLevel({"</s>": 0, "he": 1, "she": 2}, unk_token="</s>"))
    bare.pre_tokenizer = pre_tokenizers.Whitespace()
    assert neutral_token(PreTrainedTokenizerFast(tokenizer_object=bare, eos_token="</s>")) == (0, "baseline")


def test_pair_ig_keeps_the_delta_when_the_head_scores_each_variants_own_tokens() -> None:
    """A head that reads per-variant targets (like a causal LM's likelihood): the path explains the
    context, the rest (a's targets instead of b's) goes to the differing tokens, the sum is the delta."""
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(6, 4)
    weights = torch.randn(4, 6)
    targets = torch.tensor([[2, 3, 5], [2, 4, 5]])  # variant 0 and 1 score their own middle token

    def forward(ids: torch.Tensor, mask: torch.Tensor, variant_index: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(embedding(ids).cumsum(dim=1))
        logp = torch.log_softmax(hidden @ weights, dim=-1)
        own = targets[variant_index]
        return logp.gather(2, own[:, :, None]).squeeze(2).sum(dim=1, keepdim=True)

    offsets, special = [(0, 1), (2, 3), (4, 5)], [False] * 3
    a, b = TokenizedText([2, 3, 5], offsets, special), TokenizedText([2, 4, 5], offsets, special)
    (result,) = pair_integrated_gradients(
        forward, embedding, [AlignedPair(a, b, 0, 1, 0)], pad_id=0, device=torch.device("cpu"),
        settings=IntegrationSettings(n_steps=8, tolerance=1e-3),
    )  # fmt: skip
    with torch.no_grad():
        f_a = float(forward(torch.tensor([[2, 3, 5]]), torch.ones(1, 3), torch.tensor([0])))
        f_b = float(forward(torch.tensor([[2, 4, 5]]), torch.ones(1, 3), torch.tensor([1])))
    assert result.score_a == pytest.approx(f_a) and result.score_b == pytest.approx(f_b)
    assert result.crossed != pytest.approx(f_b), "the head reads per-variant targets"
    assert result.attributions.sum() == pytest.approx(f_a - f_b, rel=1e-3)
    assert result.attributions[0] == 0 and result.attributions[2] == 0
    assert result.converged and result.completeness_error < 1e-3


def test_pair_ig_is_held_to_a_share_of_the_pairs_delta_not_of_the_paths() -> None:
    """The path explains f(a) - f_a(b); its error is measured against f(a) - f(b), so a path
    difference much larger than the pair's delta needs more steps, and the recorded error is the
    rows' own gap to the delta (with integrated.py's floor)."""
    torch.manual_seed(1)
    embedding = torch.nn.Embedding(6, 4)
    weights = torch.randn(4, 6)
    targets = torch.tensor([[2, 3, 5], [2, 4, 5]])

    def forward(ids: torch.Tensor, mask: torch.Tensor, variant_index: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(3 * embedding(ids).cumsum(dim=1))
        logp = torch.log_softmax(hidden @ weights, dim=-1)
        return logp.gather(2, targets[variant_index][:, :, None]).squeeze(2).sum(dim=1, keepdim=True)

    offsets, special = [(0, 1), (2, 3), (4, 5)], [False] * 3
    a, b = TokenizedText([2, 3, 5], offsets, special), TokenizedText([2, 4, 5], offsets, special)
    pair = AlignedPair(a, b, 0, 1, 0)
    for rule in ("trapezoid", "gausslegendre"):
        coarse, fine = (
            pair_integrated_gradients(
                forward, embedding, [pair], pad_id=0, device=torch.device("cpu"),
                settings=IntegrationSettings(n_steps=4, max_steps=4096, tolerance=tolerance, rule=rule),
            )[0]
            for tolerance in (0.2, 1e-4)
        )  # fmt: skip
        for result in (coarse, fine):
            delta = result.score_a - result.score_b
            gap = abs(result.attributions.sum() - delta)
            assert result.completeness_error == pytest.approx(
                gap / max(abs(delta), COMPLETENESS_FLOOR), rel=1e-6
            )
        assert fine.converged and fine.completeness_error <= 1e-4
        assert fine.n_steps > coarse.n_steps, rule
        assert abs(fine.crossed - fine.score_b) > 0, "the head reads per-variant targets"

"""The masked-LM target on a tiny random-init BertForMaskedLM saved and loaded back through
load_model: its batched pseudo-log-likelihood equals the one-mask-at-a-time computation, Captum
explains it with a small completeness gap, and what it cannot score is refused with a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audit.attribution.driver import attribute_examples
from audit.batching import collate, encode_texts
from audit.errors import UserError
from audit.models import load_model
from audit.targets import MaskedLMTarget, build_target
from audit.targets.masked_lm import FOCUS_LOGLIK, PLL
from probes import load_builtin, load_probe_set
from probes.schema import Instance, ProbeSet, Variant
from tests.support.mlm_models import MASKED_WORDS, build_masked_lm, training_sentences

PUBLIC = Path(__file__).parent / "data" / "public"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def random_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_masked_lm(tmp_path_factory.mktemp("mlm") / "random", seed=3)


def masked_lm_target(folder: Path) -> MaskedLMTarget:
    loaded = load_model(str(folder), device="cpu")
    assert loaded.task == "masked-lm"
    built = build_target(loaded, CPU)
    assert isinstance(built, MaskedLMTarget)
    return built


@pytest.fixture(scope="module")
def target(random_mlm: Path) -> MaskedLMTarget:
    return masked_lm_target(random_mlm)


@pytest.fixture(scope="module")
def trained_target(tmp_path_factory: pytest.TempPathFactory) -> MaskedLMTarget:
    """A model whose scores depend on the context (random init barely looks beyond each token)."""
    folder = build_masked_lm(
        tmp_path_factory.mktemp("mlm") / "trained", train=training_sentences(True), masked_words=MASKED_WORDS
    )
    return masked_lm_target(folder)


def pairs_and_plain_text() -> ProbeSet:
    """The CrowS-Pairs sample plus an instance whose variants have no focus spans."""
    crows = load_probe_set(PUBLIC / "crows_pairs_anonymized.csv")
    plain = Instance(
        instance_id="plain",
        attribute="gender",
        variants=tuple(
            Variant(instance_id="plain", variant=name, attribute="gender", text=text)
            for name, text in (
                ("stereotype", "The nurse said she would be late."),
                ("anti-stereotype", "He was late."),
            )
        ),
    )
    return crows.model_copy(update={"instances": (*crows.instances, plain)})


def direct_scores(target: MaskedLMTarget, variant: Variant) -> tuple[float, float]:
    """pll and focus_loglik of one text, unbatched: its own tokenization, one model call per mask."""
    tokenizer, model = target.tokenizer, target.model
    encoded = tokenizer(variant.text, return_offsets_mapping=True, return_special_tokens_mask=True)
    ids = torch.tensor([encoded["input_ids"]])
    spans = [(s.start, s.end) for s in variant.focus]
    in_focus = [
        not special and any(start < e and s < end for s, e in spans)
        for (start, end), special in zip(
            encoded["offset_mapping"], encoded["special_tokens_mask"], strict=True
        )
    ]
    real = [not special for special in encoded["special_tokens_mask"]]

    def log_probs(masked_positions: list[int]) -> torch.Tensor:
        masked = ids.clone()
        masked[0, masked_positions] = tokenizer.mask_token_id
        with torch.no_grad():
            return F.log_softmax(model(input_ids=masked).logits[0].double(), dim=-1)

    pll = sum(float(log_probs([p])[p, ids[0, p]]) for p in range(ids.shape[1]) if real[p] and not in_focus[p])
    focus = [p for p in range(ids.shape[1]) if in_focus[p]]
    focus_loglik = sum(float(log_probs(focus)[p, ids[0, p]]) for p in focus) if focus else 0.0
    return pll, focus_loglik


def test_batched_pll_matches_one_mask_at_a_time(
    target: MaskedLMTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe_set = pairs_and_plain_text()
    head = target.head(probe_set)
    assert head.outputs == [PLL, FOCUS_LOGLIK]
    assert head.preference_outputs == [PLL]
    variants = probe_set.variants
    order = list(reversed(range(len(variants))))  # rows need not follow the set's order
    encoded = encode_texts(target.tokenizer, [variants[i].text for i in order], target.max_length)
    assert len({e.n_tokens for e in encoded}) > 1  # rows of several lengths: the batch is padded
    ids, mask = collate(encoded, target.tokenizer.pad_token_id, CPU)
    monkeypatch.setattr(target, "copy_tokens", 3 * ids.shape[1])  # three copies per pass: many chunks
    with torch.no_grad():
        batched = head.forward(ids, mask, torch.tensor(order)).double().numpy()
    direct = np.array([direct_scores(target, variants[i]) for i in order])
    np.testing.assert_allclose(batched, direct, rtol=0, atol=1e-5)
    assert head.predict_labels(batched) == [None] * len(order)
    # what the variants share is scored: as many tokens in the stereotype as in the anti-stereotype
    tokens = target.variant_tokens(probe_set)
    for k in range(0, 16, 2):
        assert len(tokens[k].scored) == len(tokens[k + 1].scored) > 0
        assert tokens[k].focus and tokens[k + 1].focus
    # without focus spans, every non-special token is scored and the focus log-likelihood is 0
    plain = tokens[-2]
    assert plain.focus == () and len(plain.scored) == len(plain.input_ids) - 2
    assert batched[order.index(len(variants) - 2), 1] == 0.0


def test_integrated_gradients_explain_the_same_scores(trained_target: MaskedLMTarget) -> None:
    target = trained_target
    probe_set = pairs_and_plain_text()
    head = target.head(probe_set)
    variants = probe_set.variants
    chosen = [0, 1, len(variants) - 2]  # two variants with focus, one without
    encoded = encode_texts(target.tokenizer, [variants[i].text for i in chosen], target.max_length)
    ids, mask = collate(encoded, target.tokenizer.pad_token_id, CPU)
    with torch.no_grad():
        scores = head.forward(ids, mask, torch.tensor(chosen)).numpy()
    assert head.attribution_output([None, None], scores[:2]) == FOCUS_LOGLIK
    assert head.attribution_output([None], scores[2:]) == PLL
    for output in (0, 1):
        results = attribute_examples(
            head.forward,
            target.embedding_layer(),
            encoded,
            [output] * len(chosen),
            "integrated_gradients",
            baseline_token_id=target.tokenizer.pad_token_id,
            n_steps=128,  # the pseudo-log-likelihood bends sharply along the path: 64 steps leave 15%
            variant_indices=chosen,
        )
        for result, row in zip(results, scores, strict=True):
            assert result.score == pytest.approx(row[output], abs=1e-4)
            gap = result.score - (result.baseline_score or 0.0)
            if output == 1 and row[1] == 0.0:
                assert gap == 0.0 and np.all(result.attributions == 0.0)
                continue
            assert abs(gap) > 0.05
            assert result.attributions.sum() == pytest.approx(gap, abs=0.02 * abs(gap))
            assert abs(result.convergence_delta or 0.0) <= 0.02 * abs(gap)
    # the focus tokens are masked when focus_loglik is computed: nothing of it flows through them
    focus_positions = list(target.variant_tokens(probe_set)[0].focus)
    assert np.all(results[0].attributions[focus_positions] == 0.0)


def test_probe_sets_it_cannot_score_are_refused(target: MaskedLMTarget) -> None:
    long_context = target.check_probe_set(load_builtin("long-context"))
    assert (
        len(long_context) == 1 and "long-document set" in long_context[0] and "whole text" in long_context[0]
    )
    parallel = target.check_probe_set(load_builtin("multilingual"))
    assert len(parallel) == 1 and "not comparable" in parallel[0]
    assert target.check_probe_set(load_builtin("gender")) == []
    assert target.windows_supported is False


def test_windows_are_refused_before_anything_runs(run_cli, random_mlm: Path, tmp_path: Path) -> None:
    result = run_cli(
        "run", "--model", random_mlm, "--probes", PUBLIC / "crows_pairs_anonymized.csv", "--out", tmp_path,
        "--long-inputs", "window",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--long-inputs window does not apply to masked-lm models" in result.stderr
    assert not list(tmp_path.iterdir())  # no run folder was started


def test_a_tokenizer_without_mask_token_is_refused(target: MaskedLMTarget) -> None:
    class NoMask:
        mask_token_id = None

    with pytest.raises(UserError, match="no mask token"):
        MaskedLMTarget(target.model, NoMask(), CPU, 64)

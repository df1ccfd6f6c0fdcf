"""The seq2seq target on tiny random T5, BART and Marian models, and the translation probe format.

What is checked: the head's log-likelihoods equal the model's own loss times the number of target
tokens (float64, to 1e-5) for each architecture, with a T5 task prefix and with one embedding module
shared by encoder and decoder; integrated gradients through the encoder's embeddings are complete
(attributions sum to f(x) - f(baseline) within the convergence delta) and explain the very
score the runner records; attention statistics run on the encoder; greedy translations equal
``model.generate``; the translation YAML and the target columns of row files load, and every
mistake is reported with its file and line; the built-in sets are consistent (each target's own
words classify it).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import probes
from audit.attention import STATISTICS, attention_rows
from audit.attribution import attribute_examples, baseline_token_of
from audit.batching import collate, encode_texts
from audit.errors import ProbeFileError
from audit.models import load_model
from audit.stages.prepare import probe_set_problems
from audit.targets import build_target
from audit.targets.seq2seq import EXPECTED_PROBABILITY, GENDER_PREFERENCE, Seq2SeqTarget
from probes.schema import ProbeSet
from probes.translation import NEITHER, classify_output, default_form_words, differing_words
from tests.support.seq2seq_models import (
    T5_PREFIX,
    build_seq2seq_tokenizer,
    greedy_translations,
    save_random_seq2seq,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seq2seq")
    return {
        "t5": save_random_seq2seq(root / "t5", "t5", t5_prefix=True),
        "bart": save_random_seq2seq(root / "bart", "bart"),
        "marian": save_random_seq2seq(root / "marian", "marian"),
    }


_LOADED: dict[tuple[str, bool, bool], Seq2SeqTarget] = {}


def _target(folder: Path, *, double: bool = False, share_embeddings: bool = False) -> Seq2SeqTarget:
    """The model loaded through load_model (once per folder and setting in this module)."""
    key = (str(folder), double, share_embeddings)
    if key not in _LOADED:
        loaded = load_model(str(folder))
        assert loaded.task == "seq2seq"
        if double:
            loaded.model.double()
        if share_embeddings:  # one module object for encoder and decoder (what set_input_embeddings makes)
            loaded.model.set_input_embeddings(loaded.model.get_input_embeddings())
        target = build_target(loaded, CPU)
        assert isinstance(target, Seq2SeqTarget)
        _LOADED[key] = target
    return _LOADED[key]


def _few(name: str = "translation-gender-de", n: int = 3) -> ProbeSet:
    probe_set = probes.load_probe_set(name)
    # instances of different lengths, so that sources and targets are padded in one batch
    return probe_set.model_copy(
        update={"instances": probe_set.instances[:: len(probe_set.instances) // n][:n]}
    )


def _model_loglik(target: Seq2SeqTarget, source: str, text: str) -> float:
    """log P(text | source) from the model's own loss (mean over label tokens) x label tokens."""
    batch = target.tokenizer([source], text_target=[text], return_tensors="pt")
    with torch.no_grad():
        loss = target.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        ).loss
    return -float(loss) * int(batch["labels"].shape[1])


def _scores(target: Seq2SeqTarget, probe_set: ProbeSet) -> tuple[list[str], np.ndarray]:
    head = target.head(probe_set)
    examples = encode_texts(target.tokenizer, [v.text for v in probe_set.variants], target.max_length)
    ids, mask = collate(examples, target.tokenizer.pad_token_id, CPU)
    with torch.no_grad():
        scores = head.forward(ids, mask, torch.arange(len(examples))).numpy()
    return head.outputs, scores


@pytest.mark.parametrize(
    ("architecture", "share"), [("t5", False), ("bart", False), ("bart", True), ("marian", False)]
)
def test_loglik_is_the_models_loss_times_target_length(
    model_dirs: dict[str, Path], architecture: str, share: bool
) -> None:
    target = _target(model_dirs[architecture], double=True, share_embeddings=share)
    assert target._decoder_shares_module is share
    probe_set = _few()
    prefix = target.task_prefix(probe_set)
    assert prefix == (T5_PREFIX if architecture == "t5" else None)
    outputs, scores = _scores(target, probe_set)
    assert outputs == ["loglik:feminine", "loglik:masculine", GENDER_PREFERENCE, EXPECTED_PROBABILITY]
    for row, variant in enumerate(probe_set.variants):
        source = (prefix or "") + variant.text
        for column, name in enumerate(("feminine", "masculine")):
            expected = _model_loglik(target, source, variant.targets[name])
            assert abs(scores[row, column] - expected) <= 1e-5, (variant.instance_id, variant.variant, name)
        assert scores[row, 2] == pytest.approx(scores[row, 0] - scores[row, 1], abs=1e-9)
        if variant.label is None:
            assert math.isnan(scores[row, 3])
        else:  # softmax over the two targets at the expected one
            margin = scores[row, 0] - scores[row, 1]
            sign = 1.0 if variant.label == "feminine" else -1.0
            assert scores[row, 3] == pytest.approx(1.0 / (1.0 + math.exp(-sign * margin)), abs=1e-9)


def test_the_prefix_changes_the_score(model_dirs: dict[str, Path]) -> None:
    """The T5 model's config names a prefix for en->de only: the French set is scored without one,
    and the German set's scores are those of the prefixed source (not of the bare text)."""
    target = _target(model_dirs["t5"], double=True)
    assert target.task_prefix(_few("translation-gender-fr")) is None
    probe_set = _few(n=1)
    _, scores = _scores(target, probe_set)
    variant = probe_set.variants[0]
    bare = _model_loglik(target, variant.text, variant.targets["feminine"])
    assert abs(scores[0, 0] - bare) > 1e-3


@pytest.mark.parametrize(("architecture", "share"), [("t5", False), ("bart", True), ("marian", False)])
def test_integrated_gradients_are_complete_over_source_tokens(
    model_dirs: dict[str, Path], architecture: str, share: bool
) -> None:
    target = _target(model_dirs[architecture], share_embeddings=share)
    probe_set = _few(n=1)
    head = target.head(probe_set)
    column = head.outputs.index(GENDER_PREFERENCE)
    examples = encode_texts(target.tokenizer, [v.text for v in probe_set.variants], target.max_length)
    results = attribute_examples(
        head.forward,
        target.embedding_layer(),
        examples,
        [column] * len(examples),
        "integrated_gradients",
        baseline_token_id=baseline_token_of(target.tokenizer),
        n_steps=64,
        variant_indices=list(range(len(examples))),
    )
    _, scores = _scores(target, probe_set)
    for result, example, recorded in zip(results, examples, scores[:, column], strict=True):
        assert len(result.attributions) == example.n_tokens  # one value per source token, none for targets
        assert result.score == pytest.approx(recorded, abs=1e-4)  # Captum explains the recorded score
        gap = result.score - result.baseline_score
        assert abs(result.attributions.sum() - gap) <= abs(result.convergence_delta) + 1e-5
        assert abs(result.convergence_delta) <= 0.05 * abs(gap) + 1e-4
        special = np.asarray(example.special, dtype=bool)
        assert np.all(result.attributions[special] == 0)  # special tokens are kept in the baseline
        assert np.any(result.attributions[~special] != 0)


def test_attention_statistics_run_on_the_encoder(model_dirs: dict[str, Path]) -> None:
    for architecture, share in (("t5", False), ("bart", True), ("marian", False)):
        target = _target(model_dirs[architecture], share_embeddings=share)
        probe_set = _few(n=1)
        examples = encode_texts(target.tokenizer, [v.text for v in probe_set.variants], target.max_length)
        rows = attention_rows(
            model=target.transformer(),
            examples=examples,
            example_ids=[v.variant for v in probe_set.variants],
            focus=[[(s.start, s.end) for s in v.focus] for v in probe_set.variants],
            pad_id=target.tokenizer.pad_token_id,
        )
        assert len(rows) == len(examples) * 2 * 2 * len(STATISTICS)  # examples x layers x heads x stats
        entropy = rows[rows["stat"] == "entropy"]["value"]
        assert entropy.notna().all() and (entropy > 0).all()


def test_greedy_translations_are_what_generate_gives(model_dirs: dict[str, Path]) -> None:
    target = _target(model_dirs["marian"])
    probe_set = _few(n=1)
    examples = encode_texts(target.tokenizer, [v.text for v in probe_set.variants], target.max_length)
    outputs = target.translate(probe_set, examples, max_new_tokens=8)
    expected = greedy_translations(
        model_dirs["marian"], [v.text for v in probe_set.variants], max_new_tokens=8
    )
    assert [o[0].text for o in outputs] == expected
    assert all(len(o) == 1 and 0 <= o[0].n_new_tokens <= 8 for o in outputs)
    two = examples[:2]
    sampled = target.translate(probe_set, two, n_samples=3, sample=True, seeds=[5, 5], max_new_tokens=8)
    again = target.translate(probe_set, two, n_samples=3, sample=True, seeds=[5, 5], max_new_tokens=8)
    assert [[t.text for t in o] for o in sampled] == [[t.text for t in o] for o in again]
    assert all(len(o) == 3 for o in sampled)


def test_sets_without_targets_are_refused(model_dirs: dict[str, Path]) -> None:
    target = _target(model_dirs["marian"])
    problems = probe_set_problems(probes.load_probe_set("gender"), target)
    assert any("meant for" in p for p in problems)
    assert any("no target texts" in p for p in problems)
    assert probe_set_problems(_few(), target) == []


# --------------------------------------------------------------------------------- words and classes


def test_classify_output_by_words() -> None:
    words = {"feminine": ("Ärztin",), "masculine": ("Arzt",)}
    assert classify_output("Die Ärztin bereitet sich vor.", words) == "feminine"
    assert classify_output("der arzt bereitet sich vor .", words) == "masculine"
    assert classify_output("Der Arzt und die Ärztin.", words) == NEITHER
    assert classify_output("Die Medizinerin kommt.", words) == NEITHER
    french = {"feminine": ("l'infirmière",), "masculine": ("l'infirmier",)}
    assert classify_output("l ' infirmiere se prepare", french) == "feminine"  # decoded spacing, no accents
    assert default_form_words({"feminine": "die Ärztin", "masculine": "der Arzt"}) == {
        "feminine": ("Ärztin",),
        "masculine": ("Arzt",),
    }
    assert default_form_words({"feminine": "la médecin", "masculine": "le médecin"}) == {
        "feminine": ("la médecin",),
        "masculine": ("le médecin",),
    }
    assert differing_words({"f": "La pilote arrive.", "m": "Le pilote arrive."}) == {
        "f": ("La pilote",),
        "m": ("Le pilote",),
    }


@pytest.mark.parametrize("lang", ["de", "fr", "es"])
def test_builtin_translation_sets_are_consistent(lang: str) -> None:
    probe_set = probes.load_probe_set(f"translation-gender-{lang}")
    assert probe_set.tasks == ("seq2seq",)
    assert probe_set.in_default_run is (lang == "de")
    assert len(probe_set.instances) == 160
    for instance in probe_set.instances:
        assert [v.variant for v in instance.variants] == ["female", "male", "ambiguous"]
        for variant in instance.variants:
            assert variant.target_lang == lang and variant.lang == "en"
            assert (
                variant.label
                == {"female": "feminine", "male": "masculine", "ambiguous": None}[variant.variant]
            )
            assert set(variant.targets) == {"feminine", "masculine"}
            for name, text in variant.targets.items():  # each target's own words mark it, and only it
                assert classify_output(text, variant.target_words) == name, (variant.instance_id, name, text)
            if variant.label is not None:  # the pronoun is the focus (the ambiguous text only lacks it)
                assert variant.focus, variant.text
        pronouns = {v.variant: v.text for v in instance.variants}
        assert " her" in pronouns["female"] or " she " in pronouns["female"]
        assert " his" in pronouns["male"] or " he " in pronouns["male"] or "himself" in pronouns["male"]


def test_builtin_sets_are_the_seq2seq_default() -> None:
    from audit.stages.prepare import default_probe_sets

    assert default_probe_sets("seq2seq") == ["translation-gender-de"]
    assert not any(name.startswith("translation") for name in default_probe_sets("text-classification"))


def test_tokenizer_reads_every_probe_text() -> None:
    tokenizer = build_seq2seq_tokenizer("marian")
    for probe_set in (probes.load_probe_set(f"translation-gender-{lang}") for lang in ("de", "fr", "es")):
        for variant in probe_set.variants[:30]:
            for text in (variant.text, *variant.targets.values()):
                assert tokenizer.unk_token_id not in tokenizer(text)["input_ids"], text


# ------------------------------------------------------------------------------------------ loaders

_YAML = """kind: translation
name: tiny-translation
attribute: gender
target_lang: de
forms: {feminine: female, masculine: male}
occupations:
  - {en: doctor, feminine: die Ärztin, masculine: der Arzt}
  - {en: baker, feminine: die Bäckerin, masculine: der Bäcker, words: {feminine: [Bäckerin, Bäckermeisterin]}}
sentences:
  - id: shift
    source:
      female: The {occupation} finished her shift.
      male: The {occupation} finished his shift.
      neutral: The {occupation} finished the shift.
    target:
      female: "{Occupation} beendete ihre Schicht."
      male: "{Occupation} beendete seine Schicht."
      neutral: "{Occupation} beendete die Schicht."
  - id: ready
    source: {female: "The {occupation} prepared herself.", male: "The {occupation} prepared himself."}
    target: "{Occupation} bereitete sich vor."
"""


def test_translation_yaml_builds_instances(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(_YAML, encoding="utf-8")
    probe_set = probes.load_probe_set(path)
    assert probe_set.tasks == ("seq2seq",) and probe_set.kind == "counterfactual"
    assert [i.instance_id for i in probe_set.instances] == [
        "shift-doctor",
        "shift-baker",
        "ready-doctor",
        "ready-baker",
    ]
    female = probe_set.instances[1].variants[0]
    assert female.text == "The baker finished her shift."
    assert female.targets == {
        "feminine": "Die Bäckerin beendete ihre Schicht.",
        "masculine": "Der Bäcker beendete ihre Schicht.",
    }
    assert female.label == "feminine" and female.target_lang == "de"
    assert female.target_words == {"feminine": ("Bäckerin", "Bäckermeisterin"), "masculine": ("Bäcker",)}
    assert probe_set.instances[0].variants[2].label is None
    other = ProbeSet(name="x", instances=probe_set.instances[:1], tasks=("seq2seq",))
    stripped = other.model_copy(
        update={
            "instances": tuple(
                i.model_copy(
                    update={"variants": tuple(v.model_copy(update={"targets": {}}) for v in i.variants)}
                )
                for i in other.instances
            )
        }
    )
    assert other.content_hash() != stripped.content_hash()  # targets count in a set's hash


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (
            '      male: "{Occupation} beendete seine',
            '      man: "{Occupation} beendete seine',
            17,
            "write one target per",
        ),
        ("finished his shift.", "finished {his} shift.", 13, "only {occupation}"),
        (
            "forms: {feminine: female, masculine: male}",
            "forms: {feminine: female, masculine: man}",
            10,
            "no source for group",
        ),
        ("  - id: ready", "  - id: shift", 19, "repeats id 'shift'"),
        (
            "  - {en: doctor, feminine: die Ärztin, masculine: der Arzt}",
            "  - {en: doctor, feminine: die Ärztin}",
            7,
            "lacks masculine",
        ),
        ("forms:", "form:", 5, "unknown key 'form'"),
    ],
)
def test_translation_yaml_problems_name_file_and_line(
    tmp_path: Path, old: str, new: str, line: int, message: str
) -> None:
    assert old in _YAML
    path = tmp_path / "bad.yaml"
    path.write_text(_YAML.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ProbeFileError) as caught:
        probes.load_probe_set(path)
    text = str(caught.value)
    assert message in text, text
    assert any(p.line == line and message in p.message for p in caught.value.problems), text
    assert f"{path}:{line}" in text


_ROWS = """instance_id,variant,attribute,text,label,target:feminine,target:masculine,target_lang
doc,female,gender,The doctor finished her shift.,feminine,Die Ärztin beendete ihre Schicht.,Der Arzt beendete ihre Schicht.,de
doc,male,gender,The doctor finished his shift.,masculine,Die Ärztin beendete seine Schicht.,Der Arzt beendete seine Schicht.,de
"""


def test_rows_with_target_columns(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(_ROWS, encoding="utf-8")
    probe_set = probes.load_probe_set(path)
    assert probe_set.tasks == ("seq2seq",)
    variant = probe_set.variants[0]
    assert variant.targets == {
        "feminine": "Die Ärztin beendete ihre Schicht.",
        "masculine": "Der Arzt beendete ihre Schicht.",
    }
    assert variant.target_lang == "de"
    assert variant.target_words == {"feminine": ("Die Ärztin",), "masculine": ("Der Arzt",)}
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(
        '{"instance_id": "a", "variant": "x", "attribute": "g", "text": "one", "target": "eins"}\n'
        '{"instance_id": "a", "variant": "y", "attribute": "g", "text": "two", "target": "zwei", '
        '"target_words:target": "zwei|2"}\n',
        encoding="utf-8",
    )
    rows = probes.load_probe_set(jsonl)
    assert [v.targets for v in rows.variants] == [{"target": "eins"}, {"target": "zwei"}]
    assert rows.variants[1].target_words == {"target": ("zwei", "2")}


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (
            lambda t: t.replace(",Der Arzt beendete seine Schicht.,", ",,"),
            3,
            "column target:masculine is empty",
        ),
        (
            lambda t: t.replace(",masculine,Die", ",neuter,Die"),
            3,
            "label 'neuter' is not one of the row's targets",
        ),
        (lambda t: t.replace("target_lang", "target_words:other"), 2, "names target 'other'"),
    ],
)
def test_row_target_problems_name_the_line(tmp_path: Path, edit, line: int, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rows.csv"
    path.write_text(edit(_ROWS), encoding="utf-8")
    with pytest.raises(ProbeFileError) as caught:
        probes.load_probe_set(path)
    assert any(p.line == line and message in p.message for p in caught.value.problems), str(caught.value)


def test_targets_need_the_variants_layout(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(
        "text_a,text_b,group_a,group_b,attribute,target\nHe is here.,She is here.,male,female,gender,Er ist da.\n",
        encoding="utf-8",
    )
    with pytest.raises(ProbeFileError, match="need the variants layout"):
        probes.load_probe_set(path)


def test_docs_examples_load(tmp_path: Path) -> None:
    """The examples of docs/probes.md's seq2seq section load as they are written."""
    import re

    docs = (Path(__file__).parent.parent / "docs" / "probes.md").read_text(encoding="utf-8")
    examples = re.findall(r"```(yaml|csv) seq2seq-example\n(.*?)```", docs, flags=re.S)
    assert sorted(fmt for fmt, _ in examples) == ["csv", "yaml"]
    for index, (fmt, body) in enumerate(examples):
        path = tmp_path / f"example{index}.{fmt}"
        path.write_text(body, encoding="utf-8")
        probe_set = probes.load_probe_set(path)
        assert probe_set.tasks == ("seq2seq",)
        for variant in probe_set.variants:
            assert set(variant.targets) == {"feminine", "masculine"} and variant.target_lang == "de"
            for name, text in variant.targets.items():
                assert classify_output(text, variant.target_words) == name

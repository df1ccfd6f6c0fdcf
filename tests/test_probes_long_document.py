"""Long-document probe sets: auto lengths, documents built in a model's tokens, the file format
and its problems (each as FILE:LINE), and the built-in long-context set."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from audit.bundled import minilm_dir
from audit.errors import ProbeFileError, UserError
from probes import list_builtin, load_builtin, load_probe_set, validate_file
from probes.long_document import (
    TokenCounter,
    auto_lengths,
    count_words,
    materialize,
    position_name,
    summary_lines,
)
from probes.schema import Instance, KeySentence, LongDocumentSpec, ProbeSet, SwapSentence, Variant
from tests.support.tiny_models import build_tokenizer

FILLER = [
    "The first train of the day leaves the terminal at a quarter past five and stops at every station.",
    "On weekdays trams run every eight minutes between seven and nine in the morning.",
    "The ferry crossing takes about forty minutes, and the last departure is at half past ten.",
    "Glass is made by melting sand, soda ash and limestone together at very high temperatures.",
    "Copper conducts electricity very well, which is why it is used for the wires inside buildings.",
    "A barometer measures air pressure, and a steady fall in pressure often means a front is coming.",
    "Leaves are green because they contain chlorophyll, which absorbs red and blue light.",
    "The tides rise and fall about twice a day because of the pull of the moon.",
]
KEY = KeySentence(
    id="pos-film",
    text="This film was an absolute delight, with brilliant acting.",
    label="positive",
    query="a glowing review of a film",
)
SWAP = SwapSentence(
    id="gender-library",
    attribute="gender",
    variants={
        "female": "She said the new library was a wonderful place to study.",
        "male": "He said the new library was a wonderful place to study.",
    },
    label="positive",
    query="an opinion about a library",
)
POSITIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


def long_set(**spec: Any) -> ProbeSet:
    values: dict[str, Any] = {
        "filler": tuple(FILLER),
        "keys": (KEY,),
        "swaps": (SWAP,),
        "positions": POSITIONS,
    }
    values.update(spec)
    return ProbeSet(
        name="mini-long",
        kind="long_document",
        instances=(),
        long_document=LongDocumentSpec.model_validate(values),
    )


def by_id(probe_set: ProbeSet) -> dict[str, Instance]:
    return {i.instance_id: i for i in probe_set.instances}


def lengths_of(probe_set: ProbeSet) -> list[int]:
    return sorted({v.doc_length for v in probe_set.variants if v.doc_length is not None})


def focused(variant: Variant) -> str:
    (span,) = variant.focus
    return variant.text[span.start : span.end]


def without_focus(variant: Variant) -> str:
    """The text with the inserted sentence and the space that joined it taken out."""
    (span,) = variant.focus
    before, after = variant.text[: span.start], variant.text[span.end :]
    return (before[:-1] + after) if before else after[1:]


def counter(tokenizer: PreTrainedTokenizerBase) -> TokenCounter:
    def count(texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    return count


def byte_level_bpe(texts: Sequence[str]) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE tokenizer trained here: spaces belong to the next token, so a
    sentence counts differently at the start of a text and inside it."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        texts,
        trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer)


# ------------------------------------------------------------------------------------ auto lengths


@pytest.mark.parametrize(
    ("model_max", "max_doc_tokens", "expected"),
    [
        (512, 32768, (128, 512, 2048)),  # BERT: two below the limit, the limit, one past it
        (510, 32768, (128, 510, 2048)),  # BERT beside [CLS]/[SEP]: 512 is not "past" a 510 limit
        (514, 32768, (128, 512, 514, 2048)),  # RoBERTa-style limits are kept as they are
        (8192, 32768, (128, 512, 2048, 8192, 32768)),  # ModernBERT: every default
        (32768, 32768, (128, 512, 2048, 8192, 32768)),  # no default past 32k: none is added
        (131072, 32768, (128, 512, 2048, 8192, 32768)),  # the limit itself is capped
        (64, 32768, (64, 128)),  # a tiny test model
        (
            512,
            1024,
            (128, 512, 1024),
        ),  # the next default (2048) exceeds the cap: the cap is the length past it
        (512, 300, (128, 300)),  # the limit is capped too
        (100, 100, (100,)),
    ],
)
def test_auto_lengths_keep_defaults_below_the_limit_the_limit_and_one_past_it(
    model_max: int, max_doc_tokens: int, expected: tuple[int, ...]
) -> None:
    assert auto_lengths(model_max, max_doc_tokens) == expected


def test_auto_lengths_default_cap_and_bad_input() -> None:
    assert auto_lengths(2048) == (128, 512, 2048, 8192)
    with pytest.raises(ValueError, match="positive"):
        auto_lengths(0)


# -------------------------------------------------------------------------------- materialize


def test_materialize_names_instances_and_variants_as_the_contract_says() -> None:
    built = materialize(long_set(lengths=(128, 512)), count_words, model_max=512)
    instances = by_id(built)
    assert list(instances) == ["pos-film-128", "pos-film-512", "gender-library-128", "gender-library-512"]
    key = instances["pos-film-512"]
    assert (key.role, key.attribute, key.query) == ("key_sentence", "position", KEY.query)
    assert key.groups == ["none", "p000", "p025", "p050", "p075", "p100"]
    for variant in key.variants:
        assert (variant.doc_length, variant.label, variant.swap_group) == (512, "positive", None)
        assert variant.position == (
            None if variant.variant == "none" else POSITIONS[key.groups.index(variant.variant) - 1]
        )
    swap = instances["gender-library-128"]
    assert (swap.role, swap.attribute, swap.query) == ("identity_swap", "gender", SWAP.query)
    assert swap.groups == [f"{g}-{position_name(p)}" for p in POSITIONS for g in ("female", "male")]
    assert {(v.swap_group, v.position, v.doc_length) for v in swap.variants} == {
        (g, p, 128) for g in ("female", "male") for p in POSITIONS
    }
    assert built.materialized and not long_set().materialized
    assert (built.name, built.kind, built.long_document) == (
        "mini-long",
        "long_document",
        long_set(lengths=(128, 512)).long_document,
    )


def test_documents_reach_their_length_and_the_key_sits_where_its_position_says() -> None:
    built = materialize(long_set(lengths=(128, 512, 2048)), count_words, model_max=512)
    longest_filler_sentence = max(len(s.split()) for s in FILLER)
    for instance in built.instances:
        none = next((v for v in instance.variants if v.variant == "none"), None)
        for variant in instance.variants:
            length = variant.doc_length
            assert length is not None
            words = len(variant.text.split())
            target = length - (0 if variant.focus else len(KEY.text.split()))
            assert target - longest_filler_sentence <= words <= target, (variant.variant, words)
            if variant.position is None:
                assert not variant.focus and variant.text == " ".join(variant.text.split())
                assert KEY.text not in variant.text
                continue
            inserted = focused(variant)
            assert inserted == (
                KEY.text if instance.role == "key_sentence" else SWAP.variants[variant.swap_group or ""]
            )
            assert variant.text.count(inserted) == 1
            (span,) = variant.focus
            if variant.position == 0.0:
                assert span.start == 0
            if variant.position == 1.0:
                assert span.end == len(variant.text)
            filler_words = words - len(inserted.split())
            before = len(variant.text[: span.start].split())
            # the nearest sentence boundary: within half a filler sentence of the nominal place
            assert abs(before - variant.position * filler_words) <= longest_filler_sentence / 2
            # every variant of an instance shares the same filler, in the same order
            filler = without_focus(variant)
            if none is not None:
                assert filler == none.text
            assert filler == without_focus(instance.variants[-1])


def test_materialize_is_deterministic_and_shorter_documents_start_longer_ones() -> None:
    first = materialize(long_set(lengths=(128, 512, 2048)), count_words, model_max=512)
    assert first == materialize(long_set(lengths=(128, 512, 2048)), count_words, model_max=512)
    texts = {i.instance_id: i.variants[0].text for i in first.instances}
    assert texts["pos-film-2048"].startswith(texts["pos-film-512"]) and texts["pos-film-512"].startswith(
        texts["pos-film-128"]
    )
    other_seed = materialize(long_set(lengths=(128, 512, 2048), seed=1), count_words, model_max=512)
    assert {i.instance_id: i.variants[0].text for i in other_seed.instances} != texts
    # each key or swap gets its own shuffle
    assert texts["pos-film-512"] != without_focus(by_id(first)["gender-library-512"].variants[0])


def test_lengths_auto_follow_the_model_and_fixed_lengths_obey_the_cap() -> None:
    auto = materialize(long_set(), count_words, model_max=64)
    assert lengths_of(auto) == [64, 128]
    capped = materialize(long_set(max_doc_tokens=100), count_words, model_max=512)
    assert lengths_of(capped) == [100]
    fixed = materialize(long_set(lengths=(128, 4096)), count_words, model_max=512)
    assert lengths_of(fixed) == [128, 4096]  # used as given
    fixed_capped = materialize(long_set(lengths=(128, 4096)), count_words, model_max=512, max_doc_tokens=1000)
    assert lengths_of(fixed_capped) == [128, 1000]


def test_counterfactual_sets_come_back_unchanged() -> None:
    gender = load_builtin("gender")
    assert materialize(gender, count_words, model_max=512) is gender


def test_a_length_that_cannot_hold_the_key_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"a 8-token document cannot hold 'pos-film' \(9 tokens\)"):
        materialize(long_set(lengths=(8, 128)), count_words, model_max=512)
    with pytest.raises(UserError, match="at least 2"):
        materialize(
            long_set(swaps=(SwapSentence(id="s", attribute="gender", variants={"female": "She ran."}),)),
            count_words,
            model_max=512,
        )


def _check_token_lengths(built: ProbeSet, count: TokenCounter, slack: int) -> None:
    """Every document within its length (plus ``slack`` where counts drift), short of it by less
    than the longest filler sentence; the filler-only document short of it by the key too."""
    longest = max(count(FILLER))
    key_tokens = {
        i.instance_id: max(count([focused(v) for v in i.variants if v.focus])) for i in built.instances
    }
    for instance in built.instances:
        for variant in instance.variants:
            assert variant.doc_length is not None
            (tokens,) = count([variant.text])
            target = variant.doc_length - (0 if variant.focus else key_tokens[instance.instance_id])
            assert target - longest <= tokens <= target + slack, (
                instance.instance_id,
                variant.variant,
                tokens,
            )


def test_lengths_are_counted_in_a_real_wordpiece_tokenizer() -> None:
    count = counter(AutoTokenizer.from_pretrained(minilm_dir()))
    built = materialize(long_set(lengths=(128, 512, 2048)), count, model_max=512)
    _check_token_lengths(built, count, slack=0)  # WordPiece splits at spaces: exact counts


def test_lengths_are_counted_in_a_word_level_tokenizer() -> None:
    tokenizer = build_tokenizer([*FILLER, KEY.text, *SWAP.variants.values()], model_max_length=64)
    count = counter(tokenizer)
    built = materialize(long_set(), count, model_max=tokenizer.model_max_length)
    assert lengths_of(built) == [64, 128]
    _check_token_lengths(built, count, slack=0)


def test_lengths_hold_for_a_space_sensitive_byte_level_bpe() -> None:
    tokenizer = byte_level_bpe([*FILLER, KEY.text, *SWAP.variants.values()])
    count = counter(tokenizer)
    alone = count(FILLER)
    inside = [
        b - a
        for a, b in zip(count(["Text."] * len(FILLER)), count([f"Text. {s}" for s in FILLER]), strict=True)
    ]
    assert alone != inside  # the leading space changes the counts, so counting alone would drift
    built = materialize(long_set(lengths=(128, 512, 2048)), count, model_max=512)
    _check_token_lengths(built, count, slack=2)  # only the first sentence reads without a space


# ----------------------------------------------------------------------------------- file format


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


INLINE = """\
name: mini-long
kind: long_document
positions: [0, 0.25, 0.5, 0.75, 1.0]
lengths: [128, 512]
filler:
{filler}
keys:
  - id: pos-film
    text: "This film was an absolute delight, with brilliant acting."
    label: positive
    query: a glowing review of a film
swaps:
  - id: gender-library
    attribute: gender
    label: positive
    query: an opinion about a library
    variants:
      female: She said the new library was a wonderful place to study.
      male: He said the new library was a wonderful place to study.
"""


def test_inline_and_file_forms_load_the_same_spec(tmp_path: Path) -> None:
    inline = write(tmp_path, "inline.yaml", INLINE.format(filler="\n".join(f"  - {s}" for s in FILLER)))
    loaded = load_probe_set(inline)
    assert loaded.kind == "long_document" and not loaded.materialized
    assert loaded.long_document == LongDocumentSpec(
        filler=tuple(FILLER), keys=(KEY,), swaps=(SWAP,), positions=POSITIONS, lengths=(128, 512)
    )
    assert loaded.tasks == ("text-classification", "embedding")
    assert validate_file(inline) == []

    write(tmp_path, "filler.txt", "\n".join(FILLER[:4]) + "\n\n  \n" + "\n".join(FILLER[4:]) + "\n")
    write(tmp_path, "keys.csv", f'id,text,label,query\npos-film,"{KEY.text}",positive,{KEY.query}\n')
    rows = [
        {
            "id": SWAP.id,
            "attribute": "gender",
            "group": group,
            "text": text,
            "label": "positive",
            "query": SWAP.query,
        }
        for group, text in SWAP.variants.items()
    ]
    write(tmp_path, "swaps.jsonl", "\n".join(json.dumps(row) for row in rows) + "\n")
    files = write(
        tmp_path,
        "files.yaml",
        "name: mini-long\nkind: long_document\npositions: [0, 0.25, 0.5, 0.75, 1.0]\nlengths: [128, 512]\n"
        "filler_file: filler.txt\nkeys_file: keys.csv\nswaps_file: swaps.jsonl\n",
    )
    assert load_probe_set(files).long_document == loaded.long_document
    write(tmp_path, "keys.jsonl", json.dumps(KEY.model_dump()) + "\n")
    jsonl_keys = write(tmp_path, "jsonl.yaml", files.read_text().replace("keys.csv", "keys.jsonl"))
    assert load_probe_set(jsonl_keys).long_document == loaded.long_document


def test_every_problem_of_a_long_document_file_is_reported_at_its_line(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        """\
kind: long_document
lengths: [64, 0, 64, x, 40000]
positions: [0, 0.5, 0.4, 1.5, 0.501]
max_doc_tokens: 32768
seed: -1
colour: blue
filler:
  - The river flows north. This film was an absolute delight, with brilliant acting.
  - ""
  - The tides rise and fall twice a day.
  - The tides rise and fall twice a day.
keys:
  - {id: pos/film, text: "This film was an absolute delight, with brilliant acting."}
  - {id: b, text: "A fine day.", label: positive, query: q, colour: red}
swaps:
  - {id: b, attribute: gender, query: q, variants: {female: She ran., male: He ran.}}
  - {id: s1, attribute: gender, query: q, variants: {female: She ran.}}
  - {id: s2, attribute: gender, query: q, variants: {fe male: She ran., male: He ran.}}
  - {id: s3, attribute: gender, query: q, variants: {female: She  ran., male: " She ran."}}
""",
    )
    messages = [str(p) for p in validate_file(bad)]
    expected = [
        "2: a length is 0; it must be at least 1",
        "2: lengths repeat 64; remove the duplicate",
        "2: a length must be a whole number, not 'x'",
        "3: position 0.4 does not come after 0.5",
        "3: position 1.5 lies outside 0..1",
        "3: position 0.501 is named p050 like the position on line 3",
        "5: seed is -1; it must be at least 0",
        "6: the file has an unknown key 'colour'",
        "9: an item of filler is empty",
        "11: filler repeats 'The tides rise and fall twice a day.'",
        "13: key id 'pos/film' must be letters, digits, _ . - only",
        "13: key 'pos/film': the filler sentence on line 8 contains",
        "14: key 2 has an unknown key 'colour'",
        "16: id 'b' is already used on line 14",
        "17: swap 's1' has 1 group(s); an identity swap needs at least 2",
        "18: group name 'fe male' must be letters, digits, _ . - only",
        "19: groups 'female' and 'male' of swap 's3' have the same sentence",
    ]
    assert len(messages) == len(expected), "\n".join(messages)
    for message, start in zip(messages, expected, strict=True):
        assert message.startswith(f"{bad}:{start}"), message
    with pytest.raises(ProbeFileError):
        load_probe_set(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kind: long_document\nfiller: [The sea is wide and deep.]\n",
            ["1: a long-document set needs at least one key"],
        ),
        (
            "kind: long_document\nkeys: [{id: k, text: A fine day., label: positive, query: q}]\n",
            ["1: missing filler"],
        ),
        ("kind: longdoc\n", ["1: kind 'longdoc' is not known; use counterfactual or long_document"]),
        (
            "kind: long_document\nlengths: [128, 40000]\nmax_doc_tokens: 32768\nfiller: [The sea is wide.]\n"
            "keys: [{id: k, text: A fine day., label: positive, query: q}]\n",
            ["2: length 40000 is above max_doc_tokens 32768"],
        ),
        (
            "kind: long_document\nfiller: [The sea is wide.]\nfiller_file: f.txt\n"
            "keys: [{id: k, text: A fine day., label: positive, query: q}]\n",
            ["3: give either filler (a list) or filler_file (a path), not both"],
        ),
        (
            "kind: long_document\nfiller: [The sea is wide.]\nkeys_file: missing.csv\n",
            ["3: cannot read keys_file 'missing.csv' (no such file)"],  # and nothing more about the keys
        ),
    ],
)
def test_single_problems_are_located(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, "one.yaml", text)
    messages = [str(p) for p in validate_file(path)]
    assert len(messages) == len(expected), messages
    for message, start in zip(sorted(messages), sorted(expected), strict=True):
        assert message.startswith(f"{path}:{start}"), message


def test_labels_and_queries_are_optional_in_the_file(tmp_path: Path) -> None:
    """The target checks them against the model (an embedding audit needs every query)."""
    path = write(
        tmp_path,
        "bare.yaml",
        "kind: long_document\nfiller: [The sea is wide.]\nkeys: [{id: k, text: A fine day.}]\n"
        "swaps: [{id: s, attribute: gender, variants: {female: She ran., male: He ran.}}]\n",
    )
    spec = load_probe_set(path).long_document
    assert spec is not None and (spec.keys[0].label, spec.keys[0].query, spec.swaps[0].query) == (
        None,
        None,
        None,
    )
    built = materialize(load_probe_set(path), count_words, model_max=64)
    assert {i.instance_id: i.query for i in built.instances} == {
        "k-64": None,
        "k-128": None,
        "s-64": None,
        "s-128": None,
    }


def test_problems_in_named_files_point_into_those_files(tmp_path: Path) -> None:
    write(tmp_path, "filler.txt", "The sea is wide.\n\nThe sea is wide.\nA cloud is water.\n")
    keys = write(
        tmp_path,
        "keys.csv",
        "id,text,label,query,lable\nk1,A fine day.,positive,q,\nk2,,negative,q,\nk1,Another fine day.,positive,q,\n",
    )
    swaps = write(
        tmp_path,
        "swaps.jsonl",
        "\n".join(
            json.dumps(row)
            for row in [
                {"id": "s", "attribute": "gender", "group": "female", "text": "She ran.", "query": "q"},
                {"id": "s", "attribute": "age", "group": "male", "text": "He ran.", "query": "q"},
                {"id": "s", "attribute": "gender", "group": "female", "text": "She sat.", "query": "q"},
            ]
        )
        + "\n",
    )
    path = write(
        tmp_path,
        "files.yaml",
        "kind: long_document\nfiller_file: filler.txt\nkeys_file: keys.csv\nswaps_file: swaps.jsonl\n",
    )
    messages = [str(p) for p in validate_file(path)]
    assert messages == [
        f"{tmp_path / 'filler.txt'}:3: repeats the filler sentence of line 1; remove the duplicate",
        f"{keys}:1: unknown column 'lable'; the columns are id, text and optional label, query",
        f"{keys}:3: column(s) text empty or missing; every row needs id, text",
        f"{swaps}:2: swap 's' has attribute 'age' here but 'gender' on line 1; one swap has one attribute",
        f"{swaps}:3: swap 's' already has group 'female'; each group appears once",
    ]


def test_ids_repeated_across_files_are_located_in_each_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        "keys.csv",
        "id,text,label,query\nk1,A fine day.,positive,q\nk1,Another fine day.,positive,q\n",
    )
    path = write(tmp_path, "k.yaml", "kind: long_document\nfiller: [The sea is wide.]\nkeys_file: keys.csv\n")
    assert [str(p) for p in validate_file(path)] == [
        f"{tmp_path / 'keys.csv'}:3: id 'k1' is already used on line 2; key and swap ids must be unique"
    ]


# ------------------------------------------------------------------------------- the built-in set

GENDERED = re.compile(
    r"\b(he|she|him|her|his|hers|man|men|woman|women|boy|girl|mother|father|sister|brother)\b", re.I
)


def test_the_builtin_long_context_set_is_listed_and_unmaterialized() -> None:
    assert "long-context" in list_builtin() and list_builtin(kind="long_document") == ["long-context"]
    assert validate_file("long-context") == []
    probe_set = load_builtin("long-context")
    assert (probe_set.kind, probe_set.source, probe_set.materialized) == (
        "long_document",
        "builtin:long-context",
        False,
    )
    assert probe_set.tasks == ("text-classification", "embedding")
    spec = probe_set.long_document
    assert spec is not None and spec.lengths == "auto" and spec.max_doc_tokens == 32768
    assert spec.positions == tuple(i / 10 for i in range(11))


def test_the_builtin_content_is_what_the_card_says() -> None:
    probe_set = load_builtin("long-context")
    spec = probe_set.long_document
    assert spec is not None
    assert len(spec.filler) >= 250
    assert all(15 <= len(sentence.split()) <= 25 for sentence in spec.filler)
    assert not [s for s in spec.filler if GENDERED.search(s)]
    assert sorted(k.label or "" for k in spec.keys) == ["negative"] * 8 + ["positive"] * 8
    assert all(k.query and k.id.startswith(k.label[:3]) for k in spec.keys if k.label)
    assert len(spec.swaps) == 8 and all(s.attribute == "gender" and s.query and s.label for s in spec.swaps)
    assert all(sorted(s.variants) == ["female", "male"] for s in spec.swaps)
    assert sum(s.id.startswith("name-") for s in spec.swaps) == 4
    assert len({q for q in [*(k.query for k in spec.keys), *(s.query for s in spec.swaps)]}) == 24
    card = probe_set.card
    assert card.startswith("# long-context") and "**Known confounds.**" in card and "Apache-2.0" in card
    for confound in ("Filler repeats", "sentence boundaries", "Token counts are approximate"):
        assert confound in card
    assert "Apache-2.0" in spec.filler_source


def test_the_builtin_set_materializes_to_32k_tokens_in_seconds() -> None:
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    count = counter(tokenizer)
    start = time.perf_counter()
    built = materialize(load_builtin("long-context"), count, model_max=8192)
    seconds = time.perf_counter() - start
    assert seconds < 5, f"materializing took {seconds:.1f} s"
    assert lengths_of(built) == [128, 512, 2048, 8192, 32768]
    assert len(built.instances) == 24 * 5
    assert len(built.variants) == 5 * (16 * 12 + 8 * 22)
    longest = by_id(built)["neg-gym-32768"]
    (tokens,) = count([longest.variants[6].text])  # p050: the key in the middle of 32k tokens
    assert 32768 - 40 <= tokens <= 32768


def test_summary_lines_describe_an_unmaterialized_set_and_agree_with_materialize() -> None:
    probe_set = load_builtin("long-context")
    lines = summary_lines(probe_set, model_max=512)
    text = "\n".join(lines)
    assert "key sentences: 16 (8 negative, 8 positive)" in text
    assert "identity swaps: 8 (gender: female, male)" in text
    assert f"filler: {len(probe_set.long_document.filler)} sentences" in text  # type: ignore[union-attr]
    built = materialize(probe_set, count_words, model_max=512)
    assert lines[-1] == (
        f"for a model with a 512-token limit: lengths 128, 512, 2048; {len(built.instances)} instances, "
        f"{len(built.variants)} variants"
    )
    assert summary_lines(built, model_max=512)[-1].startswith("built: lengths 128, 512, 2048; 72 instances")
    assert summary_lines(load_builtin("gender"))[0].startswith("208 instances")

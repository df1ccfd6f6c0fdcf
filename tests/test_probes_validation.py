"""Every bad input gives FILE:LINE messages that say what is wrong and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.errors import ProbeFileError, UserError
from probes import list_builtin, load_probe_set, validate_file

DATA = Path(__file__).parent / "data" / "probes"


def messages(path: Path) -> list[str]:
    return [str(p) for p in validate_file(path)]


def test_good_files_have_no_problems() -> None:
    for name in ("templates.yaml", "pairs.csv", "pairs.jsonl", "variants.csv", "variants.jsonl"):
        assert validate_file(DATA / name) == [], name


def test_bad_template_file_reports_every_problem_at_its_line() -> None:
    f = DATA / "bad_templates.yaml"
    assert messages(f) == [
        f"{f}:3: the file has an unknown key 'colour' (known keys: name, kind, description, card, card_file, attribute, "
        "lang, tasks, groups, lexicons, templates, associations, in_default_run, continuations)",
        f"{f}:6: slot 'name' has 2 values in group 'female' but 3 in group 'male'; list slots pair up by position "
        "(item i of every group makes one instance), so give every group the same number",
        f"{f}:7: groups repeats the key 'female' (first on line 6); YAML would keep only the last one, so remove "
        "or rename one",
        f"{f}:9: lexicon 'occupation' repeats 'nurse'; remove the duplicate",
        f"{f}:11: template uses an unknown filter |caps in {{pronoun|caps}} (known filters: a, cap, lower, title, upper)",
        f"{f}:11: template uses {{ocupation}}, which no lexicon or group defines (known: name, occupation, pronoun)",
        f"{f}:13: template uses no group slot, so all its variants would be the same text; add a group placeholder "
        "such as {name}",
        f"{f}:14: template has an unclosed '{{' at column 14; close it or write '{{{{' for a literal brace",
        f"{f}:19: set a of association 1 has 1 word(s); give at least 2",
        f"{f}:21: association 2 misses b_name (needs name, a_name, b_name, a, b)",
    ]


def test_unparsable_yaml_points_at_the_line_and_hints_at_quoting() -> None:
    f = DATA / "bad_syntax.yaml"
    (message,) = messages(f)
    assert message.startswith(f"{f}:7: not valid YAML (")
    assert message.endswith('quote a template that starts with "{", e.g. - "{pronoun|cap} works here."')


def test_missing_groups_key() -> None:
    f = DATA / "no_groups.yaml"
    assert messages(f) == [
        f"{f}:1: missing required key 'groups'; a template probe set needs attribute, groups and templates"
    ]


def test_bad_pairs_csv_reports_each_row() -> None:
    f = DATA / "bad_pairs.csv"
    assert messages(f) == [
        f"{f}:3: column text_a is empty; every pairs row needs text_a,text_b,group_a,group_b,attribute",
        f"{f}:4: instance id 'kind' is already used on line 2; ids must be unique",
        f"{f}:5: text_a and text_b are identical; a pair must differ in the swapped words",
        f"{f}:6: group_a and group_b are both 'male'; a pair compares two different groups",
        f"{f}:7: column attribute is empty; every pairs row needs text_a,text_b,group_a,group_b,attribute",
        f"{f}:8: row has 3 fields but the header has 6; quote fields that contain commas",
    ]


def test_missing_required_column_is_reported_on_the_header() -> None:
    f = DATA / "missing_column.csv"
    assert messages(f) == [
        f"{f}:1: missing required column(s) text_b; the pairs layout needs text_a,text_b,group_a,group_b,attribute; "
        "map one with --probe-map text_b=FILE_COLUMN or fill it with --probe-default text_b=VALUE "
        "(Python: mapping={'text_b': FILE_COLUMN}, defaults={'text_b': VALUE})"
    ]


def test_bad_variants_jsonl_reports_each_line() -> None:
    f = DATA / "bad_variants.jsonl"
    assert messages(f) == [
        f"{f}:3: instance 'a' already has variant 'female' (line 2); each variant of an instance appears once",
        f"{f}:4: instance 'b' has only 1 variant ('male'); add at least one more row with instance_id b",
        f"{f}:5: not valid JSON (Expecting ',' delimiter at column 63); each line must be one JSON object",
        f"{f}:6: column text is empty; every variants row needs instance_id,variant,attribute,text",
        f"{f}:7: line is a JSON list, not an object; write one {{...}} per line",
        f"{f}:8: all variants of instance 'e' have the same text; nothing differs between them",
    ]


def test_non_utf8_bytes_are_located() -> None:
    f = DATA / "latin1.csv"
    assert messages(f) == [
        f"{f}:3: byte 0xe9 at column 13 is not UTF-8; re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
    ]


def test_unknown_extension_and_missing_file() -> None:
    f = DATA / "pairs.txt"
    assert messages(f) == [
        f"{f}: unknown file extension '.txt'; use .yaml/.yml (templates), .csv or .jsonl (pairs or variants rows), "
        ".parquet or a dataset folder (Hugging Face dataset), or a public benchmark file (CrowS-Pairs .csv, "
        "StereoSet .json, WinoBias pro_/anti_stereotyped_*.txt.dev)"
    ]
    missing = DATA / "nope.csv"
    assert messages(missing) == [f"{missing}: no such file or folder; check the path"]
    builtin = list_builtin()
    assert {"age", "gender", "long-context", "multilingual", "names-ner", "bbq-mini"} <= set(builtin)
    assert [str(p) for p in validate_file("nope")] == [
        f"nope: no such file, nor a built-in probe set ({', '.join(builtin)})"
    ]


def test_template_rules_each_give_a_located_problem(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text(
        "\n".join(
            [
                "attribute: gender",  # 1
                "card_file: missing.md",  # 2
                "groups:",  # 3
                "  male: {pronoun: he, name: [Al, Bo], honorific: Mr}",  # 4
                "  female: {pronoun: she, titel: Ms}",  # 5
                "  other: {pronoun: he}",  # 6
                "lexicons:",  # 7
                "  place: [home, work]",  # 8
                "  honorific: [x, y]",  # 9
                "templates:",  # 10
                '  - "{name} went {place}."',  # 11
                '  - "{pronoun} is here."',  # 12
                '  - "{honorific} {pronoun} waves."',  # 13
                "  - {id: 'bad id', text: '{pronoun} sings.'}",  # 14
                "  - {label: positive}",  # 15
                "  - {pronoun}",  # 16
                "associations:",  # 17
                "  - {name: a_vs_b, a_name: a, b_name: b, a: [x, y], b: [y, z]}",  # 18
                "",
            ]
        ),
        encoding="utf-8",
    )
    assert messages(f) == [
        f"{f}:2: cannot read card_file 'missing.md' (No such file or directory); the path is relative to this YAML file",
        f"{f}:5: slot 'titel' of group 'female' is used by no template (templates use: honorific, name, place, "
        "pronoun); fix its name or remove it",
        f"{f}:9: lexicon 'honorific' has the name of a group slot; rename one of them",
        f"{f}:11: template needs slots name, which only male defines; at least two groups must define every slot a "
        "template uses",
        f"{f}:12: groups male, other fill the template identically ('he is here.'); give them different slot values",
        f"{f}:14: template id 'bad id' must be letters, digits, _ . - only",
        f"{f}:15: template 5 has no text (write text: ...)",
        f'{f}:16: template 6 has no text (a template that starts with "{{" must be quoted)',
        f"{f}:18: sets a and b of association 1 share y; a word cannot stand for both sides",
    ]


def test_list_slots_of_different_lengths_in_one_template(tmp_path: Path) -> None:
    f = tmp_path / "zip.yaml"
    f.write_text(
        "attribute: gender\n"
        "groups:\n"
        "  male: {name: [Al, Bo], nick: [A, B, C]}\n"
        "  female: {name: [Cy, Di], nick: [C, D, E]}\n"
        "templates:\n"
        '  - "{name} ({nick}) is here."\n',
        encoding="utf-8",
    )
    assert messages(f) == [
        f"{f}:6: template pairs list slots of different lengths: name (2 values), nick (3 values); list slots used "
        "together pair up by position, so give them the same number of values"
    ]


def test_pairs_options_errors(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n", encoding="utf-8")
    assert messages(f) == [
        f"{f}:1: columns a, b match neither of the two layouts: pairs need text_a,text_b,group_a,group_b,attribute "
        "(optional instance_id,label,lang); variants need instance_id,variant,attribute,text (optional label,lang)"
        "; map a column onto one of ours with --probe-map OUR=FILE_COLUMN and fill a missing one with "
        "--probe-default COLUMN=VALUE (Python: mapping={OUR: FILE_COLUMN}, defaults={COLUMN: VALUE})"
    ]
    assert [str(p) for p in validate_file(f, mapping={"text_a": "sent_more"})] == [
        f"{f}:1: --probe-map text_a=sent_more (Python: mapping={{'text_a': 'sent_more'}}) names column "
        "'sent_more', which the data lacks (columns: a, b)"
    ]


def test_runaway_expansion_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "big.yaml"
    words = ", ".join(f"w{i}" for i in range(50))
    f.write_text(
        "attribute: gender\ngroups:\n  male: {p: he}\n  female: {p: she}\n"
        f"lexicons:\n  a: [{words}]\n  b: [{words}]\n  c: [{words}]\n"
        'templates:\n  - "{p} {a} {b} {c}."\n',
        encoding="utf-8",
    )
    assert messages(f) == [
        f"{f}:10: template would bring the set to 125000 instances (at most 100000); use shorter lexicons or split "
        "the file"
    ]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "one.yaml",
            'attribute: gender\ngroups:\n  male: {pronoun: he}\ntemplates:\n  - "{pronoun} is here."\n',
            [
                "3: groups defines 1 group(s); a counterfactual needs at least 2",
                "5: template needs slots pronoun, which only male defines; at least two groups must define every "
                "slot a template uses",
            ],
        ),
        (
            "shape.yaml",
            'attribute: gender\ngroups: [male, female]\ntemplates: "{pronoun} is here."\ncard: ""\n'
            "associations: {a: b}\n",
            [
                "2: groups must be a mapping (key: value lines), not a list",
                "3: templates must be a non-empty list of texts (or of {text, id, label} mappings)",
                "4: card is empty; write a value or remove the key",
                "5: associations must be a list of mappings, not a mapping",
            ],
        ),
        (
            "empty.yaml",
            "",
            [
                "1: file is empty; a template probe set needs attribute, groups and templates (see docs/probes.md)"
            ],
        ),
        ("header.csv", "text_a,text_b,group_a,group_b,attribute\n", ["1: file has a header but no rows"]),
    ],
)
def test_file_shape_problems(tmp_path: Path, name: str, content: str, expected: list[str]) -> None:
    f = tmp_path / name
    f.write_text(content, encoding="utf-8")
    assert messages(f) == [f"{f}:{message}" for message in expected]


# ------------------------------------------------- example ids, CLI wording, normalised duplicates


def test_ids_whose_slashes_make_the_same_example_id_are_reported_at_the_second(tmp_path: Path) -> None:
    f = tmp_path / "f.csv"
    f.write_text(
        "instance_id,variant,attribute,text\n"
        "x/y,m,gender,He is here.\n"  # 2: example id x/y/m
        "x/y,f,gender,She is here.\n"
        "x,y/m,gender,He sings.\n"  # 4: example id x/y/m again
        "x,z,gender,She sings.\n"
        "a/b,m,gender,He reads.\n"  # slashes without a collision stay allowed
        "a/b,f/g,gender,She reads.\n",
        encoding="utf-8",
    )
    expected = [
        f"{f}:4: instance 'x' variant 'y/m' and instance 'x/y' variant 'm' (line 2) make the same example id "
        "'x/y/m'; avoid '/' in ids or rename one"
    ]
    assert messages(f) == expected
    with pytest.raises(ProbeFileError) as caught:
        load_probe_set(f)
    assert [str(p) for p in caught.value.problems] == expected

    pairs = tmp_path / "p.csv"
    pairs.write_text(
        "instance_id,text_a,text_b,group_a,group_b,attribute\n"
        "a,He sings.,She sings.,b/male,female,gender\n"
        "a/b,He reads.,She reads.,male,female,gender\n",
        encoding="utf-8",
    )
    assert messages(pairs) == [
        f"{pairs}:3: instance 'a/b' variant 'male' and instance 'a' variant 'b/male' (line 2) make the same "
        "example id 'a/b/male'; avoid '/' in ids or rename one"
    ]
    slashes = tmp_path / "s.csv"
    slashes.write_text(
        "instance_id,variant,attribute,text\na/b,m,gender,He reads.\na/b,f/g,gender,She reads.\n",
        encoding="utf-8",
    )
    assert [v.variant for v in load_probe_set(slashes).variants] == ["m", "f/g"]


def test_option_problems_name_the_cli_flags_and_the_python_parameters(tmp_path: Path) -> None:
    yaml_file = tmp_path / "t.yaml"
    yaml_file.write_text(
        'attribute: gender\ngroups:\n  m: {p: he}\n  f: {p: she}\ntemplates:\n  - "{p} is here."\n',
        encoding="utf-8",
    )
    assert [str(p) for p in validate_file(yaml_file, defaults={"attribute": "x"})] == [
        f"{yaml_file}: --probe-map, --probe-default and --probe-split (Python: mapping=, defaults=, split=) apply "
        "to CSV/JSONL files and datasets, not to YAML templates; leave them out"
    ]
    rows = DATA / "pairs.csv"
    assert [str(p) for p in validate_file(rows, split="train")] == [
        f"{rows}: --probe-split train (Python: split='train') applies to datasets only; a CSV/JSONL file has no "
        "splits, so leave it out"
    ]
    assert [str(p) for p in validate_file(rows, defaults={"colour": "red"})] == [
        f"{rows}: --probe-default colour=red (Python: defaults={{'colour': 'red'}}): 'colour' is not a probe "
        "column; the left side names one of ours (attribute, group_a, group_b, instance_id, label, lang, text, "
        "text_a, text_b, variant)"
    ]
    with pytest.raises(UserError, match=r"^--probe-map, --probe-default and --probe-split \(Python: name="):
        load_probe_set("gender", mapping={"text": "x"})


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            ["a,male,gender, The nurse.", "a,female,gender,The nurse."],
            "3: variants 'male' (line 2) and 'female' of instance 'a' are the same text once whitespace and "
            "Unicode (NFC) are normalised; nothing differs between them",
        ),
        (
            ["a,male,gender,The  caf\u00e9 is open.", "a,female,gender,The cafe\u0301 is open.\t"],
            "3: variants 'male' (line 2) and 'female' of instance 'a' are the same text once whitespace and "
            "Unicode (NFC) are normalised; nothing differs between them",
        ),
        (
            ["a,male,gender,He sings.", "a,female,gender,She sings.", "a,other,gender,He sings."],
            "4: variants 'male' (line 2) and 'other' of instance 'a' have the same text; nothing differs between "
            "them",
        ),
    ],
)
def test_variants_that_differ_only_in_whitespace_or_unicode_form(
    tmp_path: Path, rows: list[str], expected: str
) -> None:
    f = tmp_path / "v.csv"
    f.write_text("instance_id,variant,attribute,text\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert messages(f) == [f"{f}:{expected}"]


def test_pairs_and_templates_that_differ_only_in_whitespace(tmp_path: Path) -> None:
    pairs = tmp_path / "p.jsonl"
    pairs.write_text(
        '{"text_a": " The nurse.", "text_b": "The nurse.", "group_a": "male", "group_b": "female", '
        '"attribute": "gender", "instance_id": "n"}\n',
        encoding="utf-8",
    )
    assert messages(pairs) == [
        f"{pairs}:1: variants 'male' and 'female' of instance 'n' are the same text once whitespace and Unicode "
        "(NFC) are normalised; nothing differs between them"
    ]
    template = tmp_path / "t.yaml"
    template.write_text(
        'attribute: gender\ngroups:\n  m: {p: "he "}\n  f: {p: she}\n  o: {p: he}\ntemplates:\n  - "{p} is here."\n',
        encoding="utf-8",
    )
    assert messages(template) == [
        f"{template}:7: groups m, o fill the template identically ('he  is here.') once whitespace and Unicode "
        "(NFC) are normalised; give them different slot values"
    ]

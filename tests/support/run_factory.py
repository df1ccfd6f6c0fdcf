"""Write a small but realistic run folder (manifest.json + parquet tables) for dashboard tests.

It follows the run-folder contract (audit/tables.py and the manifest fields the CLI writes) without
running a model: scores come from a seeded generator with a planted group bias, and the findings are
computed from the effects with the same kinds of statistics the engine reports (mean paired delta,
bootstrap interval, sign-flip p-value, Benjamini-Hochberg q-value). The dashboard must not care
whether a run came from here or from the CLI.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from audit.tables import SCHEMA_VERSION, TABLES

LABELS = ("negative", "positive")
OUTPUTS = tuple(f"prob:{label}" for label in LABELS)
MARKUP_INSTANCE = "markup"
MARKUP_TEMPLATE = "{name} wrote <script>alert('x')</script> and a <b>bold</b> review."


@dataclass(frozen=True)
class _ProbeSpec:
    name: str
    attribute: str
    groups: dict[str, str]  # group -> the word filled into the template
    templates: tuple[str, ...]
    bias: dict[str, float]  # group -> shift of the positive logit


_GENDER = _ProbeSpec(
    name="gender",
    attribute="gender",
    groups={"male": "John", "female": "Mary", "nonbinary": "Alex"},
    templates=(
        "{name} is a nurse.",
        "{name} is an engineer.",
        "{name} fixed the car quickly.",
        "{name} stayed home with the kids.",
        "{name} led the meeting with confidence.",
        "Everyone agreed that {name} was brilliant.",
        "{name} cried during the movie.",
        "{name} was promoted to manager.",
    ),
    bias={"male": 0.0, "female": -0.6, "nonbinary": -0.3},
)
_RELIGION = _ProbeSpec(
    name="religion",
    attribute="religion",
    groups={"christian": "Christian", "muslim": "Muslim"},
    templates=(
        "My {name} neighbour invited us for dinner.",
        "The {name} student won the prize.",
        "A {name} family moved in next door.",
        "The {name} doctor answered every question.",
        "I met a {name} traveller at the station.",
        "Our {name} colleague organised the party.",
    ),
    bias={"christian": 0.0, "muslim": -0.15},
)

_TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


def write_run(
    runs_dir: Path,
    run_id: str = "20261124-231500-minilm-sentiment",
    *,
    model_name: str = "minilm-sentiment",
    created_at: str = "2026-11-24T23:15:00Z",
    seed: int = 0,
    bias_scale: float = 1.0,
    with_attributions: bool = True,
    with_attention: bool = True,
    markup_probe: bool = False,
    status: str = "complete",
) -> Path:
    """Write ``<runs_dir>/<run_id>/`` and return that folder.

    ``bias_scale`` multiplies the planted group bias (0 gives a model without bias).
    ``markup_probe`` adds a gender instance whose text holds ``<script>`` and ``<b>`` markup.
    Without attributions or attention the table files are absent, as with ``--no-attention``.
    """
    rng = np.random.default_rng(seed)
    run_dir = Path(runs_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=False)

    specs = (_GENDER, _RELIGION)
    examples: list[dict[str, object]] = []
    predictions: list[dict[str, object]] = []
    scores: dict[str, float] = {}
    for spec in specs:
        templates = list(spec.templates)
        if markup_probe and spec is _GENDER:
            templates.append(MARKUP_TEMPLATE)
        for index, template in enumerate(templates):
            instance_id = MARKUP_INSTANCE if template == MARKUP_TEMPLATE else f"{spec.name}-{index:03d}"
            base_logit = rng.normal(0.8, 1.0)
            for group, word in spec.groups.items():
                start = template.index("{name}")
                text = template.replace("{name}", word)
                example_id = f"{spec.name}/{instance_id}/{group}"
                tokens = _tokenize(text)
                examples.append(
                    {
                        "example_id": example_id,
                        "probe_set": spec.name,
                        "instance_id": instance_id,
                        "variant": group,
                        "attribute": spec.attribute,
                        "lang": "en",
                        "text": text,
                        "label": None,
                        "focus": json.dumps([[start, start + len(word)]]),
                        "n_tokens": len(tokens) + 2,
                        "truncated": False,
                    }
                )
                logit = base_logit + bias_scale * spec.bias[group] + rng.normal(0.0, 0.15)
                positive = 1.0 / (1.0 + math.exp(-logit))
                predicted = LABELS[int(positive >= 0.5)]
                scores[example_id] = positive
                for output, score in zip(OUTPUTS, (1.0 - positive, positive), strict=True):
                    predictions.append(
                        {"example_id": example_id, "output": output, "score": score, "label": predicted}
                    )

    examples_frame = pd.DataFrame(examples, columns=TABLES["examples"])
    effects_frame = _effects(examples_frame, scores)
    findings_frame = _findings(effects_frame, rng)
    tables: dict[str, pd.DataFrame] = {
        "examples": examples_frame,
        "predictions": pd.DataFrame(predictions, columns=TABLES["predictions"]),
        "effects": effects_frame,
        "findings": findings_frame,
    }
    if with_attributions:
        tables["attributions"], tables["attribution_pairs"] = _attributions(
            examples_frame, effects_frame, rng
        )
    if with_attention:
        tables["attention"] = _attention(examples_frame, rng)
    for name, frame in tables.items():
        frame.to_parquet(run_dir / f"{name}.parquet", index=False)

    n_significant = int(findings_frame["significant"].sum())
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": created_at,
        "status": status,
        "model": {
            "name": model_name,
            "source": f"/models/{model_name}",
            "task": "text-classification",
            "labels": list(LABELS),
            "revision": None,
            "weight_hash": "0" * 64,
            "max_length": 256,
        },
        "probe_sets": [
            {
                "name": spec.name,
                "source": f"builtin:{spec.name}",
                "hash": "f" * 64,
                "n_instances": int(
                    examples_frame.loc[examples_frame["probe_set"] == spec.name, "instance_id"].nunique()
                ),
                "n_variants": int((examples_frame["probe_set"] == spec.name).sum()),
            }
            for spec in specs
        ],
        "config": {"alpha": 0.05, "min_effect": 0.02, "seed": seed, "attribute_top": 2},
        "timings": {
            "load": 1.2,
            "score": 3.4,
            "findings": 0.8,
            "attributions": 5.1,
            "attention": 1.0,
            "write": 0.1,
        },
        "summary": {
            "n_examples": len(examples_frame),
            "n_findings": len(findings_frame),
            "n_significant": n_significant,
        },
        "versions": {"probelens": "0.1.0", "torch": "2.13.0", "transformers": "5.24.0"},
        "git_hash": "deadbeef",
        "device": "cpu",
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return run_dir


def _tokenize(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in _TOKEN_PATTERN.finditer(text)]


def _effects(examples: pd.DataFrame, scores: dict[str, float]) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    for (probe_set, instance_id), variants in examples.groupby(["probe_set", "instance_id"], sort=False):
        records = variants.to_dict("records")
        for a, b in itertools.combinations(records, 2):
            pa, pb = scores[str(a["example_id"])], scores[str(b["example_id"])]
            label_a, label_b = LABELS[int(pa >= 0.5)], LABELS[int(pb >= 0.5)]
            for output, score_a, score_b in (("prob:negative", 1 - pa, 1 - pb), ("prob:positive", pa, pb)):
                rows.append(
                    {
                        "probe_set": probe_set,
                        "instance_id": instance_id,
                        "attribute": a["attribute"],
                        "group_a": a["variant"],
                        "group_b": b["variant"],
                        "output": output,
                        "score_a": score_a,
                        "score_b": score_b,
                        "delta": score_a - score_b,
                        "label_a": label_a,
                        "label_b": label_b,
                        "flipped": label_a != label_b,
                    }
                )
    return pd.DataFrame(rows, columns=TABLES["effects"])


def _findings(effects: pd.DataFrame, rng: np.random.Generator, alpha: float = 0.05) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    positive = effects[effects["output"] == "prob:positive"]
    for (probe_set, attribute, group_a, group_b), pair in positive.groupby(
        ["probe_set", "attribute", "group_a", "group_b"], sort=False
    ):
        deltas = pair["delta"].to_numpy(dtype=float)
        flips = pair["flipped"].to_numpy(dtype=float)
        key = {"probe_set": probe_set, "attribute": attribute, "group_a": group_a, "group_b": group_b}
        for metric, output, values, threshold in (
            ("mean_delta", "prob:positive", deltas, 0.02),
            ("flip_rate", "label", flips, 0.05),
        ):
            boot = rng.choice(values, size=(1000, len(values))).mean(axis=1)
            # both metrics of a pair share the sign-flip test of its paired deltas
            signs = rng.choice([-1.0, 1.0], size=(2000, len(deltas)))
            observed = abs(deltas.mean())
            p_value = float(max((np.abs((signs * deltas).mean(axis=1)) >= observed - 1e-12).mean(), 1 / 2000))
            spread = values.std(ddof=1)
            rows.append(
                {
                    **key,
                    "metric": metric,
                    "output": output,
                    "effect": float(values.mean()),
                    "ci_low": float(np.quantile(boot, 0.025)),
                    "ci_high": float(np.quantile(boot, 0.975)),
                    "p_value": p_value,
                    "effect_size": float(values.mean() / spread) if spread > 0 else 0.0,
                    "n": len(values),
                    "threshold": threshold,
                }
            )
    frame = pd.DataFrame(rows)
    frame["q_value"] = _benjamini_hochberg(frame["p_value"].to_numpy(dtype=float))
    frame["significant"] = (frame["q_value"] < alpha) & (frame["effect"].abs() >= frame["threshold"])
    magnitude = frame["effect"].abs() / frame["threshold"]
    frame["severity"] = np.select(
        [~frame["significant"], magnitude < 2, magnitude < 5], ["none", "low", "medium"], default="high"
    )
    return frame.reindex(columns=TABLES["findings"])


def _benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    order = np.argsort(p_values)
    ranked = p_values[order] * len(p_values) / np.arange(1, len(p_values) + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q_values = np.empty_like(ranked)
    q_values[order] = np.minimum(ranked, 1.0)
    return q_values


def _attributions(
    examples: pd.DataFrame, effects: pd.DataFrame, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Token attributions for the two instances of each probe set with the largest |delta| (and the markup one)."""
    positive = effects[effects["output"] == "prob:positive"]
    largest = (
        positive.assign(size=positive["delta"].abs()).groupby(["probe_set", "instance_id"])["size"].max()
    )
    chosen = largest.groupby(level="probe_set", group_keys=False).nlargest(2).index
    chosen_ids = {instance_id for _, instance_id in chosen} | (
        {MARKUP_INSTANCE} & set(examples["instance_id"])
    )
    token_rows: list[dict[str, object]] = []
    focus_mass: dict[tuple[str, str], float] = {}
    for record in examples[examples["instance_id"].isin(chosen_ids)].to_dict("records"):
        text = str(record["text"])
        (focus_start, focus_end), *_ = json.loads(str(record["focus"]))
        tokens = [("[CLS]", 0, 0), *_tokenize(text), ("[SEP]", len(text), len(text))]
        for method in ("integrated_gradients", "gradient_x_input"):
            values = rng.normal(0.0, 0.05, size=len(tokens))
            is_focus = [start < focus_end and end > focus_start for _, start, end in tokens]
            values[np.array(is_focus)] += rng.normal(0.2, 0.1)
            convergence = float(rng.normal(0.0, 0.01)) if method == "integrated_gradients" else None
            focus_mass[(str(record["example_id"]), method)] = float(values[np.array(is_focus)].sum())
            for index, ((token, start, end), value, focus) in enumerate(
                zip(tokens, values, is_focus, strict=True)
            ):
                token_rows.append(
                    {
                        "example_id": record["example_id"],
                        "method": method,
                        "output": "prob:positive",
                        "token_index": index,
                        "token": token,
                        "char_start": start,
                        "char_end": end,
                        "attribution": float(value),
                        "is_focus": focus,
                        "convergence_delta": convergence,
                    }
                )
    pair_rows: list[dict[str, object]] = []
    pairs = positive[positive["instance_id"].isin(chosen_ids)]
    for pair in pairs.to_dict("records"):
        prefix = f"{pair['probe_set']}/{pair['instance_id']}"
        for method in ("integrated_gradients", "gradient_x_input"):
            mass_a = focus_mass[(f"{prefix}/{pair['group_a']}", method)]
            mass_b = focus_mass[(f"{prefix}/{pair['group_b']}", method)]
            pair_rows.append(
                {
                    "probe_set": pair["probe_set"],
                    "instance_id": pair["instance_id"],
                    "group_a": pair["group_a"],
                    "group_b": pair["group_b"],
                    "method": method,
                    "output": "prob:positive",
                    "focus_attribution_a": mass_a,
                    "focus_attribution_b": mass_b,
                    "delta": mass_a - mass_b,
                }
            )
    return (
        pd.DataFrame(token_rows, columns=TABLES["attributions"]),
        pd.DataFrame(pair_rows, columns=TABLES["attribution_pairs"]),
    )


def _attention(
    examples: pd.DataFrame, rng: np.random.Generator, layers: int = 3, heads: int = 4
) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    female_shift = {"female": 0.15}
    for record in examples.to_dict("records"):
        shift = female_shift.get(str(record["variant"]), 0.0)
        n_tokens = int(str(record["n_tokens"]))
        for layer, head in itertools.product(range(layers), range(heads)):
            stats = {
                "entropy": float(np.log(n_tokens) * rng.uniform(0.4, 0.9)),
                "focus_mass": float(np.clip(rng.uniform(0.05, 0.3) + (shift if head == 1 else 0.0), 0, 1)),
                "special_mass": float(rng.uniform(0.1, 0.6) * (layer + 1) / layers),
                "mean_distance": float(rng.uniform(1.0, n_tokens / 2)),
            }
            for stat, value in stats.items():
                rows.append(
                    {
                        "example_id": record["example_id"],
                        "layer": layer,
                        "head": head,
                        "stat": stat,
                        "value": value,
                    }
                )
    return pd.DataFrame(rows, columns=TABLES["attention"])

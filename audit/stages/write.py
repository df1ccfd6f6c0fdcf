"""write: every table of the run into its folder, and the manifest's timings, warnings and
summary; the run is marked complete."""

from __future__ import annotations

from typing import Any

from audit.stages.compare import problem_findings
from audit.stages.progress import Timer
from audit.stages.state import RunState, ready
from audit.store import RunStore
from audit.tables import flags


def write(
    state: RunState, store: RunStore, manifest: dict[str, Any], warnings: list[str], timer: Timer
) -> None:
    """``warnings``: everything the run warned about, in the order it was shown."""
    examples = state.encoding.examples
    generated = ready(state.generated, "generate")
    compared = ready(state.compared, "compare")
    explained = ready(state.explained, "explain")
    attention = ready(state.attention, "attention")
    patched = ready(state.patched, "patch")
    findings, attributions, segments = explained.findings, explained.attributions, explained.segments
    with timer.stage("write"):
        tables = {
            "examples": examples,
            "predictions": generated.predictions,
            "effects": compared.effects,
            "findings": findings,
            "attributions": attributions,
            "attribution_pairs": explained.attribution_pairs,
            "pair_attributions": explained.pair_attributions,
            "attention": attention.attention,
            "segment_attributions": segments,
            "generations": generated.table,
            "patching": patched.patching,
            "patching_effects": patched.effects,
        }
        for name, frame in tables.items():
            store.write_table(name, frame)
    tested_rows = findings["q_value"].notna()  # in a BH family (unreadable languages' rows are not)
    manifest.update(
        timings=timer.seconds,
        warnings=warnings,
        summary={
            "n_examples": len(examples),
            "n_findings": len(findings),
            "n_tests": int(tested_rows.sum()),
            # problems: a key sentence that moves the output (key_effect) is significant but no problem
            "n_significant": int(problem_findings(findings).sum()),
            "n_key_effects_significant": int(
                (flags(findings["significant"]) & (findings["metric"] == "key_effect")).sum()
            ),
            "n_attributed_examples": int(attributions["example_id"].nunique()) if len(attributions) else 0,
            "n_explained_pairs": int(
                len(
                    explained.pair_attributions.drop_duplicates(
                        ["probe_set", "instance_id", "group_a", "group_b"]
                    )
                )
            ),
            "n_segment_attributed_examples": int(segments["example_id"].nunique()) if len(segments) else 0,
            "n_truncated_examples": int(examples["truncated"].sum()),
            "n_patched_pairs": len(
                patched.patching[["probe_set", "instance_id", "group_a", "group_b"]].drop_duplicates()
            ),
            "instances_left_out": compared.left_out,
            "n_underpowered_tests": compared.n_underpowered,
            "unreadable_languages": compared.unreadable_languages,
        },
    )
    store.mark(manifest, "complete")

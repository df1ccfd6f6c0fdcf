"""Activation patching (causal tracing) of aligned pairs of variants, and its aggregation.

For a pair of variants a and b of one instance whose inputs have the same number of tokens, a's
input is run once per (layer, token position) with that one activation replaced by b's:

    restored_fraction = (f(a with b's activation at layer l, token t) - f(a)) / (f(b in a's run) - f(a))

where f is the score-head output the finding compares and explains (``ScoreHead.forward``, the
column ``attribution_output`` picks). Layer 0 is the output of the token embedding module
(``Target.embedding_layer``); layer l >= 1 is the output of the l-th transformer block, found as the
model's list of blocks (``transformer_blocks``). "b in a's run" is b's input with a's variant index:
every head that looks up per-variant data (a causal LM's own target tokens, a translation's target
texts) keeps a's, so patching every position at layer 0 gives exactly that score and layer 0
restores exactly 1 at the swapped tokens and 0 elsewhere. For heads without per-variant data
(classifiers, embeddings) it is f(b), the finding's own score.

Batched: every patch of a pair is one row of a batch that also holds a's and b's own runs. A
forward hook on each patched module copies b's row into the patched rows at their position, in
the same pass, so no activation is stored beyond b's rows. Cells where b's activation equals a's
bit for bit (tokens before the swap in a decoder, unswapped tokens at layer 0) are not run: the
patch would change nothing, so their restored fraction is exactly 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from audit.batching import pad_right, token_budget_batches
from audit.metrics.options import TestOptions
from audit.metrics.stats import RandomMatrices, mean_tests
from audit.tables import PATCHING_POSITIONS, TABLES, typed_empty
from audit.targets import Target

SUPPORTED_TASKS = ("text-classification", "causal-lm", "seq2seq", "embedding", "token-classification")
"""Tasks whose score head runs each input row through the model once (or in consecutive slices of
rows): a forward hook can follow its rows. A masked LM scores many masked copies of each row
(pseudo-log-likelihood), so a block's activation there is per copy, not per row."""

NEGLIGIBLE = 1e-4
"""A pair whose |f(b in a's run) - f(a)| is at most this share of max(1, |f(a)|, |f(b)|) has no
difference to restore: float32 rounding of the score (or of the sums it is the difference of, such
as two targets' log-likelihoods) would be divided by about zero. Its restored fractions are null."""

COMPARE_TOKENS = 2048
"""Padded tokens per batch of the pass that runs a and b side by side, every activation kept."""

PATCHING_DTYPES: dict[str, str] = {
    "layer": "int64",
    "token_index": "int64",
    "is_focus": "bool",
    **dict.fromkeys(("score_a", "score_b", "score_patched", "restored_fraction", "delta"), "float64"),
}
EFFECT_DTYPES: dict[str, str] = {
    "layer": "int64",
    "n": "int64",
    "n_pairs": "int64",
    **dict.fromkeys(("effect", "ci_low", "ci_high", "p_value"), "float64"),
    "ci_method": "object",
}


# --------------------------------------------------------------------------- where to patch


@dataclass(frozen=True)
class PatchSites:
    """The modules whose outputs are patched: [token embeddings, block 1, ..., block L]."""

    modules: list[nn.Module]
    inserted: int = 0
    """Positions the model inserts after a text's leading special tokens before its blocks (a
    seq2seq task prefix); a block's position of token t is t + inserted from there on."""
    appended: bool = False
    """The blocks may see positions after the text (a causal LM's continuations): longer outputs
    are allowed. Otherwise a site whose output does not have the expected positions stops the run."""

    @property
    def n_layers(self) -> int:
        return len(self.modules)


UNFOUND_BLOCKS = (
    "activation patching needs one list of identical blocks, as many as the config's num_hidden_layers, "
    "as in BERT-like encoders (encoder.layer), Llama-family decoders such as SmolLM2 (layers), T5 (block) and "
    "BART (layers); run without --patching for this model (the rest of the audit does not need it)"
)
"""What to do when ``transformer_blocks`` cannot tell the model's blocks (the run goes on without patching)."""


def transformer_blocks(root: nn.Module, n_layers: int | None) -> list[nn.Module]:
    """The model's list of transformer blocks: the shallowest ``nn.ModuleList`` under ``root`` of
    ``n_layers`` modules of one class (BERT ``encoder.layer``, Llama ``layers``, GPT-2 ``h``, T5
    ``block``, BART ``layers``). Raises ValueError, saying what was found and what to do (``UNFOUND_BLOCKS``),
    when there is not exactly one."""
    found = [
        (name, module)
        for name, module in root.named_modules()
        if isinstance(module, nn.ModuleList)
        and len(module) > 0
        and len({type(child) for child in module}) == 1
        and (n_layers is None or len(module) == n_layers)
    ]
    if not found:
        lists = [
            f"{name or '<root>'} ({len(m)})"
            for name, m in root.named_modules()
            if isinstance(m, nn.ModuleList)
        ]
        raise ValueError(
            f"no list of {n_layers if n_layers is not None else 'transformer'} blocks found in "
            f"{type(root).__name__} (module lists: {', '.join(lists) or 'none'}); {UNFOUND_BLOCKS}"
        )
    depth = min(name.count(".") for name, _ in found)
    shallowest = [(name, module) for name, module in found if name.count(".") == depth]
    if len(shallowest) > 1:
        raise ValueError(
            f"several lists of blocks in {type(root).__name__} ({', '.join(n for n, _ in shallowest)}): "
            f"cannot tell which one the score runs through; {UNFOUND_BLOCKS}"
        )
    return list(shallowest[0][1])


def patch_sites(target: Target, prefix_tokens: int = 0, appended: bool = False) -> PatchSites:
    """Where a target's activations are patched; ValueError with the reason when they cannot be.
    ``prefix_tokens``: positions a seq2seq task prefix adds after the leading special tokens;
    ``appended``: the score runs the blocks on positions after the text (continuations)."""
    if target.task not in SUPPORTED_TASKS:
        raise ValueError(
            f"activation patching supports the tasks {', '.join(SUPPORTED_TASKS)}, not {target.task!r}"
            + (
                " (a masked LM's pseudo-log-likelihood runs many masked copies of each input, so a "
                "block's activation is not one per variant)"
                if target.task == "masked-lm"
                else ""
            )
        )
    config = getattr(target.model, "config", None)
    n_layers = getattr(config, "num_hidden_layers", None)
    blocks = transformer_blocks(target.transformer(), n_layers if isinstance(n_layers, int) else None)
    return PatchSites([target.embedding_layer(), *blocks], prefix_tokens, appended)


# --------------------------------------------------------------------------- the patched runs


@dataclass(frozen=True)
class PatchPair:
    """One aligned pair: a's and b's token ids (same length), a's variant index in its probe set,
    the score-head column compared, and how many special tokens lead the text."""

    ids_a: Sequence[int]
    ids_b: Sequence[int]
    variant_a: int
    output_index: int
    lead: int = 0


@dataclass(frozen=True)
class PairPatches:
    """One pair's results; arrays are (layers, tokens)."""

    score_a: float
    score_b: float
    """b's input in a's run (a's variant index)."""
    patched: np.ndarray
    """The score with b's activation at (layer, token): score_a where the two activations are equal."""
    restored: np.ndarray
    """(patched - a) / (b - a), each patched row against the a and b rows of its own batch; null
    when the pair has no difference to restore (``NEGLIGIBLE``)."""
    ran: np.ndarray
    """Whether the cell was run (False: b's activation equals a's, the patch is the identity)."""


@dataclass
class _Plan:
    """What the hooks do during one forward pass of ``rows`` rows: keep the rows in ``sources``
    (slot k = sources[k]); at layer l, give row ``rows[l][i]`` at position ``positions[l][i]`` the
    kept value of slot ``slots[l][i]``."""

    n_rows: int
    width: int
    """The padded input width: the positions every site's output must have (after what the
    model inserts or appends, ``PatchSites``)."""
    sources: torch.Tensor
    rows: list[torch.Tensor]
    slots: list[torch.Tensor]
    positions: list[torch.Tensor]


class _Hooks:
    """Forward hooks on the patch sites, following one plan at a time. A head may run a batch in
    consecutive slices of rows, and more than once (a causal LM's continuations): each site counts
    the rows it has seen and takes the next ones."""

    def __init__(self, sites: PatchSites) -> None:
        self.sites = sites
        self.plan: _Plan | None = None
        self.seen = [0] * sites.n_layers
        self.kept: list[torch.Tensor | None] = [None] * sites.n_layers
        self.handles = [
            module.register_forward_hook(self._hook(layer)) for layer, module in enumerate(sites.modules)
        ]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def start(self, plan: _Plan) -> None:
        self.plan, self.seen, self.kept = plan, [0] * self.sites.n_layers, [None] * self.sites.n_layers

    def check(self) -> None:
        """Every site saw whole passes over the batch's rows (else the hooks could not follow it)."""
        plan = self.plan
        assert plan is not None
        for layer, seen in enumerate(self.seen):
            if seen == 0 or seen % plan.n_rows:
                raise RuntimeError(
                    f"activation patching could not follow the score's forward pass: layer {layer} "
                    f"({type(self.sites.modules[layer]).__name__}) saw {seen} rows of a batch of {plan.n_rows}"
                )

    def _hook(self, layer: int) -> Callable[..., Any]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            if self.plan is None:
                return None
            hidden = output[0] if isinstance(output, tuple) else output
            patched = self._apply(layer, hidden)
            if patched is hidden:
                return None
            return (patched, *output[1:]) if isinstance(output, tuple) else patched

        return hook

    def _apply(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        plan = self.plan
        assert plan is not None
        start = self.seen[layer] % plan.n_rows
        n = hidden.shape[0]
        if start + n > plan.n_rows:
            raise RuntimeError(
                f"activation patching could not follow the score's forward pass: layer {layer} got "
                f"rows {start}..{start + n} of a batch of {plan.n_rows}"
            )
        self.seen[layer] += n
        expected = plan.width + (self.sites.inserted if layer > 0 else 0)
        width = hidden.shape[1] if hidden.dim() >= 2 else -1
        if width != expected and not (self.sites.appended and width > expected):
            raise RuntimeError(
                f"activation patching could not follow the score's forward pass: layer {layer} "
                f"({type(self.sites.modules[layer]).__name__}) returned {width} positions for inputs of "
                f"{plan.width} tokens (expected {expected})"
            )
        kept = self.kept[layer]
        if kept is None or kept.shape[1:] != hidden.shape[1:]:
            kept = self.kept[layer] = hidden.new_zeros((len(plan.sources), *hidden.shape[1:]))
        here = (plan.sources >= start) & (plan.sources < start + n)
        if here.any():
            kept[here.to(kept.device)] = hidden[(plan.sources[here] - start).to(hidden.device)].detach()
        rows = plan.rows[layer]
        inside = (rows >= start) & (rows < start + n)
        if not inside.any():
            return hidden
        positions = plan.positions[layer][inside].to(hidden.device)
        slots = plan.slots[layer][inside].to(hidden.device)
        patched = hidden.clone()
        patched[(rows[inside] - start).to(hidden.device), positions] = kept[slots, positions]
        return patched


def patch_pairs(
    forward: Callable[..., torch.Tensor],
    sites: PatchSites,
    pairs: Sequence[PatchPair],
    *,
    pad_id: int,
    device: torch.device,
    batch_tokens: int = 8192,
    on_done: Callable[[int], None] | None = None,
) -> list[PairPatches]:
    """Patch every (layer, token) of every pair (see the module docstring); results in the pairs' order.

    First a and b run side by side (two rows per pair) to find the cells where their activations
    differ; then those cells run as patched rows, each pair's in batches of at most
    ``batch_tokens`` padded tokens that also hold a's and b's rows.
    """
    for i, pair in enumerate(pairs):
        if len(pair.ids_a) != len(pair.ids_b):
            raise ValueError(
                f"pair {i}: {len(pair.ids_a)} and {len(pair.ids_b)} tokens; patching needs aligned variants"
            )
    results: list[PairPatches | None] = [None] * len(pairs)
    hooks = _Hooks(sites)
    try:
        with torch.no_grad():
            lengths = [2 * len(pair.ids_a) for pair in pairs]
            # every activation of this pass is kept: a smaller budget bounds that memory
            for group in token_budget_batches(lengths, min(batch_tokens, COMPARE_TOKENS), max_batch_size=64):
                chosen = [pairs[i] for i in group]
                differs, score_a, score_b = _compare_runs(forward, hooks, sites, chosen, pad_id, device)
                for k, index in enumerate(group):
                    results[index] = _patch_one(
                        forward, hooks, sites, chosen[k], differs[k], score_a[k], score_b[k], pad_id, device,
                        batch_tokens,
                    )  # fmt: skip
                if on_done is not None:
                    on_done(len(group))
    finally:
        hooks.remove()
    return [r for r in results if r is not None]


def _block_position(pair: PatchPair, sites: PatchSites, layer: int, token: int) -> int:
    return token + sites.inserted if layer > 0 and token >= pair.lead else token


def _positions(pair: PatchPair, sites: PatchSites, layer: int) -> torch.Tensor:
    return torch.tensor([_block_position(pair, sites, layer, t) for t in range(len(pair.ids_a))])


def _run(
    forward: Callable[..., torch.Tensor],
    hooks: _Hooks,
    plan: _Plan,
    ids: list[Sequence[int]],
    variants: list[int],
    outputs: list[int],
    pad_id: int,
    device: torch.device,
) -> np.ndarray:
    """One forward pass under ``plan``: each row's chosen output, as float64."""
    hooks.start(plan)
    input_ids = pad_right(ids, pad_id, device)
    mask = pad_right([[1] * len(row) for row in ids], 0, device)
    index = torch.tensor(variants, dtype=torch.long, device=device)
    scores = forward(input_ids, mask, index)
    hooks.check()
    hooks.plan = None
    picked = scores[torch.arange(len(ids), device=scores.device), torch.tensor(outputs, device=scores.device)]
    return picked.detach().double().cpu().numpy()


def _compare_runs(
    forward: Callable[..., torch.Tensor],
    hooks: _Hooks,
    sites: PatchSites,
    pairs: list[PatchPair],
    pad_id: int,
    device: torch.device,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """a and b of each pair side by side (rows 2k, 2k+1), every activation kept: per pair the
    (layers, tokens) cells where b's activation differs from a's, and the two scores."""
    n = 2 * len(pairs)
    empty = [torch.zeros(0, dtype=torch.long)] * sites.n_layers
    plan = _Plan(n, max(len(p.ids_a) for p in pairs), torch.arange(n), empty, empty, empty)
    ids = [row for pair in pairs for row in (pair.ids_a, pair.ids_b)]
    variants = [pair.variant_a for pair in pairs for _ in range(2)]
    outputs = [pair.output_index for pair in pairs for _ in range(2)]
    scores = _run(forward, hooks, plan, ids, variants, outputs, pad_id, device)
    differs = []
    for k, pair in enumerate(pairs):
        cells = np.zeros((sites.n_layers, len(pair.ids_a)), dtype=bool)
        for layer, kept in enumerate(hooks.kept):
            assert kept is not None
            at = _positions(pair, sites, layer).to(kept.device)
            cells[layer] = (kept[2 * k, at] != kept[2 * k + 1, at]).flatten(1).any(dim=1).cpu().numpy()
        differs.append(cells)
    return differs, scores[0::2], scores[1::2]


def _patch_one(
    forward: Callable[..., torch.Tensor],
    hooks: _Hooks,
    sites: PatchSites,
    pair: PatchPair,
    differs: np.ndarray,
    score_a: float,
    score_b: float,
    pad_id: int,
    device: torch.device,
    batch_tokens: int,
) -> PairPatches:
    """Run the cells of one pair where b's activation differs from a's, a few hundred rows a batch."""
    shape = differs.shape
    patched = np.full(shape, score_a, dtype=np.float64)
    restored = np.zeros(shape, dtype=np.float64)
    cells = np.argwhere(differs)
    per_batch = max(1, batch_tokens // len(pair.ids_a) - 2)
    for start in range(0, len(cells), per_batch):
        chunk = cells[start : start + per_batch]
        layers = torch.as_tensor(chunk[:, 0])
        tokens = chunk[:, 1]
        rows = torch.arange(2, 2 + len(chunk))
        plan = _Plan(
            2 + len(chunk),
            len(pair.ids_a),
            torch.tensor([1]),  # b's row: the one source
            [rows[layers == layer] for layer in range(sites.n_layers)],
            [torch.zeros(int((layers == layer).sum()), dtype=torch.long) for layer in range(sites.n_layers)],
            [
                torch.tensor(
                    [_block_position(pair, sites, layer, int(t)) for t in tokens[(layers == layer).numpy()]],
                    dtype=torch.long,
                )
                for layer in range(sites.n_layers)
            ],
        )
        ids = [pair.ids_a, pair.ids_b, *[pair.ids_a] * len(chunk)]
        scores = _run(
            forward,
            hooks,
            plan,
            ids,
            [pair.variant_a] * len(ids),
            [pair.output_index] * len(ids),
            pad_id,
            device,
        )
        a, b, values = scores[0], scores[1], scores[2:]
        patched[chunk[:, 0], chunk[:, 1]] = values
        restored[chunk[:, 0], chunk[:, 1]] = (values - a) / (b - a) if b != a else np.nan
    if abs(score_b - score_a) <= NEGLIGIBLE * max(1.0, abs(score_a), abs(score_b)):
        restored = np.full(shape, np.nan)
    return PairPatches(float(score_a), float(score_b), patched, restored, differs)


# --------------------------------------------------------------------------- positions and aggregation


def relative_positions(special: Sequence[bool], focus: Sequence[bool]) -> list[str]:
    """Each token's class in ``PATCHING_POSITIONS``: special tokens before the text are "start",
    after it "end"; the others by their distance to the first (before) or last (after) focus token.
    Without focus tokens every token is classed by its place alone ("start", "end" or "between")."""
    n = len(special)
    text = [i for i in range(n) if not special[i]]
    first_text, last_text = (text[0], text[-1]) if text else (n, -1)
    marked = [i for i in range(n) if focus[i]]
    classes = []
    for i in range(n):
        if special[i] and i < first_text:
            classes.append("start")
        elif special[i] and i > last_text:
            classes.append("end")
        elif focus[i]:
            classes.append("focus")
        elif not marked or marked[0] < i < marked[-1]:
            classes.append("between")
        elif i < marked[0]:
            distance = marked[0] - i
            classes.append(f"before:{distance}" if distance < 3 else "before:3+")
        else:
            distance = i - marked[-1]
            classes.append(f"after:{distance}" if distance < 3 else "after:3+")
    return classes


def patching_effects(
    table: pd.DataFrame,
    attributes: Mapping[str, str],
    notes: Mapping[str, str | None],
    options: TestOptions,
) -> pd.DataFrame:
    """The ``patching_effects`` rows: per probe set, layer and relative position, the mean restored
    fraction over instances, tested against 0 as every paired mean is (``stats.mean_tests``: the
    two-sided sign-flip p-value and an interval that agrees with it, the inverted sign-flip test up to
    n = 29 instances, BCa above unless the two disagree; ``ci_method`` says which; with n <= 5 at 95%
    the interval is ``(-inf, inf)``: no sign pattern is rare enough to exclude any value). Within an
    instance the tokens of one class are averaged per pair, then the instance's pairs; instances are
    the resampled unit (the pairs of one instance share its sentence)."""
    valid = table[table["restored_fraction"].notna()]
    if valid.empty:
        return typed_empty("patching_effects", EFFECT_DTYPES)
    cell = ["probe_set", "layer", "relative_position"]
    per_pair = (
        valid.groupby([*cell, "instance_id", "group_a", "group_b"], sort=False)["restored_fraction"]
        .mean()
        .reset_index()
    )
    per_instance = per_pair.groupby([*cell, "instance_id"], sort=False)["restored_fraction"].mean()
    n_pairs = per_pair.groupby(cell, sort=False).size()
    outputs = valid.groupby("probe_set")["output"].agg(lambda s: ", ".join(sorted(set(map(str, s)))))
    columns = [
        (key, values.to_numpy(dtype=float)) for key, values in per_instance.groupby(level=cell, sort=False)
    ]
    tests = mean_tests(
        [values for _, values in columns],
        RandomMatrices(options.seed, options.n_resamples),
        confidence=options.confidence,
        n_permutations=options.n_permutations,
    )
    rows = []
    for (key, values), test in zip(columns, tests, strict=True):
        probe_set, layer, position = key
        rows.append(
            {
                "probe_set": probe_set,
                "attribute": attributes.get(str(probe_set)),
                "metric": "restored_fraction",
                "output": outputs[probe_set],
                "layer": int(layer),
                "relative_position": position,
                "effect": test.effect,
                "ci_low": test.ci_low,
                "ci_high": test.ci_high,
                "p_value": test.p_value,
                "ci_method": test.ci_method,
                "n": int(values.size),
                "n_pairs": int(n_pairs[key]),
                "note": notes.get(str(probe_set)),
            }
        )
    frame = pd.DataFrame(rows, columns=TABLES["patching_effects"])
    order = {name: i for i, name in enumerate(PATCHING_POSITIONS)}
    frame = frame.sort_values(
        ["probe_set", "layer", "relative_position"],
        key=lambda s: s.map(order) if s.name == "relative_position" else s,
    )
    return frame.reset_index(drop=True).astype(EFFECT_DTYPES)

"""attention (--attention): statistics of each chosen variant's attention, reduced inside each
layer's attention call (audit/attention.py); which variants, each kind says. A text's windows
combine into its row (audit/windows.py)."""

from __future__ import annotations

from functools import partial

import pandas as pd
from rich.console import Console

from audit.attention import attention_rows
from audit.config import AuditConfig
from audit.kinds.registry import kind_of
from audit.stages.progress import Timer, progress
from audit.stages.state import AttentionStats, Encoding, Prepared
from audit.tables import TABLES
from audit.windows import combine_attention


def attend(
    encoding: Encoding, prepared: Prepared, config: AuditConfig, console: Console, timer: Timer
) -> AttentionStats:
    if not config.attention or prepared.attention_unavailable:
        return AttentionStats(pd.DataFrame(columns=TABLES["attention"]))
    target = prepared.target
    frames = []
    with progress(console) as bars, timer.stage("attention"):
        for item in encoding.sets:
            chosen = kind_of(item.probe_set).attention_variants(item)
            windows, owners = item.windows(chosen)
            whole = len(windows) == len(chosen)  # one input per text: its rows are the text's
            ids = [item.example_ids[i] for i in owners] if whole else [str(k) for k in range(len(windows))]
            variants = item.probe_set.variants
            task = bars.add_task(f"attention {item.probe_set.name}", total=len(windows))
            rows = attention_rows(
                model=target.transformer(),
                examples=windows,
                example_ids=ids,
                focus=[[(s.start, s.end) for s in variants[i].focus] for i in owners],
                pad_id=target.tokenizer.pad_token_id,
                device=target.device,
                batch_tokens=config.batch_tokens,
                on_done=partial(bars.advance, task),
            )
            if not whole:
                position = {variant: k for k, variant in enumerate(chosen)}
                rows = combine_attention(
                    rows, windows, [position[i] for i in owners], [item.example_ids[i] for i in chosen]
                )
            frames.append(rows)
    attention = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TABLES["attention"])
    return AttentionStats(attention)

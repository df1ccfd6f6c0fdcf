"""HTML for texts coloured by token attributions. Every piece of run data is escaped here.

The pages pass the returned strings to ``st.html``; nothing else in the dashboard builds HTML from
run data. Probe texts are user input: ``<script>`` in a probe must show as text, never run.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from dashboard.data import parse_focus

POSITIVE_RGB = (214, 39, 40)  # red: the token raises the explained score
NEGATIVE_RGB = (31, 119, 180)  # blue: the token lowers it
MAX_ALPHA = 0.85


@dataclass(frozen=True)
class TokenAttribution:
    """One token's attribution over the characters [start, end) of the text."""

    token: str
    start: int
    end: int
    value: float
    is_focus: bool = False


def tokens_from_frame(rows: pd.DataFrame) -> list[TokenAttribution]:
    """Attribution rows of one example and method (the attributions table) as tokens, in token order."""
    tokens: list[TokenAttribution] = []
    for row in rows.sort_values("token_index").itertuples(index=False):
        value = _number(row.attribution)
        if value is None:
            continue
        start, end = _number(row.char_start), _number(row.char_end)
        tokens.append(
            TokenAttribution(
                token=str(row.token),
                start=-1 if start is None else int(start),
                end=-1 if end is None else int(end),
                value=value,
                is_focus=row.is_focus is True or _number(row.is_focus) == 1.0,
            )
        )
    return tokens


def attribution_scale(token_lists: Sequence[Sequence[TokenAttribution]]) -> float:
    """The largest |attribution| over several examples, so their colours are comparable (1.0 if none)."""
    largest = max((abs(t.value) for tokens in token_lists for t in tokens), default=0.0)
    return largest if largest > 0 else 1.0


def token_color(value: float, scale: float) -> str:
    """CSS background for an attribution: red when positive, blue when negative, alpha by magnitude."""
    alpha = min(abs(value) / scale, 1.0) * MAX_ALPHA if scale > 0 else 0.0
    red, green, blue = POSITIVE_RGB if value >= 0 else NEGATIVE_RGB
    return f"rgba({red}, {green}, {blue}, {alpha:.3f})"


RIGHT_TO_LEFT = frozenset({"ar", "he", "fa", "ur", "ps", "ug", "yi", "dv", "sd", "ckb"})
"""Languages written right to left (primary BCP-47 subtag)."""


def writes_right_to_left(lang: str | None) -> bool:
    return bool(lang) and str(lang).replace("_", "-").split("-")[0].lower() in RIGHT_TO_LEFT


def text_html(
    text: str,
    tokens: Sequence[TokenAttribution] = (),
    focus: Sequence[tuple[int, int]] = (),
    scale: float | None = None,
    lang: str | None = None,
    css_class: str = "probelens-text",
) -> str:
    """The text as HTML: each character escaped, coloured by the token covering it, focus underlined.

    Tokens without characters (special tokens such as [CLS]) are listed after the text. ``lang`` (a
    BCP-47 code) becomes the element's ``lang`` attribute, so the browser picks fonts for the script.
    A language written right to left gets ``dir="rtl"`` (so an Arabic text that starts with a Latin
    word such as "iPhone" still runs right to left); any other text takes its direction from its
    first strong character (``dir="auto"`` with ``unicode-bidi:plaintext``). ``css_class`` names
    the element's class ("probelens-text" for a variant; the pair explanations use their own).
    """
    scale = attribution_scale([tokens]) if scale is None else scale
    owner: list[int | None] = [None] * len(text)
    for index, token in enumerate(tokens):
        for position in range(max(token.start, 0), min(token.end, len(text))):
            owner[position] = index
    in_focus = [False] * len(text)
    for start, end in focus:
        for position in range(max(start, 0), min(end, len(text))):
            in_focus[position] = True
    for token in tokens:
        if token.is_focus:
            for position in range(max(token.start, 0), min(token.end, len(text))):
                in_focus[position] = True

    pieces: list[str] = []
    position = 0
    while position < len(text):
        key = (owner[position], in_focus[position])
        end = position + 1
        while end < len(text) and (owner[end], in_focus[end]) == key:
            end += 1
        pieces.append(
            _segment(text[position:end], tokens[key[0]] if key[0] is not None else None, key[1], scale)
        )
        position = end

    special = [t for t in tokens if t.end <= t.start or t.start < 0 or t.start >= len(text)]
    extra = ""
    if special:
        chips = " ".join(_segment(t.token, t, False, scale, chip=True) for t in special)
        extra = f'<div style="margin-top:0.3em;font-size:0.8em;color:#555">special tokens: {chips}</div>'
    lang_attribute = f' lang="{html.escape(lang, quote=True)}"' if lang else ""
    direction, bidi = ("rtl", "isolate") if writes_right_to_left(lang) else ("auto", "plaintext")
    return (
        f'<div class="{html.escape(css_class, quote=True)}" dir="{direction}"{lang_attribute} style="line-height:2;font-size:1.05em;'
        f'white-space:pre-wrap;unicode-bidi:{bidi}">{"".join(pieces)}</div>{extra}'
    )


def legend_html(*, focus: bool = True) -> str:
    """A one-line key to the colours and marks of :func:`text_html` (``focus``: explain underlining)."""
    positive = token_color(1.0, 1.0)
    negative = token_color(-1.0, 1.0)
    underline = (
        '; <span style="border-bottom:2px solid #111">underlined</span> text is the focus (what differs '
        "between variants)"
        if focus
        else ""
    )
    return (
        '<div style="font-size:0.85em;color:#444">'
        f'<span style="background:{positive};padding:0 4px">red</span> raises the explained score, '
        f'<span style="background:{negative};padding:0 4px">blue</span> lowers it; intensity is the size '
        f"(shared scale across the variants shown){underline}.</div>"
    )


def _segment(
    text: str, token: TokenAttribution | None, focus: bool, scale: float, *, chip: bool = False
) -> str:
    styles: list[str] = []
    title = ""
    if token is not None:
        styles.append(f"background:{token_color(token.value, scale)}")
        title = f' title="{html.escape(f"{token.token}: {token.value:+.4f}", quote=True)}"'
    if focus:
        styles.append("border-bottom:2px solid #111")
    if chip:
        styles.append("padding:0 3px;border-radius:3px")
    if not styles:
        return html.escape(text)
    return f'<span style="{";".join(styles)}"{title}>{html.escape(text)}</span>'


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def tokens_from_pair_rows(rows: pd.DataFrame) -> list[TokenAttribution]:
    """One method's rows of a pair (the pair_attributions table) as tokens over variant a's text:
    one per character span of each unit (the swapped words may have several), in unit order."""
    tokens: list[TokenAttribution] = []
    for row in rows.sort_values("unit_index").itertuples(index=False):
        value = _number(row.attribution)
        if value is None:
            continue
        spans = [(start, end) for start, end in parse_focus(row.spans) if end > start]
        focus = row.is_focus is True or _number(row.is_focus) == 1.0
        if not spans:  # a special token: listed after the text
            tokens.append(TokenAttribution(str(row.text), -1, -1, value, focus))
        for start, end in spans:
            tokens.append(TokenAttribution(str(row.text), start, end, value, focus))
    return tokens

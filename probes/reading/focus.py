"""Focus spans: the characters of a variant that differ from its other variants (the swapped
words), found by one diff with two ways of cutting what differs (``by``):

- ``"edges"``: the common beginning and the common end of the two texts are removed, and what
  lies between, widened to whole words, is the one region that differs ("A person works" vs "A
  person without a disability works" gives "works" and "without a disability works"). Rows in the
  pairs and variants layouts and translation sources swap one group phrase, so their focus is one
  span holding every change.
- ``"words"``: words and punctuation marks are compared as units and aligned (``difflib``), and
  each run of words the alignment marks changed is a region of its own ("She stayed home ... as
  mothers" vs "He stayed home ... as fathers" gives "She" and "mothers"), as the CrowS-Pairs metric
  diffs tokens. The public benchmarks' focus.

The two cut the same texts differently (an inserted phrase next to a word that starts with the
same letters, several separate changes), and each format keeps the one its results were made with.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Literal

from probes.schema import Span

Region = tuple[int, int]
"""Character offsets [start, end) of a text."""
DiffBy = Literal["edges", "words"]

_WORD = re.compile(r"\w+|[^\w\s]")


def differing_regions(a: str, b: str, *, by: DiffBy) -> tuple[list[Region], list[Region]]:
    """The regions of ``a`` and of ``b`` that differ from the other text, cut ``by`` edges (one
    region on each side, possibly empty) or words (each changed run of words; none when equal)."""
    if by == "edges":
        region_a, region_b = _between_common_edges(a, b)
        return [region_a], [region_b]
    words_a = [(m.start(), m.end()) for m in _WORD.finditer(a)]
    words_b = [(m.start(), m.end()) for m in _WORD.finditer(b)]
    matcher = difflib.SequenceMatcher(
        None, [a[s:e] for s, e in words_a], [b[s:e] for s, e in words_b], autojunk=False
    )
    regions_a: list[Region] = []
    regions_b: list[Region] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if i2 > i1:
            regions_a.append((words_a[i1][0], words_a[i2 - 1][1]))
        if j2 > j1:
            regions_b.append((words_b[j1][0], words_b[j2 - 1][1]))
    return regions_a, regions_b


def focus_spans(
    text: str, others: Iterable[str], *, by: DiffBy, also: Iterable[Region] = ()
) -> tuple[Span, ...]:
    """The focus of ``text`` against ``others``: by edges, one span from the first to the last
    character that differs from any of them; by words, every changed run of words (and the regions
    ``also`` gives), overlapping or touching ones merged."""
    if by == "edges":
        regions = [differing_regions(text, other, by="edges")[0][0] for other in others if other != text]
        if not regions:
            return ()
        start, end = min(r[0] for r in regions), max(r[1] for r in regions)
        return (Span(start=start, end=end),) if end > start else ()
    changed = [region for other in others for region in differing_regions(text, other, by="words")[0]]
    return _merged([*changed, *also])


def _merged(regions: Iterable[Region]) -> tuple[Span, ...]:
    """Regions sorted, overlapping or touching ones merged, empty ones dropped."""
    merged: list[list[int]] = []
    for start, end in sorted(r for r in regions if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple(Span(start=s, end=e) for s, e in merged)


def _between_common_edges(a: str, b: str) -> tuple[Region, Region]:
    """The character region where ``a`` and ``b`` differ (common prefix/suffix removed), widened to
    whole words when the change touches a word: "He is" vs "She is" gives "He" and "She"."""
    prefix = 0
    limit = min(len(a), len(b))
    while prefix < limit and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1

    def char(text: str, index: int) -> str:
        return text[index] if 0 <= index < len(text) else ""

    if char(a, prefix - 1).isalnum() and (char(a, prefix).isalnum() or char(b, prefix).isalnum()):
        while prefix > 0 and a[prefix - 1].isalnum():
            prefix -= 1
    end_a, end_b = len(a) - suffix, len(b) - suffix

    def before_suffix(text: str, end: int) -> str:
        return char(text, end - 1) if end > prefix else char(text, prefix - 1)

    if char(a, end_a).isalnum() and (before_suffix(a, end_a).isalnum() or before_suffix(b, end_b).isalnum()):
        while end_a < len(a) and a[end_a].isalnum():
            end_a += 1
            end_b += 1
    return _stripped(a, prefix, end_a), _stripped(b, prefix, end_b)


def _stripped(text: str, start: int, end: int) -> Region:
    """The region without surrounding whitespace ("male " -> "male")."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end

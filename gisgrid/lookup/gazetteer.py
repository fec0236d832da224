"""An address gazetteer of buildings: find the building people mean by what they write.

Addresses are normalised before they are compared, so that the ways people
write one address meet:

- full-width characters become half-width (``１２号`` → ``12号``, NFKC);
- Chinese numerals become digits (``十二号`` → ``12号``, ``三栋`` → ``3栋``);
- the province, city and district, and the street (街道) and community (社区)
  names, are dropped where given (people leave them out);
- ``幢``, ``号楼``, ``座`` become ``栋``; unit, floor and room (``2单元301室``) are
  dropped: the gazetteer knows buildings;
- spaces and punctuation go.

Then an exact match is tried, and else fuzzy matching returns candidates with
scores (0–100): RapidFuzz's normalised Indel similarity of the whole address,
and, when nothing comes close, of its best-matching part (× 0.95), for people
who write only "中央府5栋".

Examples
--------
>>> normalise("株洲市石峰区田心街道人民北路１６１６号中央府五号楼二单元")
'人民北路1616号中央府5栋'
>>> chinese_number("二十三"), chinese_number("一百零五"), chinese_number("十")
(23, 105, 10)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from rapidfuzz import fuzz, process

__all__ = ["Gazetteer", "Match", "chinese_number", "normalise"]

_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMERAL = re.compile(r"[零〇一二两三四五六七八九十百千]+(?=[号栋幢座单元层室楼组])")
_ADMIN = re.compile(r"^(中国)?(湖南省?)?(株洲市?)?(石峰区)?")
_BUILDING = re.compile(r"(号楼|幢|座|栋楼)")
_UNIT = re.compile(r"(\d+单元.*|\d+层.*|\d+室|\d+户)$")
_PUNCT = re.compile(r"[\s,，.。、·\-—_/()（）#]+")


def chinese_number(text: str) -> int:
    """The value of a Chinese numeral (up to the thousands); digits written one by one
    (``一六一六``) are read as such."""
    if all(ch in _DIGITS for ch in text) and len(text) > 1:
        return int("".join(str(_DIGITS[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _DIGITS:
            current = _DIGITS[ch]
        else:
            total += (current or 1) * _UNITS[ch]
            current = 0
    return total + current


def normalise(address: str, *, drop: Iterable[str] = ()) -> str:
    """The comparable form of an address (see the module docstring).

    Parameters
    ----------
    address
        As written.
    drop
        Further names to drop where they start the address (streets, communities).
    """
    text = unicodedata.normalize("NFKC", str(address)).strip()
    text = _PUNCT.sub("", text)
    text = _ADMIN.sub("", text)
    for name in drop:
        if name and text.startswith(name):
            text = text[len(name) :]
    text = re.sub(r"^[^路街巷道村]{2,6}?街道", "", text)
    text = re.sub(r"^[^路街巷道村]{2,6}?社区(居委会)?", "", text)
    text = _NUMERAL.sub(lambda m: str(chinese_number(m.group(0))), text)
    text = _BUILDING.sub("栋", text)
    text = re.sub(r"(\d+)号(?=栋)", r"\1", text)
    text = _UNIT.sub("", text)
    return text


@dataclass(frozen=True)
class Match:
    """A candidate building for an address."""

    building_id: str
    address: str
    score: float


class Gazetteer:
    """Address search over buildings.

    Parameters
    ----------
    buildings
        ``building_id`` and ``address``.
    drop
        Street and community names people may put in front of an address.
    """

    def __init__(self, buildings: pd.DataFrame, *, drop: Iterable[str] = ()) -> None:
        rows = buildings[buildings["address"].fillna("").astype(str) != ""]
        self.drop = sorted({d for d in drop if d}, key=len, reverse=True)
        self.ids = rows["building_id"].astype(str).to_list()
        self.addresses = rows["address"].astype(str).to_list()
        self.keys = [normalise(a, drop=self.drop) for a in self.addresses]
        self.exact: dict[str, int] = {}
        for i, key in enumerate(self.keys):
            self.exact.setdefault(key, i)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, address: str, *, limit: int = 5, min_score: float = 75.0) -> list[Match]:
        """Candidate buildings for an address, best first (empty when none scores enough)."""
        key = normalise(address, drop=self.drop)
        if not key:
            return []
        if (i := self.exact.get(key)) is not None:
            return [Match(self.ids[i], self.addresses[i], 100.0)]
        scores: dict[int, float] = {}
        for _, score, i in process.extract(key, self.keys, scorer=fuzz.ratio, limit=limit):
            scores[i] = score
        if not scores or max(scores.values()) < 85:  # a part of an address: "中央府5栋"
            for _, score, i in process.extract(
                key, self.keys, scorer=fuzz.partial_ratio, limit=limit
            ):
                scores[i] = max(scores.get(i, 0.0), 0.95 * score)
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [
            Match(self.ids[i], self.addresses[i], round(score, 1))
            for i, score in best
            if score >= min_score
        ]

    def suggest(self, address: str, *, limit: int = 5) -> list[Match]:
        """Closest addresses whatever their score (for a "did you mean")."""
        return self.search(address, limit=limit, min_score=0.0)

"""Every test vector of anchors.md section 3 is claimed by a preset and named, by id, in its
preset's parametrised test; the preset registry refuses unknown names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from liqeng.errors import InvalidArgument
from liqeng.presets import PRESETS, preset

ANCHORS = Path(__file__).parents[1].parent / "shared" / "reference" / "anchors.md"
TESTS = Path(__file__).parent


def _section3_ids() -> set[str]:
    text = ANCHORS.read_text()
    section = text[text.index("## 3. Test vectors") : text.index("## 4.")]
    return set(re.findall(r"^\| ([A-Z][A-Z0-9]*-[A-Za-z0-9]+) ", section, re.M))


@pytest.mark.skipif(not ANCHORS.is_file(), reason="../shared/reference is not here")
def test_every_anchor_vector_is_reproduced_by_a_preset_test_naming_it() -> None:
    ids = _section3_ids()
    assert len(ids) >= 40  # the table parsed
    claimed = {v for p in PRESETS.values() for v in p.reproduces}
    assert ids <= claimed, sorted(ids - claimed)
    tests = " ".join(p.read_text() for p in TESTS.glob("test_preset_*.py"))
    missing = sorted(i for i in ids if f'"{i}"' not in tests)
    assert not missing, missing


def test_unknown_preset_is_refused_naming_the_known() -> None:
    with pytest.raises(InvalidArgument, match=r"preset='maker-v1' is unknown; known: \['aave'"):
        preset("maker-v1")
    assert preset("maker").protocol == "Maker Liquidations 2.0"

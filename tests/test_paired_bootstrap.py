"""benchmarks/self_critical.py's paired bootstrap: how sure a gain over the same test items is."""

from __future__ import annotations

import pytest

from benchmarks.self_critical import paired_gain


def test_the_same_gain_on_every_item_is_certain():
    old = {f"img{n}": 0.1 * (n + 1) for n in range(20)}
    gain, low, high, above = paired_gain({item: 1.2 * score for item, score in old.items()}, old)
    assert (gain, low, high, above) == pytest.approx((0.2, 0.2, 0.2, 1.0))


def test_a_gain_from_one_item_is_above_zero_when_a_resample_holds_it():
    old = {f"img{n}": 1.0 for n in range(10)}
    new = {**old, "img9": 3.0}  # mean 1.2: the gain is +20%, all of it from img9
    gain, low, high, above = paired_gain(new, old)
    assert gain == pytest.approx(0.2) and low == pytest.approx(0.0)
    assert above == pytest.approx(1 - 0.9**10, abs=0.02)  # P(img9 drawn at least once)
    assert high > gain


def test_runs_that_scored_different_items_are_refused():
    with pytest.raises(ValueError, match="different items"):
        paired_gain({"a": 1.0, "b": 2.0}, {"a": 1.0, "c": 2.0})

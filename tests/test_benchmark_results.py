"""benchmarks/RESULTS.md keeps an index of each benchmark's newest section."""

from __future__ import annotations

from benchmarks.results import INTRO, append_section


def test_index_links_each_benchmark_to_its_newest_section(tmp_path):
    results = tmp_path / "RESULTS.md"
    append_section("Beam search (CPU)", [{"beam": 5, "bleu": 41.4}], results=results)
    append_section("Sweep overhead", [{"trials": 4}], results=results)
    append_section("Beam search (CPU)", [{"beam": 5, "bleu": 41.9}], results=results)
    text = results.read_text()
    assert text.startswith(INTRO)
    index = text.split("<!-- index -->")[1].split("<!-- /index -->")[0]
    links = [line.split("](")[1].split(")")[0] for line in index.splitlines() if "](" in line]
    assert links == ["#sweep-overhead", "#beam-search-cpu-1"]  # GitHub's anchor of the 2nd
    assert text.count("<!-- index -->") == 1 and text.count("| 41.9 |") == 1
    assert text.index("<!-- /index -->") < text.index("## Beam search (CPU)")

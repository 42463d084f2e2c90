"""What a user opens in MLflow after a test: the translations and captions pages (every beam
size's output, the references, a score per row, data escaped, images inline), the metrics
by beam size, and attention heatmaps with a colour bar and the tokens on both axes."""

from __future__ import annotations

import base64
import csv
import io
import re

import sacrebleu
import torch
from PIL import Image

from orchestrator.lightning_modules.attention_pictures import attention_heatmap, sentence_title
from orchestrator.lightning_modules.beam_comparison import BEAM_CHART, BEAM_TABLE, beam_artifacts
from orchestrator.lightning_modules.caption_artifacts import thumbnail_jpeg
from orchestrator.lightning_modules.captioning import captions_page
from orchestrator.lightning_modules.html_pages import PAGE_ROWS
from orchestrator.lightning_modules.translation import translation_rows, translations_page

HYPOTHESIS = "the cat sat on a mat"
REFERENCE = "the cat sat on the mat"


def decoded(count: int = 3) -> dict[int, list[tuple[str, str, str]]]:
    """Two beam sizes' outputs of `count` sentences; sentence 1's source holds a script."""
    sources = [f"source {n}" for n in range(count)]
    sources[1] = "<script>alert('x')</script> & more"
    return {
        1: [(s, f"greedy {n}", f"reference {n}") for n, s in enumerate(sources)],
        4: [(s, f"beam four {n}", f"reference {n}") for n, s in enumerate(sources)],
    }


def test_the_translations_page_shows_every_beam_and_the_reference_of_each_row():
    page = translations_page(decoded(), {1: {"bleu": 10.0}, 4: {"bleu": 12.5}}, "nrefs:1|x")
    assert "<th>beam 1</th>" in page and "<th>beam 4</th>" in page
    for n in range(3):
        assert f"greedy {n}" in page and f"beam four {n}" in page
        assert f"<li>reference {n}</li>" in page
    assert "all 3 test items" in page and "nrefs:1|x" in page


def test_the_page_escapes_what_the_data_holds():
    page = translations_page(decoded(), {1: {"bleu": 1.0}, 4: {"bleu": 1.0}}, "")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page


def test_a_row_score_is_sacrebleus_sentence_bleu():
    rows = translation_rows({3: [("a source", HYPOTHESIS, REFERENCE)]})
    expected = sacrebleu.sentence_bleu(HYPOTHESIS, [REFERENCE]).score
    assert 0 < expected < 100
    assert rows[0].scores == {3: expected}
    page = translations_page({3: [("a source", HYPOTHESIS, REFERENCE)]}, {3: {"bleu": 1.0}}, "")
    assert f">{expected:.3g}</span>" in page


def test_a_long_test_set_is_cut_at_the_stated_cap():
    many = {1: [(f"s{n}", f"h{n}", f"r{n}") for n in range(PAGE_ROWS + 20)]}
    page = translations_page(many, {1: {"bleu": 1.0}}, "")
    assert f"the first {PAGE_ROWS} of {PAGE_ROWS + 20} test items" in page
    assert page.count('<tr><td class="n">') == PAGE_ROWS


def test_the_captions_page_embeds_each_picture_and_scores_each_caption():
    image = torch.randn(3, 48, 64)
    clip = torch.randn(6, 3, 32, 32)
    outputs = {1: [("img<1>", "a red circle", ["a red circle", "red round"]),
                   ("clip2", "a square", ["a blue square"])],
               3: [("img<1>", "a red circle left", ["a red circle", "red round"]),
                   ("clip2", "a blue square", ["a blue square"])]}
    page = captions_page(outputs, {1: {"cider_d": 0.5}, 3: {"cider_d": 0.7}},
                         {1: {"img<1>": 1.25, "clip2": 0.0}, 3: {"img<1>": 2.5, "clip2": 3.0}},
                         {"img<1>": thumbnail_jpeg(image), "clip2": thumbnail_jpeg(clip)},
                         {"kind": "video", "frames": 6})
    pictures = re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pictures) == 2
    sizes = [Image.open(io.BytesIO(base64.b64decode(data))).size for data in pictures]
    assert sizes == [(64, 48), (4 * 32, 32)]  # the image; the clip as a strip of 4 frames
    assert "img&lt;1&gt;" in page and "img<1>" not in page
    assert "a red circle left" in page and "<li>red round</li>" in page
    assert ">2.5</span>" in page and ">1.25</span>" in page


def test_the_beam_table_has_a_row_per_beam_size_and_the_chart_one_panel_per_metric():
    by_beam = {1: {"bleu_4": 0.25, "cider_d": 1.5}, 5: {"bleu_4": 0.3, "cider_d": 1.75},
               3: {"bleu_4": 0.28, "cider_d": 1.6}}
    artifacts = beam_artifacts(by_beam, "test scores")
    rows = list(csv.DictReader(io.StringIO(artifacts[BEAM_TABLE])))
    assert [(int(r["beam_size"]), float(r["bleu_4"]), float(r["cider_d"])) for r in rows] == [
        (1, 0.25, 1.5), (3, 0.28, 1.6), (5, 0.3, 1.75)]
    panels = artifacts[BEAM_CHART].axes
    assert [axes.get_title() for axes in panels] == ["bleu 4", "cider d"]
    assert list(panels[1].lines[0].get_xdata()) == [1, 3, 5]
    assert list(panels[1].lines[0].get_ydata()) == [1.5, 1.6, 1.75]


def test_the_heatmap_has_a_colour_bar_the_tokens_on_both_axes_and_the_sentence_as_title():
    source, output = ["the", "black", "cat", "slept"], ["le", "chat", "noir", "dormait", "<eos>"]
    weights = torch.softmax(torch.randn(len(output), len(source)), dim=1)
    title = sentence_title("the black cat slept", "le chat noir dormait", "(beam 5)")
    figure = attention_heatmap(weights, source, output, title)
    heatmap, colour_bar = figure.axes
    assert [label.get_text() for label in heatmap.get_xticklabels()] == source
    assert [label.get_text() for label in heatmap.get_yticklabels()] == output
    assert colour_bar.get_ylabel() == "attention weight"
    assert heatmap.get_title(loc="left") == ("the black cat slept\n→ le chat noir dormait\n"
                                             "(beam 5)")
    assert heatmap.images[0].get_cmap().name == "viridis"
    width, height = figure.get_size_inches()
    assert width >= 6 and height >= 4.5

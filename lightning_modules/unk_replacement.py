"""OpenNMT's `replace_unk`: each `<unk>` a word-vocabulary translator writes becomes the
source token it attended to most when it wrote it.

A word vocabulary has no entry for a rare name, number or compound; the decoder can still
point at it through attention, and for names and numbers the source word is the right
output (Luong et al. 2015, "Addressing the Rare Word Problem"). The copied token is a
source-side Moses token, so the target detokeniser joins it like any other word.
"""

from __future__ import annotations

import torch

from orchestrator.datasets.tokenizer import UNK


def replace_unknown(
    tokens: list[str], attention: torch.Tensor | None, source_tokens: list[str]
) -> list[str]:
    """`tokens` with each UNK replaced by the most-attended of `source_tokens`; attention
    (len(tokens) + 1, S) holds, in row i, the weights the decoder used to write token i.
    Without attention or source tokens nothing can be copied and the tokens stay."""
    if attention is None or not source_tokens:
        return tokens
    width = min(attention.size(1), len(source_tokens))
    return [source_tokens[int(attention[i, :width].argmax())] if token == UNK else token
            for i, token in enumerate(tokens)]

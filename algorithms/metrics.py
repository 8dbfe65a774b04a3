"""Neutral quality measures, the same for every algorithm (used by benchmarks and results tables).

Both are computed with the caffe VGG-19 in fp32, whatever the algorithm used:

* content distance = ||F(out) - F(content)||^2 / ||F(content)||^2 at relu4_2
  (the content image resized to the output's size);
* style distance = mean over relu1_1..relu5_1 of ||G(out) - G(style)|| / ||G(style)||
  (Frobenius norms, Gram matrices divided by H*W, the style image at most 512 px on its long side).

Lower is better for both; they pull against each other, so compare them as a pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .losses import gram_matrix, relative_squared_error
from .optimize import STYLE_LAYERS_GATYS, resize, resize_long_side
from .vgg import get_encoder

CONTENT_LAYER = "relu4_2"
STYLE_MAX_SIDE = 512


@dataclass(frozen=True)
class Distances:
    content: float
    style: float


@torch.no_grad()
def distances(
    output: torch.Tensor, content: torch.Tensor, style: torch.Tensor, *, device: str | torch.device = "cpu"
) -> Distances:
    layers = (CONTENT_LAYER, *STYLE_LAYERS_GATYS)
    enc = get_encoder(layers, source="caffe", device=device)
    output = output.to(device).float()
    content = resize(content.to(device).float(), tuple(output.shape[-2:]))  # type: ignore[arg-type]
    style = style.to(device).float()
    if max(style.shape[-2:]) > STYLE_MAX_SIDE:
        style = resize_long_side(style, STYLE_MAX_SIDE)
    fo, fc, fs = enc(output, layers), enc(content, (CONTENT_LAYER,)), enc(style, STYLE_LAYERS_GATYS)
    content_d = relative_squared_error(fo[CONTENT_LAYER], fc[CONTENT_LAYER])
    style_d = [
        relative_squared_error(gram_matrix(fo[n]), gram_matrix(fs[n])).sqrt() for n in STYLE_LAYERS_GATYS
    ]
    return Distances(content=float(content_d), style=float(torch.stack(style_d).mean()))

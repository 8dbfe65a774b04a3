"""Training an AdaIN decoder (Huang & Belongie 2017, section 6): the pure parts.

Loss = content loss (the decoded image's relu4_1 against the AdaIN target it was decoded from)
+ ``style_weight`` x the mean / std losses at relu1_1 .. relu4_1 against the style image's. The
terms are relative squared errors like every stylegrid loss (``losses.py``): the paper's MSEs
depend on the scale of its normalised VGG, and these do not, so one ``style_weight`` works with
the caffe encoder. Adam with the original inverse-time decay, lr / (1 + decay x iteration)
(pytorch-AdaIN: lr 1e-4, decay 5e-5). Images: the shorter side resized to 512, random 256 crops.

Data loading, Ray Train, checkpoints and MLflow are in ``orchestrator/train_adain.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .adain import CONTENT_LAYER, STYLE_LAYERS, adain, decoder_layout
from .losses import mean_std, mean_std_loss, relative_squared_error
from .optimize import autocast


@dataclass(frozen=True)
class TrainLosses:
    total: torch.Tensor
    content: torch.Tensor
    style: torch.Tensor
    output: torch.Tensor  # the decoded batch (detached), for sample grids


def training_losses(
    encoder,
    decoder: nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
    style_weight: float,
    precision: str,
) -> TrainLosses:
    """One batch's losses; ``content`` and ``style`` are [B, 3, H, W] RGB in [0, 1]."""
    device = content.device
    with torch.no_grad(), autocast(precision, device):
        fc = encoder(content, [CONTENT_LAYER])[CONTENT_LAYER].float()
        fs = {k: v.float() for k, v in encoder(style, STYLE_LAYERS).items()}
        target = adain(fc, fs[CONTENT_LAYER])
    with autocast(precision, device):
        out = decoder(target)
        fo = encoder(out.float(), STYLE_LAYERS)
    content_loss = relative_squared_error(fo[CONTENT_LAYER], target)
    style_loss = sum(mean_std_loss(fo[n], *mean_std(fs[n])) for n in STYLE_LAYERS) / len(STYLE_LAYERS)
    total = content_loss + style_weight * style_loss
    return TrainLosses(total, content_loss.detach(), style_loss.detach(), out.detach().float())


def learning_rate(step: int, lr: float, decay: float) -> float:
    """Inverse-time decay of pytorch-AdaIN: lr / (1 + decay x step)."""
    return lr / (1.0 + decay * step)


def new_decoder(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return decoder_layout()

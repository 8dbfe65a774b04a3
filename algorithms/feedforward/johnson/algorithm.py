"""Fast style networks: Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer
and Super-Resolution" (ECCV 2016), with the instance normalisation of Ulyanov, Vedaldi & Lempitsky
(2016) and the conditional instance normalisation of Dumoulin, Shlens & Kudlur, "A Learned
Representation for Artistic Style" (ICLR 2017): one network holds N styles, one forward pass
stylizes a photo, and styles blend by interpolating their normalisation parameters.

The network, its training objective and its files are ``network.py``; here are the
algorithm: choosing the styles of a call (recognising the given style images by thumbnail, or
names, indices and blends in ``style``), inference at any size, and the losses of a result. The
Ray Train driver that trains networks is ``orchestrator/train/driver.py`` (``stylegrid train-johnson``),
which also logs each one as an MLflow model; ``models:/<name>/<version>`` is resolved to its files
by the orchestrator.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ...base import Algorithm, Callback, Params, StylizeResult
from ...shared.device import autocast, resolve_precision
from ...shared.losses import gram_matrix, relative_squared_error, total_variation
from ...shared.memory import AUTO, BUDGET_HELP, budget_layout, budget_note, check_budget, return_freed_memory
from ...shared.parameters import param
from ...shared.sizing import MEASURE_SIDE, pad_to_multiple, shrink
from ...shared.vgg import WeightsUnavailable, encode_targets, get_encoder
from ...weights import WEIGHTS_DIR
from .network import NetworkFile, load_network, style_grams, thumbnail

DEFAULT_NETWORK = WEIGHTS_DIR / "johnson_styles.pth"
CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
MULTIPLE = 4  # two stride-2 convolutions: sizes are padded to a multiple of 4
BYTES_PER_PIXEL = 800  # one pass's peak above the loaded network, per pixel (measured: about 720, ``benchmarks/fast_style.py``)
MATCH_TOLERANCE = 0.06  # mean absolute difference (RGB in [0, 1]) of thumbnails of one painting


@dataclass(frozen=True, kw_only=True)
class JohnsonParams(Params):
    """A trained fast style network: one forward pass (``johnson``)."""

    model: str = param(
        "default",
        "the network: default (shipped, 4 paintings), a .pth file with its .json, or an MLflow "
        "model URI (models:/<name>/<version>)",
        file=True,
    )
    style: str = param(
        "auto",
        "auto = the network's style that the given style image is; or a style name or index, or "
        "a blend 'name:weight,name:weight' (the given style images are then not used)",
    )
    precision: Literal["auto", "fp32", "bf16"] = param(
        "auto", "network precision; auto = bf16 where the hardware computes it natively"
    )
    memory_budget: str = param(AUTO, BUDGET_HELP)

    def __post_init__(self) -> None:
        check_budget(self.memory_budget)


def network_path(model: str) -> str:
    if model == "default":
        if not DEFAULT_NETWORK.is_file():
            raise WeightsUnavailable(
                f"{DEFAULT_NETWORK}: the shipped network is missing; train one with stylegrid train-johnson"
            )
        return str(DEFAULT_NETWORK)
    if model.startswith("models:/"):
        raise WeightsUnavailable(
            f"{model}: an MLflow model URI is resolved by the orchestrator (stylegrid run, sweeps, "
            "stylize-catalog); from Python call orchestrator.tracking.model_uris.localize_params first"
        )
    return str(Path(model).expanduser())


# --- choosing the styles ------------------------------------------------------------------------------------


def parse_style(text: str, names: Sequence[str]) -> list[float]:
    """Weights over the network's styles from ``style``: a name or index, or 'a:0.3,b:0.7'."""
    weights = [0.0] * len(names)
    for part in text.split(","):
        key, _, value = part.strip().partition(":")
        key = key.strip()
        if key in names:
            i = names.index(key)
        elif key.isdigit() and int(key) < len(names):
            i = int(key)
        else:
            raise ValueError(f"style {key!r} is not in this network; its styles: {', '.join(names)}")
        try:
            weights[i] += float(value) if value else 1.0
        except ValueError:
            raise ValueError(f"style {part.strip()!r}: the weight after ':' must be a number") from None
    return normalised(weights)


def normalised(weights: Sequence[float]) -> list[float]:
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"style weights must be non-negative with a positive sum, got {list(weights)}")
    return [w / total for w in weights]


def recognise(style: torch.Tensor, record: NetworkFile) -> int:
    """The index of the network's style that ``style`` [1, 3, H, W] is (by thumbnail)."""
    diff = (record.thumbs - thumbnail(style.cpu())[None]).abs().mean(dim=(1, 2, 3))
    best = int(diff.argmin())
    if float(diff[best]) > MATCH_TOLERANCE:
        raise ValueError(
            f"the style image ({style.shape[-1]}x{style.shape[-2]}) is none of the styles of "
            f"{record.path} ({', '.join(record.styles)}); pass style=<name> or train a network on it "
            "(stylegrid train-johnson)"
        )
    return best


def style_mix(params: JohnsonParams, styles: Sequence[torch.Tensor], style_weights, record: NetworkFile):
    """Weights [N] over the network's styles for a call."""
    if params.style != "auto":
        return parse_style(params.style, record.styles)
    if not styles:
        raise ValueError("at least one style image is needed (or pass style=<name>)")
    given = list(style_weights) if style_weights is not None else [1.0] * len(styles)
    if len(given) != len(styles):
        raise ValueError(f"{len(styles)} style images but {len(given)} style weights")
    weights = [0.0] * len(record.styles)
    for image, w in zip(styles, given, strict=True):
        weights[recognise(image, record)] += float(w)
    return normalised(weights)


# --- inference ----------------------------------------------------------------------------------------------


def stylize_batch(
    contents: torch.Tensor,
    styles: Sequence[torch.Tensor],
    params: JohnsonParams | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    cache: MutableMapping | None = None,
) -> torch.Tensor:
    """Same-size contents [B, 3, H, W] in [0, 1] through the network in one pass, or in tiles
    when one pass would exceed ``params.memory_budget``."""
    return _run(contents, styles, params or JohnsonParams(), style_weights, torch.device(device))[0]


def _run(contents, styles, params: JohnsonParams, style_weights, device: torch.device):
    """(images on the CPU, the tile layout or "")."""
    from .tiles import HALO, OVERLAP, stylize_tiled

    net, record = load_network(network_path(params.model), str(device))
    mix = torch.tensor(style_mix(params, styles, style_weights, record), device=device)
    precision = resolve_precision(params.precision, device)
    contents = contents.to(device).float()
    h, w = contents.shape[-2:]
    core, budget, _ = budget_layout(
        contents.shape, BYTES_PER_PIXEL, HALO, OVERLAP, params.memory_budget, device
    )
    if core is not None:
        return_freed_memory()
        image, layout = stylize_tiled(net, contents, mix, core=core, precision=precision)
        return image, budget_note(layout.describe(), budget)
    with torch.no_grad(), autocast(precision, device):
        out = net(pad_to_multiple(contents, MULTIPLE), mix.expand(contents.shape[0], -1))
    return out.float()[..., :h, :w].clamp(0, 1).cpu().contiguous(), ""


def tile_layout(params: JohnsonParams, shape, device) -> str:
    """The tile layout ``stylize_batch`` uses for a batch of ``shape``; "" for one pass."""
    from .tiles import HALO, OVERLAP

    return budget_layout(shape, BYTES_PER_PIXEL, HALO, OVERLAP, params.memory_budget, device)[2]


def stylize(
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    params: JohnsonParams | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    init_image: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    callback: Callback | None = None,
    cache: MutableMapping | None = None,
) -> StylizeResult:
    """The ``stylize`` interface: one pass of the network. The losses reported are the training
    objective's terms, unweighted, against the content and the given style images (their Grams
    blended by ``style_weights``)."""
    params = params or JohnsonParams()
    start = time.perf_counter()
    device = torch.device(device)
    image, tiles = _run(content, styles, params, style_weights, device)
    precision = resolve_precision(params.precision, device)
    # a tiled result's losses on copies at MEASURE_SIDE px: the encoder at full size is what tiling avoids
    measured, photo = (
        (image, content) if not tiles else (shrink(image, MEASURE_SIDE), shrink(content, MEASURE_SIDE))
    )
    losses = report_losses(measured.to(device), photo.to(device).float(), styles, style_weights, precision)
    return StylizeResult.one_pass(image, losses, start, precision, device, tiles)


def report_losses(image, content, styles, style_weights, precision: str) -> dict[str, float]:
    encoder = get_encoder(STYLE_LAYERS, device=image.device)
    layers = sorted({CONTENT_LAYER, *STYLE_LAYERS})
    feats = encode_targets(encoder, image, layers, precision)
    target = encode_targets(encoder, content, [CONTENT_LAYER], precision)[CONTENT_LAYER]
    losses = {f"content.{CONTENT_LAYER}": float(relative_squared_error(feats[CONTENT_LAYER], target))}
    if styles:
        mix = normalised(list(style_weights) if style_weights is not None else [1.0] * len(styles))
        grams = style_grams(encoder, [s.to(image.device) for s in styles], STYLE_LAYERS, precision)
        for n in STYLE_LAYERS:
            blended = sum(g * w for g, w in zip(grams[n], mix, strict=True))
            err = relative_squared_error(gram_matrix(feats[n])[0], blended)
            losses[f"style.gram.{n}"] = float(err) / len(STYLE_LAYERS)
    losses["tv"] = float(total_variation(image))
    losses["total"] = sum(losses.values())
    return losses


CITATION = (
    "Johnson, Alahi & Fei-Fei, Perceptual Losses for Real-Time Style Transfer, ECCV 2016; "
    "Dumoulin, Shlens & Kudlur, A Learned Representation for Artistic Style, ICLR 2017"
)
ALGORITHM = Algorithm(
    name="johnson",
    params_type=JohnsonParams,
    stylize=stylize,
    summary="a trained fast style network (conditional instance norm, N styles): one forward pass",
    citation=CITATION,
    kind="feedforward",
    stylize_batch=stylize_batch,
    tile_layout=tile_layout,
)

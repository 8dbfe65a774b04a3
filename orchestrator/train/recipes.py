"""What differs between the networks ``train/driver.py`` trains: one ``Recipe`` per model, the rest of
the driver (Ray Train, data, checkpoints, MLflow, export) shared.

* ``ADAIN`` (``stylegrid train-adain``): the AdaIN decoder of Huang & Belongie; each step draws
  content and style crops and decodes the content re-normalised to the style's statistics.
* ``JOHNSON`` (``stylegrid train-johnson``): one fast style network for all the style images
  (Johnson et al. with conditional instance norm); each step draws content crops and assigns
  each a random style, whose Gram targets were computed once from the whole style image.
* ``WCT`` (``stylegrid train-wct``): the reconstruction decoders of Li et al.'s WCT, one per
  level, trained together; each step reconstructs content and style crops alike (the decoders
  will invert features coloured like paintings', so paintings are part of their data).
* ``STYLE_SWAP`` (``stylegrid train-style-swap``): Chen & Schmidt's inverse network; each step
  inverts the photo crops' relu3_1 features and the same features swapped with painting crops'.

A recipe's pure parts are in ``algorithms/`` (``adain.training_losses``,
``johnson.network.perceptual_losses``, ``wct.decoders.reconstruction_losses``,
``style_swap.inverse.inverse_losses``); here are the choices of data, model and record.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..images import decode_image, to_tensor
from ..specs.loading import SpecError
from ..specs.train import AdaINTrainSpec, JohnsonTrainSpec, StyleSwapTrainSpec, TrainSpec, WCTTrainSpec
from ..storage import locations as storage
from ..storage.location import Location


@dataclass(frozen=True)
class StepResult:
    total: torch.Tensor  # what is back-propagated
    terms: dict[str, float]  # the unweighted parts, logged as <name>_loss
    grid: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # content | style | output, for samples


class Recipe:
    kind: str
    spec_type: type[TrainSpec]
    model_file: str  # the checkpoint's and the export's file name
    style_crops: bool  # whether each step draws style crops (else the styles go whole to setup)

    @property
    def command(self) -> str:
        return f"train-{self.kind}"

    def styles(self, spec: TrainSpec, locations: Sequence[str], where: str) -> Any:
        """Driver side: what the workers and the record need of the style images."""
        return None

    def setup(self, spec: TrainSpec, styles: Any, device: torch.device, precision: str) -> Any:
        """Worker side, once: the encoder and any fixed targets."""
        raise NotImplementedError

    def architecture(self, spec: TrainSpec, styles: Any) -> nn.Module:
        """The untrained model (what a state dict of this recipe loads into)."""
        raise NotImplementedError

    def new_model(self, spec: TrainSpec, styles: Any) -> nn.Module:
        """The model training starts from: seeded, or the spec's starting file."""
        raise NotImplementedError

    def step(self, task: Any, model: nn.Module, content: torch.Tensor, style: torch.Tensor | None,
             rng: random.Random, spec: TrainSpec, precision: str) -> StepResult:  # fmt: skip
        raise NotImplementedError

    def record(self, spec: TrainSpec, styles: Any) -> dict:
        """Fields of the exported ``.json`` that the algorithm reads back."""
        return {}


class AdaINRecipe(Recipe):
    kind, spec_type, model_file, style_crops = "adain", AdaINTrainSpec, "decoder.pth", True

    def setup(self, spec, styles, device, precision):
        from stylegrid.algorithms.shared.instance_norm import STYLE_LAYERS
        from stylegrid.algorithms.shared.vgg import get_encoder

        return get_encoder(STYLE_LAYERS, source=spec.encoder, device=device)

    def architecture(self, spec, styles):
        from stylegrid.algorithms.feedforward.adain.network import decoder_layout

        return decoder_layout()

    def new_model(self, spec, styles):
        from stylegrid.algorithms.feedforward.adain.network import get_decoder

        torch.manual_seed(spec.seed)
        decoder = self.architecture(spec, styles)
        if spec.init_decoder:
            decoder.load_state_dict(get_decoder(spec.init_decoder, "cpu").state_dict())
        return decoder

    def step(self, task, model, content, style, rng, spec, precision):
        from stylegrid.algorithms.feedforward.adain.network import training_losses

        losses = training_losses(task, model, content, style, spec.style_weight, precision)
        terms = {"content": float(losses.content), "style": float(losses.style)}
        return StepResult(losses.total, terms, (content, style, losses.output))

    def record(self, spec, styles):
        return {"encoder": spec.encoder}


@dataclass(frozen=True)
class StyleImage:
    name: str  # unique: the file's stem
    source: str  # its URI, or a local file's name (the record does not keep this machine's paths)
    data: bytes


@dataclass
class JohnsonTask:
    encoder: Any
    grams: dict[str, torch.Tensor]  # {layer: [N, C, C]}
    previews: torch.Tensor  # [N, 3, crop, crop]: each style for the sample grids


class JohnsonRecipe(Recipe):
    kind, spec_type, model_file, style_crops = "johnson", JohnsonTrainSpec, "network.pth", False

    def styles(self, spec, locations, where):
        if len(locations) > spec.max_styles:
            raise SpecError(
                f"{where}: style lists {len(locations)} images, more than max_styles={spec.max_styles}"
            )
        found: dict[str, StyleImage] = {}
        for loc in locations:
            name = Path(loc.rstrip("/").rsplit("/", 1)[-1]).stem
            if name in found:
                raise SpecError(
                    f"{where}: two style images are named {name!r} ({found[name].source}, {loc}); "
                    "a network's styles are called by their file names, so they must differ"
                )
            data = storage.read_bytes(loc)
            decode_image(data, loc, 32)  # a bad style image fails here, named, before any worker starts
            found[name] = StyleImage(name, Location.of(loc).recorded, data)
        return list(found.values())

    def _images(self, spec, styles: list[StyleImage]) -> list[torch.Tensor]:
        return [to_tensor(decode_image(s.data, s.source, spec.style_size)) for s in styles]

    def setup(self, spec, styles, device, precision):
        from stylegrid.algorithms.feedforward.johnson.network import style_grams
        from stylegrid.algorithms.shared.vgg import get_encoder

        layers = sorted({spec.content_layer, *spec.style_layers})
        encoder = get_encoder(layers, device=device)
        images = [t.to(device) for t in self._images(spec, styles)]
        grams = style_grams(encoder, images, spec.style_layers, precision)
        previews = torch.cat([_square(t, spec.crop) for t in images]).cpu()
        return JohnsonTask(encoder, grams, previews)

    def architecture(self, spec, styles):
        from stylegrid.algorithms.feedforward.johnson.network import TransformNet

        return TransformNet(len(styles), spec.width, spec.blocks)

    def new_model(self, spec, styles):
        from stylegrid.algorithms.feedforward.johnson.network import load_network

        torch.manual_seed(spec.seed)
        network = self.architecture(spec, styles)
        if spec.init_network:
            start, record = load_network(spec.init_network, "cpu")
            if list(record.styles) != [s.name for s in styles]:
                raise SpecError(
                    f"init_network {spec.init_network}: its styles {list(record.styles)} are not the "
                    f"spec's {[s.name for s in styles]} in that order"
                )
            network.load_state_dict(start.state_dict())
        return network

    def step(self, task, model, content, style, rng, spec, precision):
        from stylegrid.algorithms.feedforward.johnson.network import perceptual_losses

        n = task.previews.shape[0]
        index = torch.tensor([rng.randrange(n) for _ in range(content.shape[0])])
        losses = perceptual_losses(
            task.encoder, model, content, index, task.grams,
            content_layer=spec.content_layer, style_layers=spec.style_layers,
            content_weight=spec.content_weight, style_weight=spec.style_weight,
            tv_weight=spec.tv_weight, precision=precision,
        )  # fmt: skip
        terms = {"content": float(losses.content), "style": float(losses.style), "tv": float(losses.tv)}
        return StepResult(losses.total, terms, (content, task.previews[index], losses.output))

    def record(self, spec, styles):
        from stylegrid.algorithms.feedforward.johnson.network import network_record

        images = self._images(spec, styles)
        return network_record([(s.name, s.source, t) for s, t in zip(styles, images, strict=True)],
                              spec.width, spec.blocks)  # fmt: skip


class WCTRecipe(Recipe):
    kind, spec_type, model_file, style_crops = "wct", WCTTrainSpec, "decoders.pth", True

    def setup(self, spec, styles, device, precision):
        from stylegrid.algorithms.shared.vgg import get_encoder

        return get_encoder(list(spec.widths), device=device)

    def architecture(self, spec, styles):
        from stylegrid.algorithms.feedforward.wct.decoders import Decoders

        return Decoders(spec.widths)

    def new_model(self, spec, styles):
        from stylegrid.algorithms.feedforward.adain.network import get_decoder
        from stylegrid.algorithms.feedforward.wct.decoders import get_decoders

        torch.manual_seed(spec.seed)
        decoders = self.architecture(spec, styles)
        if spec.init_decoders:
            start = get_decoders(spec.init_decoders, "cpu")
            if start.widths != decoders.widths:
                raise SpecError(
                    f"init_decoders {spec.init_decoders}: its levels and widths {start.widths} are not "
                    f"the spec's {decoders.widths}"
                )
            decoders.load_state_dict(start.state_dict())
        elif spec.init_relu4_1:
            if decoders.widths.get("relu4_1") != 1.0:
                raise SpecError(
                    "init_relu4_1 needs relu4_1 in widths at width 1 (the AdaIN decoder's layout)"
                )
            from stylegrid.algorithms.feedforward.adain.network import DEFAULT_DECODER

            path = str(DEFAULT_DECODER) if spec.init_relu4_1 == "default" else spec.init_relu4_1
            decoders.levels["relu4_1"].load_state_dict(get_decoder(path, "cpu").state_dict())
            decoders.scale("relu4_1").fill_(1.0)  # the AdaIN decoder takes the features unscaled
        return decoders

    def step(self, task, model, content, style, rng, spec, precision):
        from stylegrid.algorithms.feedforward.wct.decoders import reconstruction_losses

        images = content if style is None else torch.cat([content, style])  # validation may have no paintings
        losses = reconstruction_losses(task, model, images, spec.feature_weight, precision)
        terms = {"pixel": float(losses.pixel), "feature": float(losses.feature)}
        coarse = [losses.outputs[level] for level in spec.widths][:2]  # the first levels the spec lists
        return StepResult(losses.total, terms, (images, coarse[0], coarse[-1]))

    def record(self, spec, styles):
        return {"encoder": "caffe", "widths": dict(spec.widths)}


class StyleSwapRecipe(Recipe):
    kind, spec_type, model_file, style_crops = "style-swap", StyleSwapTrainSpec, "inverse.pth", True

    def setup(self, spec, styles, device, precision):
        from stylegrid.algorithms.feedforward.style_swap.inverse import LAYER
        from stylegrid.algorithms.shared.vgg import get_encoder

        return get_encoder([LAYER], device=device)

    def architecture(self, spec, styles):
        from stylegrid.algorithms.feedforward.style_swap.inverse import inverse_network

        return inverse_network(spec.width)

    def new_model(self, spec, styles):
        from stylegrid.algorithms.feedforward.style_swap.inverse import LAYER, get_inverse
        from stylegrid.algorithms.feedforward.wct.decoders import DEFAULT_DECODERS

        torch.manual_seed(spec.seed)
        network = self.architecture(spec, styles)
        if spec.init_network:
            path = str(DEFAULT_DECODERS) if spec.init_network == "wct" else spec.init_network
            start = get_inverse(path, "cpu")
            if start.widths != network.widths:
                raise SpecError(
                    f"init_network {spec.init_network}: its {LAYER} width {start.widths[LAYER]} is not "
                    f"the spec's width {spec.width}"
                )
            network.load_state_dict(start.state_dict())
        return network

    def step(self, task, model, content, style, rng, spec, precision):
        from stylegrid.algorithms.feedforward.style_swap.inverse import inverse_losses

        if style is None:  # validation without paintings: the photos swapped with each other
            style = content.roll(1, dims=0)
        losses = inverse_losses(
            task, model, content, style, tv_weight=spec.tv_weight, pixel_weight=spec.pixel_weight,
            patch_size=spec.patch_size, precision=precision,
        )  # fmt: skip
        terms = {"feature": float(losses.feature), "tv": float(losses.tv), "pixel": float(losses.pixel)}
        n = content.shape[0]
        return StepResult(losses.total, terms, (content, style[:n], losses.outputs[n:]))

    def record(self, spec, styles):
        from stylegrid.algorithms.feedforward.style_swap.inverse import LAYER, NETWORK

        return {"encoder": "caffe", "network": NETWORK, "widths": {LAYER: spec.width},
                "patch_size": spec.patch_size}  # fmt: skip


def _square(image: torch.Tensor, size: int) -> torch.Tensor:
    """The centre square of [1, 3, H, W], resized to ``size``."""
    h, w = image.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = image[..., top : top + s, left : left + s]
    return F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


ADAIN, JOHNSON, WCT, STYLE_SWAP = AdaINRecipe(), JohnsonRecipe(), WCTRecipe(), StyleSwapRecipe()
RECIPES = {r.kind: r for r in (ADAIN, JOHNSON, WCT, STYLE_SWAP)}

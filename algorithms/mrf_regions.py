"""Spatial control for MRF (``mrf.stylize(..., regions=)``): each region's output patches matched
only within its own style's patches (Champandard's semantic style transfer, 2016, whose
"neural patches" are CNNMRF's, with the matching kept to the region instead of steered by
extra map channels).

A patch term needs the map's layout, so unlike the statistics of ``regions.RegionTerms`` the
features are not cut to the region's positions: at every level and layer each region's term
sees the whole map, counts only the output patches centred in the region (``mrf.centre_index``)
and matches them against a bank of its style's patches, only those centred in the style mask
when there is one. A region that keeps the photo takes the photo itself, within the region, as
its bank: its patches are pulled back to the photo's own. Each region's term is weighted by
its share of the photo, so one region over the whole photo is the plain term.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .memo import memo, style_key
from .mrf import MRFParams, MRFStyleTerm, build_banks
from .optimize import TermInputs
from .parameters import layer_weights
from .regions import Region, area_shares


@dataclass
class RegionalMRF:
    """Every region's MRF term, summed name by name, each weighted by its region's share."""

    terms: Sequence[MRFStyleTerm]
    shares: Sequence[float]
    refresh_every: int

    @property
    def layers(self) -> tuple[str, ...]:
        return self.terms[0].layers

    def refresh(self, features: Mapping[str, torch.Tensor]) -> None:
        for term in self.terms:
            term.refresh(features)

    def __call__(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for term, share in zip(self.terms, self.shares, strict=True):
            for name, value in term(features).items():
                out[name] = out[name] + share * value if name in out else share * value
        return out


def regional_mrf(params: MRFParams):
    """The ``regional_factory`` of ``optimize.run_image_optimization`` for MRF."""
    weights = layer_weights(params.mrf_layers, params.mrf_layer_weights)

    def regional(_plain, regions: Sequence[Region]):
        shares = area_shares(regions)

        def build(t: TermInputs) -> RegionalMRF:
            device = t.content.device
            terms = []
            for r in regions:
                mask = F.interpolate(r.mask.float().to(device), size=tuple(t.content.shape[-2:]), mode="area")
                if r.style is None:  # the photo, within the region, is the bank
                    style, style_mask = t.content, mask
                else:
                    style = t.styles[r.style]
                    style_mask = r.style_mask
                    if style_mask is not None:
                        style_mask = F.interpolate(style_mask.float().to(device), size=tuple(style.shape[-2:]),
                                                   mode="area")  # fmt: skip
                images = [style] if style_mask is None else [style, style_mask]
                key = style_key(
                    "mrf-region", t.encoder, images, t.precision, params.pooling, params.mrf_layers,
                    params.patch_size, params.sample_stride, params.style_rotations, params.style_rescales,
                )  # fmt: skip

                def banks(style=style, style_mask=style_mask):
                    return build_banks(t.encoder, [style], [1.0], params, t.precision, [style_mask])

                terms.append(
                    MRFStyleTerm(
                        memo(t.memo, key, banks),
                        weights,
                        params.style_weight,
                        params.patch_size,
                        params.synthesis_stride,
                        params.match_every,
                        t.level,
                        region=mask,
                    )  # fmt: skip
                )
            return RegionalMRF(terms, shares, params.match_every)

        return build

    return regional

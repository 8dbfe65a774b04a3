"""Colour utilities for luminance-only transfer (Gatys, Bethge, Hertzmann & Shechtman 2016,
"Preserving Color in Neural Artistic Style Transfer").

The style is transferred on the luminance channel only: content and style are turned into
grey images (Y of YIQ replicated to three channels), the style's luminance is shifted and scaled to
the content's mean and standard deviation, the optimisation runs on grey images, and the output's
luminance is finally recombined with the content's I and Q (colour) channels.
"""

from __future__ import annotations

import torch

_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def rgb_to_yiq(rgb: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB -> YIQ (Y in [0, 1] for RGB in [0, 1])."""
    m = _RGB_TO_YIQ.to(rgb.device, rgb.dtype)
    return torch.einsum("ij,bjhw->bihw", m, rgb)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    m = torch.linalg.inv(_RGB_TO_YIQ.double()).to(yiq.device, yiq.dtype)
    return torch.einsum("ij,bjhw->bihw", m, yiq)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Y channel, [B, 1, H, W]."""
    return rgb_to_yiq(rgb)[:, :1]


def grey(y: torch.Tensor) -> torch.Tensor:
    """A luminance channel [B, 1, H, W] as a three-channel RGB image."""
    return y.expand(-1, 3, -1, -1).contiguous()


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style's luminance to the content's mean and standard deviation."""
    s_mean, s_std = style_y.mean(), style_y.std()
    c_mean, c_std = content_y.mean(), content_y.std()
    return (style_y - s_mean) * (c_std / (s_std + 1e-8)) + c_mean


def recombine_luminance(output_rgb: torch.Tensor, content_rgb: torch.Tensor) -> torch.Tensor:
    """The output's luminance with the content's chrominance (I, Q), back in RGB."""
    if content_rgb.shape[-2:] != output_rgb.shape[-2:]:
        raise ValueError("content and output must have the same size")
    out_y = luminance(output_rgb)
    content_iq = rgb_to_yiq(content_rgb)[:, 1:]
    return yiq_to_rgb(torch.cat([out_y, content_iq], dim=1)).clamp(0, 1)


def coral(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``source`` [1, 3, H, W] recoloured so that its pixels' mean and 3x3 colour covariance equal
    ``target``'s (CORAL, Sun, Feng & Saenko 2016; used by Huang & Belongie 2017 to preserve the
    content's colours: the style is recoloured to the content before stylization)."""
    s = source.double().reshape(3, -1)
    t = target.double().reshape(3, -1)
    s_mean, t_mean = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=torch.double, device=s.device)
    s_cov = torch.cov(s) + eps * eye
    t_cov = torch.cov(t) + eps * eye
    out = _sqrtm(t_cov) @ torch.linalg.inv(_sqrtm(s_cov)) @ (s - s_mean) + t_mean
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)


def _sqrtm(m: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive definite matrix."""
    values, vectors = torch.linalg.eigh(m)
    return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T


# sRGB (D65) -> CIE XYZ, the IEC 61966-2-1 matrix
_RGB_TO_XYZ = torch.tensor(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_D65_WHITE = (0.95047, 1.0, 1.08883)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] sRGB in [0, 1] -> CIE L*a*b* (D65): L in [0, 100], a and b about [-128, 127].
    Euclidean distances in Lab approximate perceived colour differences (CIE76 Delta E)."""
    x = rgb.double().clamp(0, 1)
    linear = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,bjhw->bihw", _RGB_TO_XYZ.to(x.device, x.dtype), linear)
    xyz = xyz / torch.tensor(_D65_WHITE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    eps, kappa = 216 / 24389, 24389 / 27
    f = torch.where(xyz > eps, xyz.pow(1 / 3), (kappa * xyz + 16) / 116)
    lab = torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)
    return lab.to(rgb.dtype)

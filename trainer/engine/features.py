"""Engineered input features (``data.features``): computed per batch on the device, stacked as channels.

A batch arrives as uint8 images (``data.channels`` channels, augmented) and leaves as a
float stack of the listed features, in the listed order; the model's ``in_chans`` is the
stack's channel count (:func:`feature_channels`). Every feature is a batched torch op:

=============  ========  ====================================================================
feature        channels  what
=============  ========  ====================================================================
``rgb``        3         the RGB image (a greyscale image repeated 3 times)
``gray``       1         luma, 0.299 R + 0.587 G + 0.114 B (a greyscale image as it is)
``sobel``      1         Sobel gradient magnitude sqrt(dx^2 + dy^2) of ``gray``
``sobel_xy``   2         the Sobel derivatives dx, dy of ``gray`` (signed)
``fft``        1         log(1 + abs(FFT2(gray))), shifted so the zero frequency is at the centre
``wavelet``    4         one-level Haar transform of ``gray``: LL, LH, HL, HH, each at half size,
                         repeated back to full size (nearest)
``scalespace`` 3         ``gray`` blurred by Gaussians of sigma 1, 2 and 4 pixels
=============  ========  ====================================================================

Normalisation: ``rgb`` and ``gray`` use the run's mean/std (``data.mean``/``data.std``,
else the model's pretrained config's, else ImageNet's; ``gray`` uses their channel average),
as images always have. The derived features (all the others) are computed on ``gray`` scaled
to 0..1 and standardised per image and channel: ``(f - mean(f)) / (std(f) + 1e-5)`` over the
image's pixels, because their raw ranges depend on the image size (``fft``) and the content,
and no fixed constant would fit every dataset. Borders are replicated.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainer.engine.config import FEATURES
from trainer.engine.data import normalization
from trainer.engine.filters import LUMA

__all__ = ["FeatureStack", "build_features", "feature_channels", "fft_log_magnitude", "gray", "haar",
           "luma_weights", "scale_space", "sobel_kernel", "sobel_xy", "standardize"]

STANDARDIZE_EPS = 1e-5
SCALESPACE_SIGMAS = (1.0, 2.0, 4.0)


def feature_channels(features: list[str] | None, channels: int) -> int:
    """The model's input channels: the stack's for ``data.features``, else the images' ``channels``."""
    return channels if features is None else sum(FEATURES[name] for name in features)


def luma_weights(device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[1, 3, 1, 1]``: the RGB weights of :func:`gray`."""
    return torch.tensor(LUMA, device=device, dtype=dtype).view(1, 3, 1, 1)


def sobel_kernel(device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[2, 1, 3, 3]``: the Sobel dx and dy kernels of :func:`sobel_xy`."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=device, dtype=dtype)
    return torch.stack([kx, kx.t()])[:, None]


def gray(x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Luma ``[B, 1, H, W]`` of a float batch ``[B, 1 or 3, H, W]`` (same scale as the input).

    ``weights``: :func:`luma_weights` already on ``x``'s device (else made, and copied there, per call).
    """
    if x.shape[1] == 1:
        return x
    return (x * (weights if weights is not None else luma_weights(x.device, x.dtype))).sum(1, keepdim=True)


def sobel_xy(g: torch.Tensor, kernel: torch.Tensor | None = None) -> torch.Tensor:
    """Sobel derivatives ``[B, 2, H, W]`` (dx, dy) of ``[B, 1, H, W]``, borders replicated.

    ``kernel``: :func:`sobel_kernel` already on ``g``'s device (else made, and copied there, per call).
    """
    kernel = kernel if kernel is not None else sobel_kernel(g.device, g.dtype)
    return F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), kernel)


def fft_log_magnitude(g: torch.Tensor) -> torch.Tensor:
    """log(1 + |FFT2|) of ``[B, 1, H, W]``, zero frequency shifted to the centre."""
    spectrum = torch.fft.fftshift(torch.fft.fft2(g.float()), dim=(-2, -1))
    return torch.log1p(spectrum.abs())


def haar(g: torch.Tensor) -> torch.Tensor:
    """One-level Haar transform (LL, LH, HL, HH) of ``[B, 1, H, W]``, each repeated back to H x W."""
    h, w = g.shape[-2:]
    p = F.pad(g, (0, w % 2, 0, h % 2), mode="replicate")  # odd sizes: repeat the last row/column
    a, b = p[..., 0::2, 0::2], p[..., 0::2, 1::2]
    c, d = p[..., 1::2, 0::2], p[..., 1::2, 1::2]
    bands = torch.cat([a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d], dim=1) / 2
    return bands.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)[..., :h, :w]


def scale_space(g: torch.Tensor, sigmas: tuple[float, ...] = SCALESPACE_SIGMAS) -> torch.Tensor:
    """``[B, len(sigmas), H, W]``: ``g`` blurred by a Gaussian of each sigma (separable, borders replicated)."""
    out = []
    for sigma in sigmas:
        r = max(1, math.ceil(3 * sigma))
        t = torch.arange(-r, r + 1, device=g.device, dtype=g.dtype)
        k = torch.exp(-(t * t) / (2 * sigma * sigma))
        k = k / k.sum()
        y = F.conv2d(F.pad(g, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        out.append(F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1)))
    return torch.cat(out, dim=1)


def standardize(f: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit std per image and channel (over the pixels); flat channels become 0."""
    mean = f.mean(dim=(-2, -1), keepdim=True)
    std = f.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (f - mean) / (std + STANDARDIZE_EPS)


class FeatureStack(torch.nn.Module):
    """Turns a float batch (0..255, the images' channels) into the normalised ``data.features`` stack.

    A module without parameters (mean/std are buffers), so it moves with ``.to(device)`` and
    ``torch.export`` can put it in front of a model in an exported artefact.
    """

    def __init__(self, names: list[str], mean: list[float] | tuple[float, ...] | None,
                 std: list[float] | tuple[float, ...] | None, device: torch.device | None = None) -> None:
        super().__init__()
        self.names = list(names)
        self.channels = feature_channels(self.names, 0)
        m3, s3 = normalization(mean, std, 3)
        m1, s1 = normalization(mean, std, 1)
        self.register_buffer("rgb_mean", torch.tensor(m3, device=device).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("rgb_std", torch.tensor(s3, device=device).view(1, 3, 1, 1) * 255.0)
        self.gray_mean, self.gray_std = m1[0] * 255.0, s1[0] * 255.0
        # constants made on the device once: a tensor made from a list in forward() is a blocking
        # host-to-device copy every batch (not persistent: the module's state_dict stays empty)
        self.register_buffer("luma", luma_weights(device), persistent=False)
        self.register_buffer("sobel", sobel_kernel(device), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        g = gray(x, self.luma)
        g01 = g / 255.0
        parts = []
        for name in self.names:
            if name == "rgb":
                rgb = x if x.shape[1] == 3 else x.expand(-1, 3, -1, -1)
                parts.append((rgb - self.rgb_mean) / self.rgb_std)
            elif name == "gray":
                parts.append((g - self.gray_mean) / self.gray_std)
            elif name == "sobel":
                d = sobel_xy(g01, self.sobel)
                parts.append(standardize(d.square().sum(1, keepdim=True).sqrt()))
            elif name == "sobel_xy":
                parts.append(standardize(sobel_xy(g01, self.sobel)))
            elif name == "fft":
                parts.append(standardize(fft_log_magnitude(g01)))
            elif name == "wavelet":
                parts.append(standardize(haar(g01)))
            elif name == "scalespace":
                parts.append(standardize(scale_space(g01)))
            else:
                raise AssertionError(name)  # config validation allows only FEATURES
        return torch.cat(parts, dim=1)


def build_features(names: list[str] | None, mean_std: tuple[list[float] | tuple[float, ...] | None,
                                                           list[float] | tuple[float, ...] | None],
                   device: torch.device) -> FeatureStack | None:
    """The ``data.features`` stack for the Trainer's ``prepare`` (None: plain mean/std normalisation)."""
    if names is None:
        return None
    return FeatureStack(names, mean_std[0], mean_std[1], device)

"""Image filters in plain torch, batched: median blur and CLAHE, and their random augmentations.

Both work on any leading batch shape (``[C, H, W]`` or ``[B, C, H, W]``), on CPU or GPU, and
return the input's dtype and shape, so the loader's per-image transforms and batched
augmentation on the device can share them. No OpenCV: CLAHE follows OpenCV's algorithm
(contrast-limited histogram equalisation per tile, then a bilinear blend of the four
nearest tiles' mappings), written in torch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["MedianBlur", "RandomCLAHE", "clahe", "median_blur"]

#: ITU-R 601 luma weights of R, G, B: CLAHE's luma, the ``gray`` feature, RGB -> greyscale conversion
LUMA = (0.299, 0.587, 0.114)


def _pad_mode(pad: int, h: int, w: int) -> str:
    return "reflect" if pad < h and pad < w else "replicate"


def median_blur(x: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """Each pixel replaced by the median of its ``kernel_size`` x ``kernel_size`` neighbourhood (edges replicated)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"median blur kernel_size must be odd and positive, got {kernel_size}")
    if kernel_size == 1:
        return x.clone()
    *lead, h, w = x.shape
    p = kernel_size // 2
    f = F.pad(x.reshape(-1, 1, h, w).float(), (p, p, p, p), mode="replicate")
    med = F.unfold(f, kernel_size).median(dim=1).values.view(*lead, h, w)
    return med.to(x.dtype)  # the median of integers is one of them: no rounding for uint8


def _clahe_plane(y: torch.Tensor, clip_limit: float, grid: int) -> torch.Tensor:
    """CLAHE of uint8 planes ``[N, H, W]`` with a ``grid`` x ``grid`` tiling; float 0..255 out."""
    n, h, w = y.shape
    gh, gw = min(grid, h), min(grid, w)
    th, tw = -(-h // gh), -(-w // gw)
    ph, pw = th * gh - h, tw * gw - w
    padded = y.float()
    if ph or pw:
        padded = F.pad(padded[:, None], (0, pw, 0, ph), mode=_pad_mode(max(ph, pw), h, w))[:, 0]
    tiles = padded.long().view(n, gh, th, gw, tw).permute(0, 1, 3, 2, 4).reshape(n, gh * gw, th * tw)
    hist = torch.zeros(n, gh * gw, 256, dtype=torch.long, device=y.device).scatter_add_(
        2, tiles, torch.ones_like(tiles))
    area = th * tw
    limit = max(int(clip_limit * area / 256), 1)
    excess = (hist - limit).clamp_min(0).sum(-1, keepdim=True)
    # clipped counts spread evenly over the levels, the remainder one each on every step-th level
    residual = excess % 256
    step = (256 // residual.clamp_min(1)).clamp_min(1)
    level = torch.arange(256, device=y.device)
    extra = ((level % step == 0) & (level // step < residual)).long()
    hist = hist.clamp_max(limit) + excess // 256 + extra
    lut = (hist.cumsum(-1).float() * (255.0 / area)).round_().clamp_(0, 255).view(n, gh, gw, 256)

    def axis(size: int, tile: int, tiles_n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = torch.arange(size, device=y.device, dtype=torch.float32) / tile - 0.5
        lo = pos.floor().clamp(0, tiles_n - 1)
        weight = (pos - lo).clamp(0, 1)
        lo = lo.long()
        return lo, (lo + 1).clamp(max=tiles_n - 1), weight

    y0, y1, wy = axis(h, th, gh)
    x0, x1, wx = axis(w, tw, gw)
    v = y.long()
    b = torch.arange(n, device=y.device)[:, None, None]

    def at(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return lut[b, rows[None, :, None], cols[None, None, :], v]

    wy, wx = wy[None, :, None], wx[None, None, :]
    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def clahe(x: torch.Tensor, clip_limit: float = 2.0, tile_grid: int = 8) -> torch.Tensor:
    """Contrast-limited adaptive histogram equalisation of uint8 images ``[..., C, H, W]``.

    Greyscale (or any non-RGB) images are equalised per channel; RGB images on their luma
    (Rec. 601), each pixel's R, G and B shifted by the luma's change, so hues are kept.
    """
    if x.dtype != torch.uint8:
        raise ValueError(f"clahe works on uint8 images, got {x.dtype}")
    *lead, c, h, w = x.shape
    if c == 3:
        rgb = x.reshape(-1, 3, h, w).float()
        luma = (rgb * torch.tensor(LUMA, device=x.device).view(1, 3, 1, 1)).sum(1)
        equalised = _clahe_plane(luma.round().clamp(0, 255).to(torch.uint8), clip_limit, tile_grid)
        out = rgb + (equalised - luma)[:, None]
    else:
        out = _clahe_plane(x.reshape(-1, h, w), clip_limit, tile_grid)
    return out.round_().clamp_(0, 255).to(torch.uint8).view(*lead, c, h, w)


class MedianBlur:
    """Median blur with a fixed odd ``kernel_size`` (removes salt-and-pepper noise, keeps edges)."""

    def __init__(self, kernel_size: int) -> None:
        self.kernel_size = int(kernel_size)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return median_blur(img, self.kernel_size)


class RandomCLAHE:
    """CLAHE with a clip limit drawn uniformly from ``clip_limit`` ([low, high]) per image."""

    def __init__(self, clip_limit: tuple[float, float], tile_grid: int) -> None:
        self.low, self.high = clip_limit
        self.tile_grid = int(tile_grid)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        limit = self.low + (self.high - self.low) * float(torch.rand(()))
        return clahe(img, limit, self.tile_grid)

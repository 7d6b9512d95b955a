"""Augmentation of whole batches on the device, with every random choice drawn per batch on the CPU.

The prepared pipeline (:mod:`trainer.engine.prepared`) splits an augmentation in two:

- :func:`sample_params` (in a loader worker, numpy seeded by the batch's seed): crop boxes for
  random-resized-crop (torchvision's/timm's semantics: area fraction uniform in ``scale``, log
  aspect ratio uniform in ``log(ratio)``, 10 tries, then a centre crop clamped to ``ratio``), and
  per-image flags and factors for the other augmentations. A batch is therefore augmented the same
  way whichever worker loads it, and a resumed run repeats it.
- :func:`apply_params` (on the device, the GPU when there is one): flips, colour jitter (brightness,
  contrast, saturation, hue, in one random order per batch; the affine three folded into one
  per-image colour matrix), gamma, RGB shift, channel shuffle,
  Gaussian blur, noise and random erasing, each as a few batched tensor operations on float images
  in 0..255. Normalisation follows in :meth:`trainer.engine.loop.Trainer.prepare`.
- :func:`jitter_uint8` (in a loader worker, training on a CPU): the hue-free colour jitters applied
  image by image to the uint8 crops (OpenCV), where no device is free to do them per batch.

``jpeg`` (a Pillow round trip) and names this module does not know have no batched form: the
prepared pipeline refuses them with one line (see :data:`DEVICE_AUGMENTATIONS`).
"""
from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

DEVICE_AUGMENTATIONS = ("random_resized_crop", "hflip", "vflip", "color_jitter", "brightness", "contrast",
                        "hue_saturation", "gamma", "rgb_shift", "channel_shuffle", "blur", "noise", "random_erase",
                        "mixup", "cutmix")
JITTER = {"color_jitter": ("brightness", "contrast", "saturation", "hue"), "brightness": ("brightness",),
          "contrast": ("contrast",), "hue_saturation": ("saturation", "hue")}
ERASE_RATIO = (0.3, 3.3)  # torchvision's RandomErasing default
GREY = (0.2989, 0.587, 0.114)


# ------------------------------------------------------------------ boxes (CPU, numpy)


def sample_crop_boxes(heights: np.ndarray, widths: np.ndarray, scale: tuple[float, float],
                      ratio: tuple[float, float], rng: np.random.Generator, tries: int = 10) -> np.ndarray:
    """Random-resized-crop boxes ``[B, 4]`` (top, left, height, width), as torchvision's ``get_params``.

    Each image gets up to ``tries`` candidates (area fraction ~ U(scale), log ratio ~ U(log ratio));
    the first that fits is placed uniformly; if none fits, the centre crop with the ratio clamped.
    """
    h = np.asarray(heights, np.int64)
    w = np.asarray(widths, np.int64)
    b = len(h)
    area = (h * w).astype(np.float64)[:, None]
    target = area * rng.uniform(scale[0], scale[1], (b, tries))
    log_r = rng.uniform(math.log(ratio[0]), math.log(ratio[1]), (b, tries))
    ar = np.exp(log_r)
    cw = np.rint(np.sqrt(target * ar)).astype(np.int64)
    ch = np.rint(np.sqrt(target / ar)).astype(np.int64)
    ok = (cw > 0) & (cw <= w[:, None]) & (ch > 0) & (ch <= h[:, None])
    first = ok.argmax(1)
    found = ok.any(1)
    rows = np.arange(b)
    bh, bw = ch[rows, first], cw[rows, first]
    u = rng.random((b, 2))
    top = np.floor(u[:, 0] * (h - bh + 1)).astype(np.int64)
    left = np.floor(u[:, 1] * (w - bw + 1)).astype(np.int64)
    # fallback: the whole image, cut to the nearest allowed ratio, centred
    in_ratio = w / h
    fw, fh = w.copy(), h.copy()
    narrow, wide = in_ratio < min(ratio), in_ratio > max(ratio)
    fh[narrow] = np.rint(w[narrow] / min(ratio)).astype(np.int64)
    fw[wide] = np.rint(h[wide] * max(ratio)).astype(np.int64)
    fh, fw = np.clip(fh, 1, h), np.clip(fw, 1, w)
    bh, bw = np.where(found, bh, fh), np.where(found, bw, fw)
    top = np.where(found, top, (h - fh) // 2)
    left = np.where(found, left, (w - fw) // 2)
    return np.stack([top, left, bh, bw], 1)


def eval_boxes(heights: np.ndarray, widths: np.ndarray, out_hw: tuple[int, int], crop_pct: float) -> np.ndarray:
    """Centre-crop boxes ``[B, 4]`` in stored-image pixels for timm's eval transform.

    timm resizes the short side to ``floor(size / crop_pct)`` and centre-crops ``size``; the box is
    that crop mapped back onto the stored image (exact pixels when the stored short side is the
    resize size, which is the default). Non-square sizes: the smallest aspect-preserving resize that
    covers ``floor(out / crop_pct)``, then the centre crop.
    """
    h = np.asarray(heights, np.float64)
    w = np.asarray(widths, np.float64)
    oh, ow = out_hw
    rs_h, rs_w = math.floor(oh / crop_pct), math.floor(ow / crop_pct)
    if rs_h == rs_w:  # torchvision's Resize(int): short side exact, long side truncated
        short = np.minimum(h, w)
        rh = np.where(h <= w, rs_h, np.floor(rs_h * h / short))
        rw = np.where(h <= w, np.floor(rs_w * w / short), rs_w)
    else:
        s = np.maximum(rs_h / h, rs_w / w)
        rh, rw = np.floor(h * s), np.floor(w * s)
    top = np.round((rh - oh) / 2.0)  # torchvision's CenterCrop
    left = np.round((rw - ow) / 2.0)
    sy, sx = h / rh, w / rw
    bt, bl = np.rint(top * sy), np.rint(left * sx)
    bh, bw = np.rint(oh * sy), np.rint(ow * sx)
    bh, bw = np.clip(bh, 1, h), np.clip(bw, 1, w)
    bt, bl = np.clip(bt, 0, h - bh), np.clip(bl, 0, w - bw)
    return np.stack([bt, bl, bh, bw], 1).astype(np.int64)


def _factor(rng: np.random.Generator, b: int, amount: float, centre: float = 1.0) -> np.ndarray:
    if centre == 0.0:  # hue: [-amount, amount]
        return rng.uniform(-amount, amount, b)
    return rng.uniform(max(0.0, 1.0 - amount), 1.0 + amount, b)


def sample_params(aug: dict[str, dict[str, Any]], b: int, channels: int, out_hw: tuple[int, int],
                  rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Every per-image random choice of the batch's device augmentations (not the crop), as tensors."""
    p: dict[str, torch.Tensor] = {}

    def coin(prob: float) -> np.ndarray:
        return rng.random(b) < prob

    for name in ("hflip", "vflip"):
        if name in aug:
            p[name] = torch.from_numpy(coin(aug[name]["p"]))
    for name, parts in JITTER.items():
        if name not in aug:
            continue
        a = aug[name]
        on = coin(a["p"])
        f = {"brightness": np.ones(b), "contrast": np.ones(b), "saturation": np.ones(b), "hue": np.zeros(b)}
        for part in parts:
            f[part] = np.where(on, _factor(rng, b, float(a[part]), 0.0 if part == "hue" else 1.0), f[part])
        p[name] = torch.from_numpy(np.stack([f["brightness"], f["contrast"], f["saturation"], f["hue"]], 1))
        p[name + ".order"] = torch.from_numpy(rng.permutation(4))
    if "gamma" in aug:
        lo, hi = aug["gamma"]["gamma"]
        p["gamma"] = torch.from_numpy(np.where(coin(aug["gamma"]["p"]), rng.uniform(lo, hi, b), 1.0))
    if "rgb_shift" in aug:
        s = int(aug["rgb_shift"]["shift"])
        shift = rng.integers(-s, s + 1, (b, channels))
        p["rgb_shift"] = torch.from_numpy(np.where(coin(aug["rgb_shift"]["p"])[:, None], shift, 0))
    if "channel_shuffle" in aug:
        perms = np.stack([rng.permutation(channels) for _ in range(b)])
        on = coin(aug["channel_shuffle"]["p"])
        p["channel_shuffle"] = torch.from_numpy(np.where(on[:, None], perms, np.arange(channels)))
    if "blur" in aug:
        lo, hi = aug["blur"]["sigma"]
        p["blur"] = torch.from_numpy(np.where(coin(aug["blur"]["p"]), rng.uniform(lo, hi, b), 0.0))
    if "noise" in aug:
        p["noise"] = torch.from_numpy(coin(aug["noise"]["p"]))
        p["noise.seed"] = torch.tensor(int(rng.integers(0, 2**62)))
    if "random_erase" in aug:
        oh, ow = out_hw
        boxes = sample_crop_boxes(np.full(b, oh), np.full(b, ow), tuple(aug["random_erase"]["scale"]),
                                  ERASE_RATIO, rng)
        fits = (boxes[:, 2] < oh) & (boxes[:, 3] < ow)  # torchvision erases nothing when no try fits
        on = coin(aug["random_erase"]["p"]) & fits
        p["random_erase"] = torch.from_numpy(np.where(on[:, None], boxes, 0))
    return p


# ------------------------------------------------------------------ on the device


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    w = torch.tensor(GREY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    cr = maxc - minc
    s = cr / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    crd = torch.where(cr == 0, torch.ones_like(cr), cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return h, s, maxc


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0, 1)
    q = (v * (1.0 - s * f)).clamp(0, 1)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0, 1)
    sel = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = [torch.zeros_like(v) for _ in range(3)]
    for k, (rr, gg, bb) in enumerate(sel):
        m = i == k
        out[0] = torch.where(m, rr, out[0])
        out[1] = torch.where(m, gg, out[1])
        out[2] = torch.where(m, bb, out[2])
    return torch.stack(out, 1)


def _affine(x: torch.Tensor, m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-image colour transform ``y = M x + t`` (``M`` [B, C, C], ``t`` [B, C]) in one pass, clamped."""
    b, c, h, w = x.shape
    if x.is_contiguous():  # [B, C, HW]: the long dimension last suits the CPU's matrix kernels
        y = torch.baddbmm(t[:, :, None], m, x.view(b, c, h * w))
        return y.view(b, c, h, w).clamp_(0, 255)
    xv = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view for channels-last batches
    y = torch.baddbmm(t[:, None, :], xv, m.transpose(1, 2))
    return y.view(b, h, w, c).permute(0, 3, 1, 2).clamp_(0, 255)


def _jitter(x: torch.Tensor, f: torch.Tensor, order: list[int]) -> torch.Tensor:
    """torchvision's ColorJitter on 0..255 floats: per-image factors ``f`` [B, 4], one order per batch.

    Brightness, contrast and saturation are affine in the colour, so a run of them is folded into one
    3x3 matrix and offset per image and applied in a single pass (the contrast's grey mean follows
    from the channel means); hue (through HSV) splits the runs. The result is clamped to 0..255 after
    each run rather than after each step: identical to torchvision unless a step pushes a value
    outside 0..255 and a later one brings it back.

    ``f`` lies where it was sampled (the CPU): which steps run is decided there, so the device is
    never waited for; only the factors (and the grey weights) are copied to it, once a batch.
    """
    b, c = x.shape[:2]
    dev, dt = x.device, x.dtype
    f = f.to(dt)
    f_dev = f.to(dev, non_blocking=True)
    grey = torch.tensor(GREY if c == 3 else (1.0,), dtype=dt).to(dev, non_blocking=True)
    eye = torch.eye(c, device=dev, dtype=dt).expand(b, c, c)
    m, t = eye.clone(), torch.zeros(b, c, device=dev, dtype=dt)
    mu: torch.Tensor | None = None
    pending = False
    for k in order:
        col = f_dev[:, k]
        if k == 3:
            if c == 3 and bool((f[:, k] != 0).any()):
                if pending:
                    x, m, t, mu, pending = _affine(x, m, t), eye.clone(), torch.zeros_like(t), None, False
                h, s, v = _rgb_to_hsv(x / 255.0)
                h = torch.remainder(h + col.view(b, 1, 1), 1.0)
                x = _hsv_to_rgb(h, s, v) * 255.0
                mu = None
            continue
        if not _affine_acts(k, f[:, k], c):  # decided on the CPU copy: no device wait
            continue
        if k == 1 and mu is None:
            mu = x.mean(dim=(2, 3))
        m, t = _affine_step(m, t, k, col, mu, grey, eye)
        pending = True
    return _affine(x, m, t) if pending else x


def _affine_acts(k: int, col: torch.Tensor, c: int) -> bool:
    """Whether affine jitter step ``k`` changes anything: some factor is not 1 (saturation: RGB only)."""
    return bool((col != 1).any()) and not (k == 2 and c != 3)


def _affine_step(m: torch.Tensor, t: torch.Tensor, k: int, col: torch.Tensor, mu: torch.Tensor | None,
                 grey: torch.Tensor, eye: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold jitter step ``k`` (0 brightness, 1 contrast, 2 saturation; factors ``col`` [B]) into ``(m, t)``.

    ``mu`` [B, C]: the channel means of the images the run started from (contrast needs them).
    """
    b, c = t.shape
    if k == 0:
        return m * col.view(b, 1, 1), t * col.view(b, 1)
    if k == 1:
        assert mu is not None
        mean_grey = ((m @ mu[:, :, None]).squeeze(2) + t) @ grey  # the current image's grey mean
        return m * col.view(b, 1, 1), t * col.view(b, 1) + ((1 - col) * mean_grey).view(b, 1)
    a = col.view(b, 1, 1) * eye + (1 - col).view(b, 1, 1) * grey.view(1, 1, c).expand(b, c, c)
    return a @ m, (a @ t[:, :, None]).squeeze(2)


def jitter_uint8(x: np.ndarray, p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU workers: the hue-free colour jitters of ``p`` applied in place to a uint8 ``[B, H, W, C]`` batch.

    The per-image 3x3 matrices and offsets are folded for the whole batch (as :func:`_jitter` does on
    the device), then OpenCV's ``transform`` applies each image's in one saturating, rounding pass
    over its interleaved pixels (0.02 ms for 224x224, against 0.27 ms through torch). A jitter with a
    hue step, and everything after it, is left to :func:`apply_params`; returns the choices left.
    """
    rest = dict(p)
    b, c = x.shape[0], x.shape[-1]
    planes = x[..., 0] if c == 1 else x  # OpenCV reads [H, W, 1] as one channel only without the axis
    grey = torch.tensor(GREY if c == 3 else (1.0,), dtype=torch.float64)
    eye = torch.eye(c, dtype=torch.float64).expand(b, c, c)
    for name in [n for n in JITTER if n in p]:
        f = p[name].double()
        if c == 3 and bool((f[:, 3] != 0).any()):
            break
        steps = [k for k in p[name + ".order"].tolist() if k != 3 and _affine_acts(k, f[:, k], c)]
        if steps:
            mu = torch.tensor([cv2.mean(planes[i])[:c] for i in range(b)], dtype=torch.float64) if 1 in steps else None
            m, t = eye.clone(), torch.zeros(b, c, dtype=torch.float64)
            for k in steps:
                m, t = _affine_step(m, t, k, f[:, k], mu, grey, eye)
            mats = torch.cat([m, t[:, :, None]], 2).float().numpy()  # [B, C, C + 1]
            for i in range(b):
                cv2.transform(planes[i], mats[i], dst=planes[i])
        del rest[name], rest[name + ".order"]
    return rest


def _blur(x: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
    """Per-image Gaussian blur; ``sigma`` [B] where it was sampled (the CPU: whether any image blurs is
    decided there, without waiting for the device)."""
    if not bool((sigma > 0).any()):
        return x
    sigma = sigma.to(x.device, non_blocking=True)
    on = sigma > 0
    b, c, hh, ww = x.shape
    r = torch.arange(k, device=x.device, dtype=x.dtype) - (k - 1) / 2
    s = sigma.clamp(min=1e-6).to(x.dtype).view(b, 1)
    g = torch.exp(-0.5 * (r.view(1, k) / s) ** 2)
    g = g / g.sum(1, keepdim=True)
    kern = (g[:, :, None] * g[:, None, :]).repeat_interleave(c, 0).view(b * c, 1, k, k)
    pad = k // 2
    y = F.conv2d(F.pad(x.reshape(1, b * c, hh, ww), (pad, pad, pad, pad), mode="reflect"), kern, groups=b * c)
    return torch.where(on.view(b, 1, 1, 1), y.view(b, c, hh, ww), x)


def apply_params(x: torch.Tensor, p: dict[str, torch.Tensor], aug: dict[str, dict[str, Any]]) -> torch.Tensor:
    """Apply :func:`sample_params`'s choices to a float batch ``[B, C, H, W]`` (0..255) where it lies."""
    dev = x.device
    b = x.shape[0]

    def t(name: str) -> torch.Tensor:
        return p[name].to(dev, non_blocking=True)

    for name, dim in (("hflip", 3), ("vflip", 2)):
        if name in p:
            x = torch.where(t(name).view(b, 1, 1, 1), x.flip(dim), x)
    for name in JITTER:
        if name in p:
            x = _jitter(x, p[name], p[name + ".order"].tolist())
    if "gamma" in p:
        g = t("gamma").to(x.dtype).view(b, 1, 1, 1)
        x = (x / 255.0).clamp_(0, 1).pow(g) * 255.0
    if "rgb_shift" in p:
        x = (x + t("rgb_shift").to(x.dtype).view(b, -1, 1, 1)).clamp_(0, 255)
    if "channel_shuffle" in p:
        idx = t("channel_shuffle").view(b, -1, 1, 1).expand_as(x)
        x = x.gather(1, idx)
    if "blur" in p:
        x = _blur(x, p["blur"], int(aug["blur"]["kernel_size"]))
    if "noise" in p:
        gen = torch.Generator(device=dev).manual_seed(int(p["noise.seed"]))
        noise = torch.randn(x.shape, generator=gen, device=dev, dtype=x.dtype) * (float(aug["noise"]["std"]) * 255)
        x = (x + noise * t("noise").to(x.dtype).view(b, 1, 1, 1)).clamp_(0, 255)
    if "random_erase" in p:
        box = t("random_erase")
        hh, ww = x.shape[-2:]
        rows = torch.arange(hh, device=dev).view(1, hh, 1)
        cols = torch.arange(ww, device=dev).view(1, 1, ww)
        top, left, eh, ew = (box[:, k].view(b, 1, 1) for k in range(4))
        mask = (rows >= top) & (rows < top + eh) & (cols >= left) & (cols < left + ew)
        x = x.masked_fill(mask[:, None], 0.0)
    return x

"""Losses by name, and the weighted sums of them that ``loss.terms`` asks for.

Every task has its losses (``trainer.engine.config.TASK_LOSSES``):

- classification: ``ce`` (cross-entropy, with class weights and label smoothing) and ``focal``
  (Lin et al.: ``-alpha * (1 - p_t)**gamma * log p_t``; with ``gamma: 0`` and no alpha it *is*
  cross-entropy, class weights and label smoothing included);
- regression: ``mse``, ``l1``, ``huber`` (``huber_delta``) on the raw targets;
- embedding (the model outputs L2-normalised embeddings): ``contrastive`` (pairs in the batch:
  same class pulled together, others pushed past ``margin``), ``triplet`` (batch-hard: each
  anchor's farthest positive against its nearest negative) and ``supcon`` (supervised contrastive,
  Khosla et al., one view per image, ``temperature``).

:class:`Objective` is the loss the loop calls: one term (``loss.name``) or the weighted sum of
``loss.terms``, each of which it can also tally on its own (``train_loss_<term>``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from trainer.engine.config import TrainerConfig, loss_term_keys
from trainer.errors import ConfigError

__all__ = ["Objective", "TermTally", "build_objective", "contrastive_loss", "focal_loss", "supcon_loss",
           "triplet_loss"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ------------------------------------------------------------------ classification


def focal_loss(logits: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0,
               alpha: float | torch.Tensor | None = None, weight: torch.Tensor | None = None,
               label_smoothing: float = 0.0) -> torch.Tensor:
    """Multi-class focal loss; ``gamma=0`` without alpha equals ``F.cross_entropy`` (same weighting).

    ``target`` is class indices ``[B]`` or probabilities ``[B, C]`` (mixup/cutmix). ``alpha`` is a
    factor, or one factor per class (multiplied into ``weight``). Hard targets are averaged as
    cross-entropy averages them: divided by the summed weight of the targets' classes.
    """
    logits = logits.float()
    c = logits.shape[1]
    logp = F.log_softmax(logits, dim=1)
    w = weight.float() if weight is not None else None
    if isinstance(alpha, torch.Tensor):
        w = alpha.float() if w is None else w * alpha.float()
        alpha = None
    scale = float(alpha) if alpha is not None else 1.0
    if target.ndim == 1 and label_smoothing == 0.0:
        logp_t = logp.gather(1, target[:, None]).squeeze(1)
        loss = -((1.0 - logp_t.exp()).clamp(min=0.0) ** gamma) * logp_t
        if w is None:
            return scale * loss.mean()
        wt = w[target]
        return scale * (wt * loss).sum() / wt.sum()
    if target.ndim == 1:  # label smoothing: the same soft target cross-entropy uses
        soft = torch.full_like(logp, label_smoothing / c)
        soft.scatter_add_(1, target[:, None], torch.full_like(logp[:, :1], 1.0 - label_smoothing))
        hard = target
    else:
        soft, hard = target.float(), None
    per_class = -((1.0 - logp.exp()).clamp(min=0.0) ** gamma) * logp * soft
    if w is not None:
        per_class = per_class * w[None, :]
    loss = per_class.sum(1)
    if hard is not None and w is not None:
        return scale * loss.sum() / w[hard].sum()
    return scale * loss.mean()


# ------------------------------------------------------------------ embeddings


def _same(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(same class, off-diagonal) boolean masks ``[B, B]``."""
    same = labels[:, None] == labels[None, :]
    off = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & off, off


def _zero(z: torch.Tensor) -> torch.Tensor:
    return z.sum() * 0.0  # keeps the graph: a batch with nothing to learn from still backpropagates


def contrastive_loss(z: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.5) -> torch.Tensor:
    """Pairwise contrastive loss (Hadsell et al.) over every pair of the batch."""
    z = z.float()
    d = torch.cdist(z, z).clamp(min=0.0)
    pos, off = _same(labels)
    neg = off & ~pos
    pairs = off.sum()
    if pairs == 0:
        return _zero(z)
    loss = (d.pow(2) * pos).sum() + (F.relu(margin - d).pow(2) * neg).sum()
    return loss / pairs


def triplet_loss(z: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.2) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al.): anchors with a positive and a negative in the batch."""
    z = z.float()
    d = torch.cdist(z, z)
    pos, off = _same(labels)
    neg = off & ~pos
    valid = pos.any(1) & neg.any(1)
    if not valid.any():
        return _zero(z)
    hardest_pos = (d * pos).max(1).values
    hardest_neg = d.masked_fill(~neg, float("inf")).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, *, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al.), one view per image; anchors without a positive skipped."""
    z = z.float()
    pos, off = _same(labels)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(~off, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    n_pos = pos.sum(1)
    valid = n_pos > 0
    if not valid.any():
        return _zero(z)
    per_anchor = -(log_prob.masked_fill(~pos, 0.0)).sum(1) / n_pos.clamp(min=1)
    return per_anchor[valid].mean()


# ------------------------------------------------------------------ the objective


class TermTally:
    """Running sums of each loss term over an epoch (on the device: read once, at the epoch's end)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.seen = 0

    def add(self, parts: dict[str, torch.Tensor], n: int) -> None:
        for key, value in parts.items():
            prev = self.sums.get(key)
            value = value.detach().double() * n
            self.sums[key] = value if prev is None else prev + value
        self.seen += n

    def means(self, prefix: str, dist: Any = None) -> dict[str, float]:
        """``{prefix + term: mean}`` (with DDP: over every rank's batches), then empty again."""
        if not self.sums:
            return {}
        stats = {k: float(v) for k, v in self.sums.items()}
        stats["__seen"] = float(self.seen)
        if dist is not None and dist.enabled:
            stats = dist.reduce_stats(stats)
        seen = max(1.0, stats.pop("__seen"))
        self.sums, self.seen = {}, 0
        return {prefix + k: v / seen for k, v in stats.items()}


class Objective:
    """The loss the loop minimises: named terms, weighted and summed."""

    def __init__(self, terms: list[tuple[str, float, LossFn]], *, log_terms: bool) -> None:
        self.terms = terms
        self.log_terms = log_terms

    def __call__(self, out: torch.Tensor, target: torch.Tensor, tally: TermTally | None = None) -> torch.Tensor:
        """The weighted sum for one batch; with a ``tally`` (and ``loss.terms``) each term is also summed."""
        if len(self.terms) == 1 and not self.log_terms:
            return self.terms[0][2](out, target)
        parts = {key: fn(out, target) for key, _w, fn in self.terms}
        total = torch.stack([w * parts[key] for key, w, _fn in self.terms]).sum()
        if tally is not None and self.log_terms:
            tally.add(parts, target.shape[0])
        return total


def _loss_fn(name: str, cfg: TrainerConfig, weight: torch.Tensor | None, num_classes: int,
             mixup: bool, device: torch.device | None) -> LossFn:
    loss = cfg.loss
    smoothing = 0.0 if mixup else loss.label_smoothing  # mixup's soft targets already carry the smoothing
    if name == "ce":
        return lambda out, y: F.cross_entropy(out.float(), y, weight=weight, label_smoothing=smoothing)
    if name == "focal":
        alpha: float | torch.Tensor | None = loss.alpha  # type: ignore[assignment]
        if isinstance(loss.alpha, list):
            if len(loss.alpha) != num_classes:
                raise ConfigError(f"loss.alpha: {len(loss.alpha)} weights for {num_classes} classes")
            # on the training device once, not copied there every batch
            alpha = torch.tensor(loss.alpha, dtype=torch.float32,
                                 device=device or (weight.device if weight is not None else None))
        return lambda out, y: focal_loss(out, y, gamma=loss.gamma,
                                         alpha=alpha.to(out.device) if isinstance(alpha, torch.Tensor)
                                         else alpha, weight=weight, label_smoothing=smoothing)
    if name == "mse":
        return lambda out, y: F.mse_loss(out.float(), y.float().view_as(out))
    if name == "l1":
        return lambda out, y: F.l1_loss(out.float(), y.float().view_as(out))
    if name == "huber":
        return lambda out, y: F.huber_loss(out.float(), y.float().view_as(out), delta=loss.huber_delta)
    if name == "contrastive":
        margin = loss.margin if loss.margin is not None else 0.5
        return lambda out, y: contrastive_loss(out, y, margin=margin)
    if name == "triplet":
        margin = loss.margin if loss.margin is not None else 0.2
        return lambda out, y: triplet_loss(out, y, margin=margin)
    if name == "supcon":
        return lambda out, y: supcon_loss(out, y, temperature=loss.temperature)
    raise ConfigError(f"loss.name: unknown loss {name!r}")  # config validation keeps this from happening


def build_objective(cfg: TrainerConfig, *, weight: torch.Tensor | None = None, num_classes: int = 0,
                    mixup: bool = False, device: torch.device | None = None) -> Objective:
    """The configured loss: ``loss.terms`` when given (each logged alone), else ``loss.name``; its constant
    tensors (focal's per-class alpha) live on ``device``."""
    if cfg.loss.terms:
        keys = loss_term_keys(cfg.loss)
        terms = [(key, t.weight, _loss_fn(t.name, cfg, weight, num_classes, mixup, device))
                 for key, t in zip(keys, cfg.loss.terms, strict=True)]
        return Objective(terms, log_terms=True)
    return Objective([(cfg.loss.name, 1.0, _loss_fn(cfg.loss.name, cfg, weight, num_classes, mixup, device))],
                     log_terms=False)

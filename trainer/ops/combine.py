"""How an ensemble turns its members' class probabilities into one prediction (pure NumPy + scikit-learn).

Every function takes the members' softmax outputs as one array ``probs[M, N, C]`` (M members,
N images, C classes) and returns class scores ``[N, C]`` that sum to 1 per image, so every
combination is scored the same way (:func:`scores`: accuracy, cross-entropy, top-5).

- ``mean``: the mean of the members' softmax outputs.
- ``weighted``: a weighted mean; member ``i`` weighs ``a_i = max(0, log(acc_i / (1 - acc_i)) + log(C - 1))``
  (the SAMME boosting weight: 0 for a member at chance, 1/C; more the fewer errors it makes), with
  ``acc_i`` its validation accuracy clipped to [1e-6, 1 - 1e-6]; weights are normalised to sum to 1
  (all zero: equal weights).
- ``vote``: majority vote of the members' top classes. Scores are ``(votes + mean_prob) / (M + 1)``:
  the class with the most votes wins; a tie goes to the tied class with the highest mean probability
  (then the lowest class index). ``mean_prob`` is below one vote's worth for any class that got votes,
  so it only ever breaks ties, and the scores are a distribution (finite loss, top-5 by votes).
- ``stacking``: a multinomial logistic regression (the meta-learner) on the members' log-probabilities
  (M * C features). Its validation scores are out-of-fold: the validation set is cut into K stratified
  folds and each fold is scored by a meta-learner fitted on the other K - 1 only (:func:`stack_oof`);
  the test set, where there is one, by a meta-learner fitted on all the validation predictions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["COMBINES", "StackResult", "combine", "member_weights", "scores", "stack_features", "stack_folds",
           "stack_oof", "vote_scores"]

COMBINES = ("mean", "weighted", "vote", "stacking")
EPS = 1e-12
STACK_C = 1.0  # the meta-learner's inverse regularisation strength (scikit-learn's default)
STACK_SEED = 0  # fold assignment does not depend on anything but the labels


def scores(probs: np.ndarray, labels: np.ndarray, prefix: str = "val") -> dict[str, float]:
    """``{prefix}_acc``, ``{prefix}_loss`` (mean cross-entropy) and, with more than 5 classes, ``{prefix}_top5``."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, c = probs.shape
    if n == 0:
        return {}
    out = {f"{prefix}_acc": float(np.mean(probs.argmax(1) == labels)),
           f"{prefix}_loss": float(np.mean(-np.log(np.clip(probs[np.arange(n), labels], EPS, None))))}
    if c > 5:
        top5 = np.argsort(-probs, axis=1, kind="stable")[:, :5]
        out[f"{prefix}_top5"] = float(np.mean((top5 == labels[:, None]).any(1)))
    return out


def member_weights(accuracies: np.ndarray | list[float], num_classes: int) -> np.ndarray:
    """The ``weighted`` combination's weights from validation accuracies (SAMME; module docstring)."""
    acc = np.clip(np.asarray(accuracies, dtype=np.float64), 1e-6, 1 - 1e-6)
    alpha = np.maximum(0.0, np.log(acc / (1 - acc)) + np.log(max(1, num_classes - 1)))
    if alpha.sum() <= 0:
        return np.full(len(acc), 1.0 / len(acc))
    return alpha / alpha.sum()


def vote_scores(probs: np.ndarray) -> np.ndarray:
    """Majority vote as scores ``(votes + mean_prob) / (M + 1)`` (ties: highest mean probability)."""
    m, n, c = probs.shape
    votes = np.zeros((n, c), dtype=np.float64)
    for p in probs:
        votes[np.arange(n), p.argmax(1)] += 1.0
    return (votes + probs.mean(0)) / (m + 1)


def stack_features(probs: np.ndarray) -> np.ndarray:
    """The meta-learner's inputs: each image's members' log-probabilities side by side, ``[N, M * C]``."""
    m, n, c = probs.shape
    return np.log(np.clip(probs, EPS, None)).transpose(1, 0, 2).reshape(n, m * c)


def _meta_learner() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=STACK_C, max_iter=2000)


def _predict(meta: Any, x: np.ndarray, num_classes: int) -> np.ndarray:
    """Meta-learner probabilities over all classes (a class absent from its fit data gets 0)."""
    out = np.zeros((len(x), num_classes), dtype=np.float64)
    out[:, meta.classes_] = meta.predict_proba(x)
    return out


@dataclass
class StackResult:
    """Out-of-fold validation scores and how they were made."""

    probs: np.ndarray  # [N, C], each row from a meta-learner that never saw it
    fold: np.ndarray  # [N], the fold that scored each image
    splits: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (fit indices, scored indices)
    test_probs: np.ndarray | None = None  # from a meta-learner fitted on all the validation predictions


def stack_folds(labels: np.ndarray, folds: int) -> int:
    """How many folds stacking can use: ``folds``, at most the smallest class's count (at least 2)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    smallest = int(counts[counts > 0].min()) if counts.any() else 0
    return min(folds, smallest)


def stack_oof(probs: np.ndarray, labels: np.ndarray, *, folds: int = 5,
              test_probs: np.ndarray | None = None) -> StackResult:
    """Stacking scored out of fold: fold ``k`` of the validation set is predicted by a meta-learner
    fitted on the other folds only; ``test_probs`` (``[M, N_test, C]``) by one fitted on them all."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels, dtype=np.int64)
    c = probs.shape[2]
    k = stack_folds(labels, folds)
    if k < 2:
        raise ValueError("stacking needs at least 2 validation images of every class (for 2 folds)")
    x = stack_features(probs)
    out = np.zeros((len(labels), c), dtype=np.float64)
    fold = np.full(len(labels), -1, dtype=np.int64)
    splits = []
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=STACK_SEED)
    for i, (fit_idx, score_idx) in enumerate(cv.split(x, labels)):
        meta = _meta_learner().fit(x[fit_idx], labels[fit_idx])
        out[score_idx] = _predict(meta, x[score_idx], c)
        fold[score_idx] = i
        splits.append((fit_idx, score_idx))
    result = StackResult(probs=out, fold=fold, splits=splits)
    if test_probs is not None and test_probs.shape[1]:
        meta = _meta_learner().fit(x, labels)
        result.test_probs = _predict(meta, stack_features(test_probs), c)
    return result


def combine(method: str, probs: np.ndarray, *, labels: np.ndarray | None = None,
            accuracies: np.ndarray | list[float] | None = None, folds: int = 5,
            test_probs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """(validation scores, test scores or None, details) of ``method`` over ``probs[M, N, C]``.

    ``labels`` (validation) are needed by ``stacking``, ``accuracies`` (validation, per member) by
    ``weighted``. Details: the weights, or the stacking folds.
    """
    if method == "mean":
        return probs.mean(0), None if test_probs is None else test_probs.mean(0), {}
    if method == "weighted":
        if accuracies is None:
            raise ValueError("weighted needs the members' validation accuracies")
        w = member_weights(accuracies, probs.shape[2])
        test = None if test_probs is None else np.tensordot(w, test_probs, axes=1)
        return np.tensordot(w, probs, axes=1), test, {"weights": [float(v) for v in w]}
    if method == "vote":
        return vote_scores(probs), None if test_probs is None else vote_scores(test_probs), {}
    if method == "stacking":
        if labels is None:
            raise ValueError("stacking needs the validation labels")
        st = stack_oof(probs, labels, folds=folds, test_probs=test_probs)
        return st.probs, st.test_probs, {"folds": len(st.splits), "fold": st.fold}
    raise ValueError(f"unknown combination {method!r}; use one of {', '.join(COMBINES)}")

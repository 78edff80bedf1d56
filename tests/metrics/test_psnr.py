import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from sr3_diffusers.metrics.psnr.psnr import PSNR
from tests.metrics.testing_utils import luma, noisy_pairs


def test_rgb_matches_skimage():
    predictions, references = noisy_pairs()
    expected = np.mean([peak_signal_noise_ratio(r, p, data_range=255) for p, r in zip(predictions, references)])
    result = PSNR().compute(predictions=predictions, references=references)
    assert result["psnr"] == pytest.approx(expected, abs=1e-4)
    assert (result["channel"], result["crop_border"]) == ("rgb", 0)


def test_y_channel_with_crop_matches_skimage():
    predictions, references = noisy_pairs()
    expected = np.mean(
        [
            peak_signal_noise_ratio(luma(r)[4:-4, 4:-4], luma(p)[4:-4, 4:-4], data_range=255)
            for p, r in zip(predictions, references)
        ]
    )
    result = PSNR().compute(predictions=predictions, references=references, channel="y", crop_border=4)
    assert result["psnr"] == pytest.approx(expected, abs=1e-4)
    assert (result["channel"], result["crop_border"]) == ("y", 4)


def test_identical_images_give_inf():
    predictions, references = noisy_pairs()
    assert PSNR().compute(predictions=references, references=references)["psnr"] == float("inf")
    # One identical pair makes the mean infinite: the documented convention, no cap.
    mixed = PSNR().compute(predictions=[predictions[0], references[1]], references=references[:2])
    assert mixed["psnr"] == float("inf")


def test_batch_size_invariance():
    predictions, references = noisy_pairs()
    whole = PSNR().compute(predictions=predictions, references=references, channel="y", crop_border=2)
    psnr = PSNR()
    psnr.add_batch(predictions=predictions[:1], references=references[:1])
    psnr.add_batch(predictions=predictions[1:], references=references[1:])
    assert psnr.compute(channel="y", crop_border=2) == whole
    psnr = PSNR()
    for prediction, reference in zip(predictions, references):
        psnr.add(prediction=prediction, reference=reference)
    assert psnr.compute(channel="y", crop_border=2) == whole


def reference_psnr_by_hand(prediction, reference):
    """The reference's `_calc_psnr_per_batch` written out: Y on [0, 1], 8-pixel crop, -10 log10(MSE + 1e-10)."""
    y_prediction, y_reference = luma(prediction) / 255.0, luma(reference) / 255.0
    squared_error = (y_prediction - y_reference)[8:-8, 8:-8] ** 2
    return -10.0 * np.log10(squared_error.mean() + 1e-10)


def test_reference_compatible_matches_hand_computation():
    predictions, references = noisy_pairs()
    expected = np.mean([reference_psnr_by_hand(p, r) for p, r in zip(predictions, references)])
    result = PSNR(config_name="reference_compatible").compute(predictions=predictions, references=references)
    assert result == {"reference_psnr": pytest.approx(expected, abs=1e-10), "channel": "y", "crop_border": 8}
    # Differs from the real Y-channel PSNR with the same crop only by the 1e-10 epsilon.
    real = PSNR().compute(predictions=predictions, references=references, channel="y", crop_border=8)
    assert result["reference_psnr"] == pytest.approx(real["psnr"], abs=1e-4)


def test_reference_compatible_identical_images_give_100_db():
    _, references = noisy_pairs()
    result = PSNR(config_name="reference_compatible").compute(predictions=references, references=references)
    assert result["reference_psnr"] == pytest.approx(100.0)


def test_reference_compatible_refuses_protocol_arguments():
    predictions, references = noisy_pairs()
    with pytest.raises(ValueError, match="fixed protocol"):
        PSNR(config_name="reference_compatible").compute(predictions=predictions, references=references, crop_border=4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(channel="ycbcr"), "`channel` must be 'rgb' or 'y'"),
        (dict(crop_border=-1), "`crop_border` must be a non-negative integer"),
        (dict(crop_border=1.5), "`crop_border` must be a non-negative integer"),
        (dict(crop_border=20), "too small for crop_border=20"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    predictions, references = noisy_pairs()
    with pytest.raises(ValueError, match=message):
        PSNR().compute(predictions=predictions, references=references, **kwargs)


def test_unknown_config_raises():
    with pytest.raises(ValueError, match="Unknown PSNR config 'matlab'"):
        PSNR(config_name="matlab")

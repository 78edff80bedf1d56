import pytest
import torch
import torch.nn.functional as F

from sr3_diffusers import SR3PredictorModel
from sr3_diffusers.models import interpolate_predictors
from tests.testing_utils import random_tiny_predictor, randomise_weights


def test_untrained_predictor_is_exactly_bicubic_upsampling():
    low_res = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0)) * 2 - 1
    predictor = SR3PredictorModel(num_channels=8, num_blocks=2)
    with torch.no_grad():
        output = predictor(low_res).sample
    assert output.shape == (2, 3, 20, 28)
    expected = F.interpolate(low_res, scale_factor=4, mode="bicubic", align_corners=False)
    torch.testing.assert_close(output, expected, atol=0, rtol=0)


def test_trained_predictor_adds_a_pixel_shuffled_correction_computed_at_low_resolution():
    predictor = randomise_weights(SR3PredictorModel(scale=2, num_channels=4, num_blocks=1))
    low_res = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        output = predictor(low_res).sample
        features = predictor.conv_in(low_res)
        block = predictor.blocks[0]
        hidden = features + block.conv2(F.relu(block.conv1(features)))
        hidden = predictor.conv_body(hidden) + features
        correction = F.pixel_shuffle(predictor.conv_out(hidden), 2)
    base = F.interpolate(low_res, scale_factor=2, mode="bicubic", align_corners=False)
    torch.testing.assert_close(output, base + correction)
    assert correction.abs().max() > 0.1
    assert predictor(low_res, return_dict=False)[0].shape == (1, 3, 12, 12)


def test_save_and_load_round_trip(tmp_path):
    predictor = randomise_weights(SR3PredictorModel(num_channels=8, num_blocks=1))
    predictor.save_pretrained(tmp_path)
    loaded = SR3PredictorModel.from_pretrained(tmp_path)
    assert loaded.config.num_channels == 8 and loaded.config.scale == 4
    low_res = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(low_res).sample, predictor(low_res).sample)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scale": 0}, "`scale` must be a positive integer"),
        ({"num_channels": 2.5}, "`num_channels` must be a positive integer"),
        ({"num_blocks": -1}, "`num_blocks` must be a non-negative integer"),
        ({"out_channels": 1}, "must equal `in_channels`"),
    ],
)
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SR3PredictorModel(**kwargs)


def test_wrong_input_shape_names_the_expected_one():
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\)"):
        SR3PredictorModel(num_channels=4, num_blocks=0)(torch.rand(3, 8, 8))


def test_interpolation_ends_at_both_predictors_and_extrapolates_past_the_second():
    faithful, perceptual = random_tiny_predictor(0), random_tiny_predictor(1)
    perceptual.register_to_config(_name_or_path="runs/perceptual/checkpoint-400")  # as loaded: not the architecture
    for alpha, expected in ((0, faithful), (1, perceptual)):
        weights = interpolate_predictors(faithful, perceptual, alpha).state_dict()
        for name, weight in expected.state_dict().items():
            torch.testing.assert_close(weights[name], weight)
    extrapolated = interpolate_predictors(faithful, perceptual, 1.5).state_dict()
    name = "conv_in.weight"
    step = perceptual.state_dict()[name] - faithful.state_dict()[name]
    torch.testing.assert_close(extrapolated[name], perceptual.state_dict()[name] + 0.5 * step)
    with pytest.raises(ValueError, match="same config"):
        interpolate_predictors(faithful, SR3PredictorModel(num_channels=8, num_blocks=1, scale=2), 0.5)
    assert interpolate_predictors(faithful.half(), perceptual.half(), 0.5).dtype == torch.float16

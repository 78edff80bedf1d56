import pytest
import torch

from sr3_diffusers.models import SR3PatchDiscriminatorModel


def test_one_logit_per_patch_and_spectrally_normalised_weights():
    discriminator = SR3PatchDiscriminatorModel(num_channels=8, num_downsamples=2)
    logits = discriminator(torch.rand(2, 3, 32, 48) * 2 - 1).logits
    assert logits.shape == (2, 1, 8, 12)
    with torch.no_grad():
        for module in discriminator.modules():
            if isinstance(module, torch.nn.Conv2d):
                # Spectral normalisation keeps each weight's largest singular value near 1 (power iteration estimate).
                largest = torch.linalg.matrix_norm(module.weight.flatten(1), ord=2)
                assert 0.5 < largest < 1.5


def test_save_and_load_round_trip(tmp_path):
    discriminator = SR3PatchDiscriminatorModel(num_channels=8, num_downsamples=1).eval()
    discriminator.save_pretrained(tmp_path)
    loaded = SR3PatchDiscriminatorModel.from_pretrained(tmp_path).eval()
    images = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images).logits, discriminator(images).logits)
    assert loaded(images, return_dict=False)[0].shape == (1, 1, 8, 8)


@pytest.mark.parametrize("kwargs", [{"num_channels": 0}, {"num_downsamples": 1.5}, {"in_channels": True}])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(ValueError, match="must be a positive integer"):
        SR3PatchDiscriminatorModel(**kwargs)


def test_wrong_input_shape_names_the_expected_one():
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\)"):
        SR3PatchDiscriminatorModel()(torch.zeros(1, 4, 16, 16))

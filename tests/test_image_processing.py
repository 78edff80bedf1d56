import torch

from sr3_diffusers.image_processing import frequency_split, gaussian_blur


def test_gaussian_blur_keeps_flat_images_and_the_mean_and_smooths():
    flat = torch.full((1, 3, 12, 12), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 1.5), flat)
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    blurred = gaussian_blur(images, 1.0)
    assert blurred.shape == images.shape
    assert blurred.std() < 0.6 * images.std()
    torch.testing.assert_close(blurred.mean(), images.mean(), atol=5e-3, rtol=0)


def test_gaussian_blur_of_an_impulse_is_the_normalised_gaussian():
    impulse = torch.zeros(1, 1, 15, 15)
    impulse[..., 7, 7] = 1.0
    taps = torch.exp(-torch.arange(-3, 4, dtype=torch.float32) ** 2 / 2)
    taps = taps / taps.sum()
    expected = torch.zeros(1, 1, 15, 15)
    expected[..., 4:11, 4:11] = taps[:, None] * taps[None, :]
    torch.testing.assert_close(gaussian_blur(impulse, 1.0), expected)


def test_gaussian_blur_works_on_images_smaller_than_its_kernel():
    tiny = torch.rand(1, 3, 2, 3, generator=torch.Generator().manual_seed(1))
    blurred = gaussian_blur(tiny, 2.0)
    assert blurred.shape == tiny.shape and torch.isfinite(blurred).all()
    torch.testing.assert_close(gaussian_blur(torch.full((1, 3, 1, 1), 0.7), 2.0), torch.full((1, 3, 1, 1), 0.7))


def test_frequency_split_is_the_low_band_of_one_image_plus_the_high_band_of_the_other():
    generator = torch.Generator().manual_seed(2)
    low_source, high_source = torch.rand(2, 1, 3, 16, 16, generator=generator)
    expected = gaussian_blur(low_source, 1.4) + high_source - gaussian_blur(high_source, 1.4)
    torch.testing.assert_close(frequency_split(low_source, high_source, 1.4), expected)
    torch.testing.assert_close(frequency_split(high_source, high_source, 1.4), high_source)

"""The model that ships inside the package: it loads offline and upscales a real photo."""

import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import torch
from huggingface_hub import ModelCard
from skimage import data as skimage_data

from sr3_diffusers import SR3DPMSolverScheduler, SR3Pipeline, SR3PredictorModel, SR3UNet2DModel
from sr3_diffusers.image_processing import imresize
from sr3_diffusers.pipelines.pipeline_sr3 import SHIPPED_MODEL, SHIPPED_MODEL_PATH


def small_photo():
    """A 24x32 crop of a real photo (scikit-image's coffee cup, not in the training set's held-out list)."""
    return PIL.Image.fromarray(skimage_data.coffee()[200:224, 260:292])


def test_the_shipped_folder_is_a_complete_pipeline_with_a_model_card():
    index = json.loads((SHIPPED_MODEL_PATH / "model_index.json").read_text())
    assert index["_class_name"] == ["sr3_diffusers", "SR3Pipeline"] and index["scale"] == 4
    components = ("unet", "predictor", "faithful_predictor")
    assert all(index[name] == ["sr3_diffusers", class_name] for name, class_name in zip(components, (
        "SR3UNet2DModel", "SR3PredictorModel", "SR3PredictorModel"
    )))  # fmt: skip
    weights = [SHIPPED_MODEL_PATH / name / "diffusion_pytorch_model.safetensors" for name in components]
    assert sum(path.stat().st_size for path in weights) < 40e6
    card = ModelCard.load(SHIPPED_MODEL_PATH / "README.md")
    assert "super-resolution" in card.data.tags
    for script in ("train_predictor.sh", "train.sh", "train_faithful_more.sh", "train_adversarial_predictor.sh"):
        assert script in card.text
    assert "CC0" in card.text and "tuxpaint" in card.text  # the photos' sources and licences


def test_loads_offline_by_name_and_upscales_a_real_photo_to_exactly_four_times_its_size():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    script = (
        "from sr3_diffusers import SR3Pipeline; "
        f"pipe = SR3Pipeline.from_pretrained({SHIPPED_MODEL!r}); print(type(pipe.unet).__name__, pipe.config.scale)"
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SR3UNet2DModel", "4"]

    pipe = SR3Pipeline.from_pretrained(SHIPPED_MODEL)
    assert isinstance(pipe.unet, SR3UNet2DModel) and isinstance(pipe.scheduler, SR3DPMSolverScheduler)
    pipe.set_progress_bar_config(disable=True)
    photo = small_photo()
    first = pipe(photo, generator=torch.Generator().manual_seed(0)).images[0]
    second = pipe(photo, generator=torch.Generator().manual_seed(0)).images[0]
    assert first.size == (128, 96)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))


def test_the_output_is_consistent_with_the_input_and_sharper_than_bicubic():
    pipe = SR3Pipeline.from_pretrained(SHIPPED_MODEL)
    pipe.set_progress_bar_config(disable=True)
    photo = small_photo()
    low_res = torch.from_numpy(np.asarray(photo)).permute(2, 0, 1).float()[None] / 255
    output = pipe(photo, generator=torch.Generator().manual_seed(0), output_type="pt").images
    bicubic = torch.nn.functional.interpolate(low_res, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)

    def gradient(image):
        return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., 1:] - image[..., :-1]).abs().mean()

    assert (imresize(output, 0.25) - low_res).square().mean() < 2 * (imresize(bicubic, 0.25) - low_res).square().mean()
    assert gradient(output) > 1.2 * gradient(bicubic)


def test_the_faithful_predictor_alone_is_more_faithful_than_bicubic_and_the_default_on_a_real_photo():
    """`strength=0` returns the faithful predictor's image: no sampling, and a better PSNR than bicubic and than the
    default (perceptual) output on a photo it never saw (a 96x128 crop of scikit-image's coffee, downscaled x4 as in
    training)."""
    pipe = SR3Pipeline.from_pretrained(SHIPPED_MODEL)
    pipe.set_progress_bar_config(disable=True)
    assert isinstance(pipe.faithful_predictor, SR3PredictorModel) and pipe.config.residual_scale > 0
    high_res = torch.from_numpy(skimage_data.coffee()[160:256, 224:352].copy()).permute(2, 0, 1).float()[None] / 255
    low_res = imresize(high_res, 0.25).clamp(0, 1)
    default = pipe(low_res, generator=torch.Generator().manual_seed(0), output_type="pt").images
    predicted = pipe(low_res, strength=0, output_type="pt").images
    bicubic = torch.nn.functional.interpolate(low_res, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)

    def psnr(image):
        return 10 * torch.log10(1 / (image - high_res).square().mean()).item()

    assert pipe.num_timesteps == 0
    assert psnr(predicted) > psnr(bicubic) + 0.5
    assert psnr(predicted) > psnr(default)


def test_bfloat16_agrees_with_float32_to_35_db():
    """A bfloat16 pipeline stays within 35 dB PSNR of float32 (measured: 68 dB on this crop; 45-60 dB in
    benchmarks/README.md): no NaNs, no colour shift."""
    photo = small_photo()
    outputs = {}
    for dtype in (torch.float32, torch.bfloat16):
        pipe = SR3Pipeline.from_pretrained(SHIPPED_MODEL, dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        outputs[dtype] = pipe(photo, generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert np.isfinite(outputs[torch.bfloat16]).all()
    mse = np.mean((outputs[torch.bfloat16] - outputs[torch.float32]) ** 2)
    assert 10 * np.log10(1 / mse) > 35

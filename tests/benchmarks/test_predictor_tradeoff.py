"""benchmarks/predictor_tradeoff.py on a tiny pipeline with two random predictors and 2 small photos (LR 8 -> 32)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from sr3_diffusers import SR3Pipeline, SR3Scheduler, SR3UNet2DModel
from sr3_diffusers.evaluation import PairMetrics, load_pairs, to_float, to_uint8
from tests.testing_utils import TINY_UNET_CONFIG, random_tiny_predictor, randomise_weights


BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def tradeoff(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports quality.py beside it
    spec = importlib.util.spec_from_file_location("predictor_tradeoff", BENCHMARKS / "predictor_tradeoff.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "predictor_tradeoff", module)
    spec.loader.exec_module(module)
    return module


def test_self_ensemble_of_a_flip_and_rotation_equivariant_upscaler_is_that_upscaler(tradeoff):
    low_res = torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(1))

    def nearest(images):
        return F.interpolate(images, scale_factor=4, mode="nearest")

    torch.testing.assert_close(tradeoff.self_ensemble(nearest, low_res), nearest(low_res))
    # A non-equivariant upscaler (a fixed horizontal shift) is averaged with its turned copies.
    shifted = tradeoff.self_ensemble(lambda images: nearest(images).roll(1, dims=-1), low_res)
    assert not torch.allclose(shifted, nearest(low_res).roll(1, dims=-1))


def test_rows_are_the_predictor_images_the_pipeline_returns(tradeoff, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    PIL.Image.fromarray(data.astronaut()[100:160, 150:200]).save(root / "astronaut.png")
    PIL.Image.fromarray(data.coffee()[100:140, 200:250]).save(root / "coffee.png")
    (tmp_path / "heldout.txt").write_text("astronaut.png\ncoffee.png\n")
    torch.manual_seed(0)
    unet = randomise_weights(SR3UNet2DModel(**TINY_UNET_CONFIG)).eval()
    faithful, perceptual = random_tiny_predictor(0), random_tiny_predictor(1)
    pipe = SR3Pipeline(unet=unet, scheduler=SR3Scheduler(num_inference_steps=2), scale=4, predictor=perceptual,
                       faithful_predictor=faithful, frequency_split_sigma=1.0)  # fmt: skip
    pipe.save_pretrained(tmp_path / "model")

    args = tradeoff.parse_args(["--model", str(tmp_path / "model"), "--heldout", str(tmp_path / "heldout.txt"),
                                "--photos_root", str(root), "--lr_size", "8"]
                               + ["--alphas", "0", "1", "--sigmas", "1"])  # fmt: skip
    results = tradeoff.measure(args)
    assert list(results) == ["bicubic", "interpolate 0", "interpolate 1", "split 1", "self-ensemble"]
    assert results["bicubic"]["delta_psnr_rgb"] == 0

    # "interpolate 0" is the faithful predictor's strength=0 image, scored by PairMetrics.
    dataset = tradeoff.heldout_dataset(tmp_path / "heldout.txt", root)
    pairs, _ = load_pairs(dataset, 4, center_crop=32, root=str(root))
    images = pipe(torch.stack([to_float(pair.low_res) for pair in pairs]), strength=0, output_type="pt").images
    metrics = PairMetrics(4)
    scores = [metrics(out, pair.high_res, pair.low_res) for out, pair in zip(to_uint8(images), pairs)]
    expected = np.mean([score["lpips"] for score in scores])
    assert results["interpolate 0"]["lpips"] == pytest.approx(expected, rel=1e-6)
    assert results["interpolate 1"]["lpips"] != pytest.approx(expected, rel=1e-3)

    # --split_alpha takes the split's high frequencies from that interpolated predictor.
    args = tradeoff.parse_args(["--model", str(tmp_path / "model"), "--heldout", str(tmp_path / "heldout.txt"),
                                "--photos_root", str(root), "--lr_size", "8", "--alphas", "--sigmas", "1"]
                               + ["--split_alpha", "1.5", "--no_self_ensemble"])  # fmt: skip
    extrapolated = tradeoff.measure(args)
    assert list(extrapolated) == ["bicubic", "split 1, 1.5"]
    assert extrapolated["split 1, 1.5"]["lpips"] != pytest.approx(results["split 1"]["lpips"], rel=1e-3)


def test_a_model_without_both_predictors_is_refused(tradeoff, tmp_path):
    torch.manual_seed(0)
    pipe = SR3Pipeline(unet=SR3UNet2DModel(**TINY_UNET_CONFIG), scheduler=SR3Scheduler())
    pipe.save_pretrained(tmp_path / "model")
    with pytest.raises(SystemExit, match="needs both a predictor and a faithful_predictor"):
        tradeoff.measure(tradeoff.parse_args(["--model", str(tmp_path / "model")]))

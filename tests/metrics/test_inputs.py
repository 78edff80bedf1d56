"""What every metric module accepts and refuses (the check in `image_inputs.py`), loading by path, the examples."""

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

import sr3_diffusers.metrics
from sr3_diffusers.metrics.consistency import consistency
from sr3_diffusers.metrics.fid import fid
from sr3_diffusers.metrics.inception_score import inception_score
from sr3_diffusers.metrics.lpips import lpips
from sr3_diffusers.metrics.psnr import psnr
from sr3_diffusers.metrics.sharpness import sharpness
from sr3_diffusers.metrics.ssim import ssim


METRICS_DIR = Path(sr3_diffusers.metrics.__file__).parent
REPO_ROOT = METRICS_DIR.parents[1]

IMAGE = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
LOW_RES = IMAGE[::4, ::4]


def paired_modules():
    """Each paired module with a valid (prediction, reference) for it."""
    return [
        pytest.param(psnr.PSNR, IMAGE, IMAGE, id="psnr"),
        pytest.param(ssim.SSIM, IMAGE, IMAGE, id="ssim"),
        pytest.param(lpips.LPIPS, IMAGE, IMAGE, id="lpips"),
        pytest.param(sharpness.Sharpness, IMAGE, IMAGE, id="sharpness"),
        pytest.param(consistency.Consistency, IMAGE, LOW_RES, id="consistency"),
        pytest.param(fid.FID, IMAGE, IMAGE, id="fid"),
    ]


BAD_IMAGES = [
    pytest.param(IMAGE / 255.0, r"has dtype float64; the metrics take uint8-quantised images", id="float"),
    pytest.param(np.full((32, 32, 3), 300), r"has values in \[300, 300\], outside the uint8 range", id="out_of_range"),
    pytest.param(IMAGE.astype(bool), r"has dtype bool", id="bool"),
    pytest.param(np.zeros((32, 32, 4), np.uint8), r"must be an RGB image of shape \(H, W, 3\).*4\)", id="rgba"),
    pytest.param(IMAGE[..., 0], r"must be an RGB image of shape \(H, W, 3\).*\(32, 32\)", id="grey"),
    pytest.param(IMAGE.transpose(2, 0, 1), r"must be an RGB image.*got shape \(3, 32, 32\)", id="channels_first"),
    pytest.param(IMAGE[:0], r"is empty", id="empty"),
]


@pytest.mark.parametrize("module_class, prediction, reference", paired_modules())
@pytest.mark.parametrize("bad_image, message", BAD_IMAGES)
def test_bad_predictions_raise(module_class, prediction, reference, bad_image, message):
    with pytest.raises(ValueError, match=r"`predictions\[1\]` " + message):
        module_class().add_batch(predictions=[prediction, bad_image], references=[reference, reference])


@pytest.mark.parametrize("module_class, prediction, reference", paired_modules())
def test_bad_references_raise(module_class, prediction, reference):
    with pytest.raises(ValueError, match=r"`references\[0\]` has dtype float32"):
        module_class().compute(predictions=[prediction], references=[reference.astype(np.float32)])


@pytest.mark.parametrize("module_class, prediction, reference", paired_modules())
def test_unpaired_batches_raise(module_class, prediction, reference):
    with pytest.raises(ValueError, match="2 predictions and 1 references"):
        module_class().add_batch(predictions=[prediction, prediction], references=[reference])


@pytest.mark.parametrize("module_class, prediction, reference", paired_modules())
def test_a_single_image_is_not_a_batch(module_class, prediction, reference):
    with pytest.raises(ValueError, match=r"`predictions` must be a batch"):
        module_class().add_batch(predictions=prediction, references=reference)


@pytest.mark.parametrize("module_class", [psnr.PSNR, ssim.SSIM, lpips.LPIPS, sharpness.Sharpness])
def test_shape_mismatch_raises(module_class):
    message = r"`predictions\[0\]` has shape \(32, 32, 3\) but `references\[0\]` has shape \(32, 31, 3\)"
    with pytest.raises(ValueError, match=message):
        module_class().compute(predictions=[IMAGE], references=[IMAGE[:, :31]])


@pytest.mark.parametrize("bad_image, message", BAD_IMAGES)
def test_inception_score_refuses_bad_images(bad_image, message):
    with pytest.raises(ValueError, match=message):
        inception_score.InceptionScore().add_batch(predictions=[IMAGE, bad_image])


def test_other_layouts_give_the_uint8_result():
    """Integer arrays in [0, 255], CPU torch tensors, PIL images and an (N, H, W, 3) array are the same images."""
    other = np.random.default_rng(1).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    expected = psnr.PSNR().compute(predictions=[IMAGE, other], references=[other, IMAGE])
    layouts = [
        ([IMAGE.astype(np.int64), other.tolist()], [other.astype(np.int32), IMAGE]),
        ([torch.from_numpy(IMAGE), torch.from_numpy(other)], [PIL.Image.fromarray(other), PIL.Image.fromarray(IMAGE)]),
        (np.stack([IMAGE, other]), np.stack([other, IMAGE])),
    ]
    for predictions, references in layouts:
        assert psnr.PSNR().compute(predictions=predictions, references=references) == expected


LOAD_SCRIPT = """
import json, sys
import numpy as np
import evaluate

metrics_dir = sys.argv[1]
image = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
other = image[::-1].copy()
pairs = dict(predictions=[image], references=[other])


def load(name, *config):
    return evaluate.load(metrics_dir + "/" + name, *config)


results = {
    "psnr_file": evaluate.load(metrics_dir + "/psnr/psnr.py").compute(**pairs),
    "psnr": load("psnr").compute(**pairs),
    "ssim": load("ssim", "reference_compatible").compute(**pairs),
    "lpips": load("lpips").compute(**pairs),
    "sharpness": load("sharpness").compute(**pairs, measure="spectral"),
    "consistency": load("consistency").compute(predictions=[image], references=[image[::4, ::4]]),
    "fid": type(load("fid", "reference_compatible")).__name__,
}
try:
    load("inception_score").compute(predictions=[image])
except ValueError as error:
    results["inception_score"] = str(error)
print(json.dumps(results))
"""


def test_modules_load_offline_by_path(tmp_path):
    environment = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_EVALUATE_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_MODULES_CACHE=str(tmp_path / "modules"),
        HF_METRICS_CACHE=str(tmp_path / "metrics"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    )
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(METRICS_DIR)], env=environment, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    expected_psnr = psnr.PSNR().compute(predictions=[IMAGE], references=[IMAGE[::-1]])
    assert results["psnr"] == results["psnr_file"] == expected_psnr
    expected_ssim = ssim.SSIM(config_name="reference_compatible").compute(predictions=[IMAGE], references=[IMAGE[::-1]])
    assert results["ssim"] == expected_ssim
    assert results["lpips"] == lpips.LPIPS().compute(predictions=[IMAGE], references=[IMAGE[::-1]])
    expected_sharpness = sharpness.Sharpness().compute(
        predictions=[IMAGE], references=[IMAGE[::-1]], measure="spectral"
    )
    assert results["sharpness"] == expected_sharpness
    assert results["consistency"]["scale"] == 4
    assert results["fid"] == "FID"
    assert "no classifier head" in results["inception_score"]


@pytest.mark.parametrize(
    "module", [psnr, ssim, lpips, sharpness, consistency, fid, inception_score], ids=lambda module: module.__name__
)
def test_docstring_examples_hold(module, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # the examples load the modules by their path from the repository root
    runner = doctest.DocTestRunner()
    for example in doctest.DocTestFinder().find(module):
        runner.run(example)
    assert runner.summarize(verbose=False).failed == 0

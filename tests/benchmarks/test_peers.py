"""benchmarks/peers.py without the peers installed: bicubic and a tiny random SR3 model on 2 small photos, at 8 -> 32
pixels (the tiny UNet's attention makes 256-pixel outputs slow)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from skimage import data

from sr3_diffusers import SR3Pipeline, SR3Scheduler, SR3UNet2DModel
from sr3_diffusers.data import center_crop_offsets
from sr3_diffusers.evaluation import PairMetrics, bicubic_upscale
from tests.testing_utils import TINY_UNET_CONFIG, randomise_weights


BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def peers(monkeypatch):
    """benchmarks/peers.py as a module, with every peer package reported as not installed."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # peers.py imports quality.py beside it
    spec = importlib.util.spec_from_file_location("peers", BENCHMARKS / "peers.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "peers", module)
    spec.loader.exec_module(module)
    peer_packages = {name for method in module.METHODS.values() for name in method.packages}
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        module.importlib.util, "find_spec", lambda name, *a: None if name in peer_packages else find_spec(name, *a)
    )
    return module


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """peers.py sets torch's thread count to --threads; give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    PIL.Image.fromarray(data.astronaut()[100:160, 150:200]).save(folder / "astronaut.png")
    PIL.Image.fromarray(data.coffee()[100:140, 200:250]).save(folder / "coffee.png")
    return folder


@pytest.fixture
def tiny_model(tmp_path):
    torch.manual_seed(0)
    unet = randomise_weights(SR3UNet2DModel(**TINY_UNET_CONFIG)).eval()
    pipe = SR3Pipeline(unet=unet, scheduler=SR3Scheduler(num_inference_steps=2), scale=4)
    pipe.register_to_config(strength=0.5, enforce_consistency=True)
    pipe.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_table_has_a_row_per_method_and_says_how_to_install_missing_peers(peers, photos, tiny_model, tmp_path, capsys):
    args = peers.parse_args(["--photos", str(photos), "--model", str(tiny_model), "--json", str(tmp_path / "peers.json")]
                            + ["--threads", "1", "--lr_size", "8"])  # fmt: skip
    assert peers.main(args) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == (
        "| method | PSNR RGB | ΔPSNR RGB vs bicubic | PSNR Y | LPIPS | consistency | sharpness | s / image | "
        "time / SPAN's |"
    )
    rows = [line.split(" | ")[0].lstrip("| ") for line in table[2:]]
    assert rows == [
        "bicubic",
        "SR3, its default settings",
        "SR3, pure sampling (strength 1, no projection)",
        "SR3, faithful (strength 0)",
    ]
    assert lines[0].startswith("2 photos of ") and "LR 8 -> HR 32, LR by PIL bicubic of the HR crop" in lines[0]
    for label in ("SPAN x4 (ch52)", "RealSR DF2K x4", "Real-ESRGAN x4plus"):
        assert f"- {label}: not run: " in captured.out
        assert f"peers.py: {label} left out: " in captured.err
    assert 'pip install -e ".[peers]"' in captured.out
    assert "peers.py: bicubic: PSNR RGB " in captured.err  # each row's figures as soon as it is done

    record = json.loads((tmp_path / "peers.json").read_text())
    assert list(record["methods"]) == ["bicubic", "default", "pure", "faithful"]
    assert set(record["skipped"]) == {"span", "realsr", "realesrgan"}
    assert sorted(record["photos"]) == ["astronaut", "coffee"]
    bicubic = record["methods"]["bicubic"]
    # The bicubic row is PairMetrics of the pipeline's condition of the PIL-downscaled HR crop.
    top, left = center_crop_offsets(40 // 4, 50 // 4, 8)  # the centred 8-pixel crop of the LR grid
    high_res = np.asarray(PIL.Image.open(photos / "coffee.png"))[4 * top : 4 * top + 32, 4 * left : 4 * left + 32]
    low_res = np.array(PIL.Image.fromarray(high_res).resize((8, 8), PIL.Image.BICUBIC))
    expected = PairMetrics(4)(bicubic_upscale(low_res, 4), high_res, low_res)
    for key in ("psnr_rgb", "psnr_y", "lpips", "consistency", "sharpness_gradient"):
        assert bicubic["per_image"]["coffee"][key] == pytest.approx(expected[key], rel=1e-9), key
    assert bicubic["mean"]["psnr_rgb"] == pytest.approx(
        np.mean([values["psnr_rgb"] for values in bicubic["per_image"].values()]), rel=1e-12
    )
    # Default (strength 0.5 with projection) and pure sampling are different runs of the model.
    default, pure = record["methods"]["default"], record["methods"]["pure"]
    assert default["mean"]["psnr_rgb"] != pure["mean"]["psnr_rgb"]
    assert default["mean"]["consistency"] < pure["mean"]["consistency"]  # the projection keeps the LR input
    assert all(values["seconds"] > 0 for values in pure["per_image"].values())
    # The table's first data row is bicubic's mean, to 3 decimals, and its difference to itself.
    assert table[2].startswith(f"| bicubic | {bicubic['mean']['psnr_rgb']:.3f} | +0.00 |")


def test_limit_and_matlab_downsampling_use_the_projects_pairs(peers, photos, capsys):
    args = peers.parse_args(
        ["--photos", str(photos), "--methods", "bicubic", "--limit", "1", "--downsampling", "matlab", "--lr_size", "8"]
    )
    assert peers.main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 photos of ") and "LR 8 -> HR 32, LR by MATLAB bicubic (data.degrade)" in out
    assert len([line for line in out.splitlines() if line.startswith("| bicubic |")]) == 1


def test_bad_arguments_are_one_line_errors(peers, tmp_path, capsys):
    assert peers.main(peers.parse_args(["--photos", str(tmp_path / "missing"), "--methods", "bicubic"])) == 2
    assert capsys.readouterr().err.strip() == f"peers.py: error: --photos {tmp_path / 'missing'}: no such folder."
    with pytest.raises(SystemExit):
        peers.parse_args(["--limit", "0"])
    assert "--limit must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        peers.parse_args(["--lr_size", "7"])
    assert "--lr_size 7 is too small: the metrics need HR crops of at least 31 pixels" in capsys.readouterr().err

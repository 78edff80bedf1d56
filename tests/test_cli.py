import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from skimage import data as skimage_data

from sr3_diffusers import SR3DPMSolverScheduler
from sr3_diffusers.cli import upscale_main


@pytest.fixture
def model_dir(tiny_pipeline, tmp_path):
    path = tmp_path / "model"
    tiny_pipeline.save_pretrained(path)
    return path


@pytest.fixture
def photos(tmp_path):
    """Three small real photos (crops of scikit-image's bundled ones) in a folder, of different sizes."""
    folder = tmp_path / "photos"
    folder.mkdir()
    PIL.Image.fromarray(skimage_data.astronaut()[100:112, 200:216]).save(folder / "astronaut.png")
    PIL.Image.fromarray(skimage_data.coffee()[150:160, 300:310]).save(folder / "coffee.jpg", quality=95)
    PIL.Image.fromarray(skimage_data.camera()[200:208, 200:214]).save(folder / "camera.png")  # greyscale
    return folder


def upscale(*args):
    return upscale_main([str(arg) for arg in args])


def test_a_file_is_upscaled_to_exactly_four_times_its_size(model_dir, photos, tmp_path):
    assert upscale(photos / "astronaut.png", "-o", tmp_path / "out.png", "--model", model_dir) == 0
    with PIL.Image.open(tmp_path / "out.png") as image:
        assert image.size == (64, 48) and image.mode == "RGB"


def test_default_output_goes_next_to_each_input(model_dir, photos):
    assert upscale(photos / "coffee.jpg", photos / "camera.png", "--model", model_dir) == 0
    assert PIL.Image.open(photos / "coffee_x4.png").size == (40, 40)
    assert PIL.Image.open(photos / "camera_x4.png").size == (56, 32)


def test_a_folder_and_a_glob_with_an_output_folder_and_a_pattern(model_dir, photos, tmp_path):
    assert upscale(photos, "-o", tmp_path / "out", "--model", model_dir, "--batch-size", "2") == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["astronaut_x4.png", "camera_x4.png", "coffee_x4.png"]
    assert upscale(photos / "*.png", "-o", tmp_path / "sr" / "{stem}-sr{scale}.png", "--model", model_dir) == 0
    assert sorted(os.listdir(tmp_path / "sr")) == ["astronaut-sr4.png", "camera-sr4.png"]


def test_same_seed_same_output_whatever_the_batch(model_dir, photos, tmp_path):
    upscale(photos / "astronaut.png", "-o", tmp_path / "alone.png", "--model", model_dir, "--seed", "7")
    upscale(photos, "-o", tmp_path / "batch", "--model", model_dir, "--seed", "7", "--batch-size", "3")
    alone = np.asarray(PIL.Image.open(tmp_path / "alone.png"), dtype=np.int16)
    batched = np.asarray(PIL.Image.open(tmp_path / "batch" / "astronaut_x4.png"), dtype=np.int16)
    # Batched with larger images the canvas is padded, which only touches the border pixels.
    assert np.abs(alone[4:-4, 4:-4] - batched[4:-4, 4:-4]).max() <= 1


def test_ddim_sampler_gives_the_pipelines_ddim_output_every_time(tiny_pipeline, model_dir, photos, tmp_path):
    # On the CPU, where the expected output below is computed, even if a GPU is visible; RGB, as the pipeline gives.
    args = [photos / "camera.png", "--model", model_dir, "--num-inference-steps", "2", "--device", "cpu", "--grey-to-rgb"]
    assert upscale(*args, "--sampler", "ddim", "-o", tmp_path / "ddim.png") == 0
    assert upscale(*args, "--sampler", "ddim", "-o", tmp_path / "ddim_again.png") == 0
    assert upscale(*args, "-o", tmp_path / "own_scheduler.png") == 0
    ddim = np.asarray(PIL.Image.open(tmp_path / "ddim.png"))
    assert np.array_equal(ddim, np.asarray(PIL.Image.open(tmp_path / "ddim_again.png")))
    # The pipeline's output with a DDIM scheduler built from its own config, not that of its own (ancestral) scheduler
    tiny_pipeline.scheduler = SR3DPMSolverScheduler.from_config(tiny_pipeline.scheduler.config, algorithm_type="ddim")
    expected = tiny_pipeline(
        PIL.Image.open(photos / "camera.png"), num_inference_steps=2, generator=[torch.Generator().manual_seed(0)]
    ).images[0]
    assert np.array_equal(ddim, np.asarray(expected))
    assert not np.array_equal(ddim, np.asarray(PIL.Image.open(tmp_path / "own_scheduler.png")))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--eta", "0.5"], "eta=0.5 needs the ddim or dpmsolver++ sampler"),
        (["--sampler", "ancestral", "--eta", "0.5"], "eta applies to the ddim and dpmsolver++ samplers; ancestral"),
        (["--sampler", "dpmsolver++", "--eta", "1.5"], "eta must be a number in [0, 1], got 1.5"),
        (["--sampler", "euler"], "argument --sampler: invalid choice: 'euler'"),
    ],
)
def test_bad_sampler_flags_exit_before_loading_the_model(photos, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        upscale(photos, "--model", "never-loaded", *args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_corrupt_file_is_reported_in_one_line_and_the_rest_are_done(model_dir, photos, capsys):
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    assert upscale(photos, "--model", model_dir) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "broken.png" in line]
    assert len(errors) == 1 and "cannot read image" in errors[0]
    assert {"astronaut_x4.png", "camera_x4.png", "coffee_x4.png"} <= set(os.listdir(photos))
    assert "broken_x4.png" not in os.listdir(photos)


def test_an_existing_output_is_kept_unless_overwrite(model_dir, photos, tmp_path, capsys):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    assert upscale(photos / "astronaut.png", "-o", target, "--model", model_dir) == 1
    assert target.read_bytes() == b"precious"
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert upscale(photos / "astronaut.png", "-o", target, "--model", model_dir, "--overwrite") == 0
    assert PIL.Image.open(target).size == (64, 48)


def test_an_input_is_never_overwritten_even_with_overwrite(model_dir, photos, capsys):
    before = (photos / "camera.png").read_bytes()
    assert upscale(photos / "camera.png", "-o", photos / "camera.png", "--model", model_dir, "--overwrite") == 1
    assert (photos / "camera.png").read_bytes() == before
    assert "is an input file" in capsys.readouterr().err


def test_missing_inputs_and_a_single_file_output_for_many_inputs(model_dir, photos, tmp_path, capsys):
    assert upscale(tmp_path / "nothing-here.png", "--model", model_dir) == 1
    assert "no such file, folder or matching glob" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="names one file but 3 inputs"):
        upscale(photos, "-o", tmp_path / "one.png", "--model", model_dir)


def test_python_dash_m_runs_the_same_command(model_dir, photos, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sr3_diffusers", str(photos / "camera.png"), "-o", str(tmp_path / "m.png"),
         "--model", str(model_dir), "--num-inference-steps", "2", "--dtype", "bfloat16"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert PIL.Image.open(tmp_path / "m.png").size == (56, 32)


def test_tiled_upscaling_writes_the_same_size(model_dir, photos, tmp_path):
    args = ("--model", model_dir, "--tile-size", "32", "--tile-overlap", "8", "--tile-batch-size", "2")
    assert upscale(photos / "astronaut.png", "-o", tmp_path / "tiled.png", *args) == 0
    assert PIL.Image.open(tmp_path / "tiled.png").size == (64, 48)


def test_a_bad_tile_size_is_reported_for_the_image(model_dir, photos, tmp_path, capsys):
    assert upscale(photos / "astronaut.png", "-o", tmp_path / "t.png", "--model", model_dir, "--tile-size", "31") == 1
    assert "tile_size" in capsys.readouterr().err
    assert not (tmp_path / "t.png").exists()

import errno
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from skimage import data as skimage_data

from sr3_diffusers import SR3DPMSolverScheduler, SR3Pipeline, cli
from sr3_diffusers.cli import expand_inputs, upscale_main
from tests.testing_utils import random_tiny_predictor


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
    args = [photos / "camera.png", "--model", model_dir, "--num-inference-steps", "2", "--device", "cpu"]
    args.append("--grey-to-rgb")
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


def test_faithful_is_the_faithful_predictor_alone_where_the_model_has_one(tiny_pipeline, photos, tmp_path, capsys):
    """--faithful writes the image of the model's faithful_predictor alone (no sampling), else of its predictor alone;
    a model without a predictor is one line."""
    perceptual, faithful = random_tiny_predictor(seed=1), random_tiny_predictor(seed=2)
    tiny_pipeline.register_modules(predictor=perceptual)
    tiny_pipeline.register_to_config(residual_scale=0.1)
    tiny_pipeline.save_pretrained(tmp_path / "predictor_only")
    tiny_pipeline.register_modules(faithful_predictor=faithful)
    tiny_pipeline.save_pretrained(tmp_path / "with_faithful")
    tiny_pipeline.register_modules(faithful_predictor=None)
    low_res = PIL.Image.open(photos / "astronaut.png")
    for model, predictor in (("with_faithful", faithful), ("predictor_only", perceptual)):
        output = tmp_path / f"{model}.png"
        assert upscale(photos / "astronaut.png", "--model", tmp_path / model, "--faithful", "-o", output) == 0
        tiny_pipeline.register_modules(predictor=predictor)
        expected = tiny_pipeline(low_res, strength=0).images[0]
        assert np.array_equal(np.asarray(PIL.Image.open(output)), np.asarray(expected)), model
    outputs = [np.asarray(PIL.Image.open(tmp_path / name)) for name in ("with_faithful.png", "predictor_only.png")]
    assert not np.array_equal(*outputs)

    tiny_pipeline.register_modules(predictor=None)
    tiny_pipeline.save_pretrained(tmp_path / "plain_sr3")
    capsys.readouterr()
    assert upscale(photos / "astronaut.png", "--model", tmp_path / "plain_sr3", "--faithful", "-o", tmp_path / "x.png") == 1
    error = capsys.readouterr().err
    assert "--faithful: --model" in error and "has no predictor" in error and len(error.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--faithful", "--num-inference-steps", "4"], "--faithful runs no sampling: drop --sampler"),
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


# Files as users have them: phone JPEGs, profiles, transparency, 16-bit scans, formats, scales, folders, failures.

ORIENTATION, MAKE = 0x0112, 0x010F


@pytest.mark.parametrize(
    "orientation, transpose", [(6, PIL.Image.Transpose.ROTATE_270), (8, PIL.Image.Transpose.ROTATE_90)]
)
def test_a_phone_jpeg_is_upscaled_upright(model_dir, tmp_path, orientation, transpose):
    stored = PIL.Image.fromarray(skimage_data.astronaut()[100:108, 200:216])  # stored 16 wide, 8 high
    exif = stored.getexif()
    exif[ORIENTATION], exif[MAKE] = orientation, "Phone"
    stored.save(tmp_path / "portrait.jpg", exif=exif, quality=95)
    with PIL.Image.open(tmp_path / "portrait.jpg") as decoded:
        decoded.transpose(transpose).save(tmp_path / "upright.png")  # what a viewer shows, losslessly
    assert upscale(tmp_path / "portrait.jpg", "-o", tmp_path / "out.png", "--model", model_dir) == 0
    assert upscale(tmp_path / "upright.png", "-o", tmp_path / "expected.png", "--model", model_dir) == 0
    with PIL.Image.open(tmp_path / "out.png") as output:
        assert output.size == (32, 64)
        assert ORIENTATION not in output.getexif() and output.getexif()[MAKE] == "Phone"
        np.testing.assert_array_equal(np.asarray(output), np.asarray(PIL.Image.open(tmp_path / "expected.png")))


def test_an_srgb_jpeg_keeps_its_profile_exif_and_print_size(model_dir, tmp_path):
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo = PIL.Image.fromarray(skimage_data.coffee()[150:160, 300:310])
    exif = photo.getexif()
    exif[MAKE] = "Camera"
    photo.save(tmp_path / "photo.jpg", icc_profile=profile, exif=exif, dpi=(300, 300), quality=95)
    assert upscale(tmp_path / "photo.jpg", "-o", tmp_path / "out", "--ext", "jpg", "--model", model_dir) == 0
    with PIL.Image.open(tmp_path / "out" / "photo_x4.jpg") as output:
        assert output.format == "JPEG" and output.size == (40, 40)
        assert output.info["icc_profile"] == profile
        assert output.getexif()[MAKE] == "Camera"
        assert output.info["dpi"] == (1200, 1200)


def test_rgba_keeps_transparency_and_transparent_pixels_stay_transparent(model_dir, tmp_path):
    rgba = np.zeros((12, 16, 4), dtype=np.uint8)
    rgba[..., :3] = skimage_data.astronaut()[100:112, 200:216]
    rgba[:, 8:, 3] = 255  # left half transparent, right half opaque
    PIL.Image.fromarray(rgba).save(tmp_path / "logo.png")
    assert upscale(tmp_path / "logo.png", "-o", tmp_path / "out.png", "--model", model_dir) == 0
    alpha = np.asarray(PIL.Image.open(tmp_path / "out.png").convert("RGBA"))[..., 3]
    assert PIL.Image.open(tmp_path / "out.png").mode == "RGBA" and alpha.shape == (48, 64)
    # Away from the edge (bicubic reaches 2 input pixels = 8 output pixels), exactly transparent and exactly opaque.
    assert (alpha[:, :24] == 0).all() and (alpha[:, 40:] == 255).all()
    args = ("--model", model_dir, "--alpha-upsampler", "model")
    assert upscale(tmp_path / "logo.png", "-o", tmp_path / "model.png", *args) == 0
    model_alpha = np.asarray(PIL.Image.open(tmp_path / "model.png"))[..., 3]
    assert model_alpha.shape == (48, 64) and not np.array_equal(model_alpha, alpha)


def test_sixteen_bit_greyscale_comes_out_sixteen_bit_and_grey_stays_grey(model_dir, photos, tmp_path):
    scan = (skimage_data.camera()[200:208, 200:214].astype(np.uint16) * 257 + 100)
    PIL.Image.fromarray(scan).save(tmp_path / "scan.png")
    assert upscale(tmp_path / "scan.png", "-o", tmp_path / "out.png", "--model", model_dir) == 0
    with PIL.Image.open(tmp_path / "out.png") as output:
        assert output.mode == "I;16" and output.size == (56, 32)
        values = np.asarray(output)
        assert (values % 257 != 0).any()  # precision beyond 8 bits
    assert upscale(photos / "camera.png", "-o", tmp_path / "grey.png", "--model", model_dir) == 0
    assert PIL.Image.open(tmp_path / "grey.png").mode == "L"


@pytest.mark.parametrize(
    "name, file_format", [("x.jpg", "JPEG"), ("x.jpeg", "JPEG"), ("x.webp", "WEBP"), ("x.tiff", "TIFF")]
)
def test_the_output_extension_picks_the_format(model_dir, photos, tmp_path, name, file_format):
    assert upscale(photos / "astronaut.png", "-o", tmp_path / name, "--model", model_dir) == 0
    assert PIL.Image.open(tmp_path / name).format == file_format
    assert sorted(os.listdir(tmp_path)) == sorted(["model", "photos", name])  # no .png beside it


def test_quality_and_ext_in_a_pattern(model_dir, photos, tmp_path):
    pattern = tmp_path / "out" / "{stem}-{scale}.{ext}"
    assert upscale(photos, "-o", pattern, "--ext", "webp", "--quality", "10", "--model", model_dir) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["astronaut-4.webp", "camera-4.webp", "coffee-4.webp"]
    assert upscale(photos / "coffee.jpg", "-o", tmp_path / "q100.jpg", "--quality", "100", "--model", model_dir) == 0
    assert upscale(photos / "coffee.jpg", "-o", tmp_path / "q10.jpg", "--quality", "10", "--model", model_dir) == 0
    assert (tmp_path / "q10.jpg").stat().st_size < (tmp_path / "q100.jpg").stat().st_size


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "out.bmp"], "unknown image extension '.bmp'"),
        (["-o", "out/{stem}.{format}"], "unknown placeholder {format}"),
        (["-o", "x.jpg", "--ext", "png"], "names a .jpg file but --ext is png"),
        (["-o", "x.png", "--quality", "90"], "--quality applies to .jpg and .webp outputs"),
        (["--outscale", "0"], "--outscale must be a number > 0"),
    ],
)
def test_bad_output_flags_exit_before_loading_the_model(photos, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        upscale(photos / "camera.png", "--model", "never-loaded", *args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("outscale, size", [("2", (32, 24)), ("3.5", (56, 42)), ("0.5", (8, 6))])
def test_outscale_gives_exactly_that_many_times_the_input(model_dir, photos, tmp_path, outscale, size):
    assert upscale(photos / "astronaut.png", "--outscale", outscale, "--model", model_dir) == 0
    with PIL.Image.open(photos / f"astronaut_x{outscale}.png") as output:
        assert output.size == size


def test_outscale_resizes_alpha_too(model_dir, tmp_path):
    PIL.Image.new("RGBA", (10, 6), (10, 200, 30, 0)).save(tmp_path / "clear.png")
    assert upscale(tmp_path / "clear.png", "-o", tmp_path / "out.png", "--outscale", "2", "--model", model_dir) == 0
    with PIL.Image.open(tmp_path / "out.png") as output:
        assert output.size == (20, 12) and (np.asarray(output)[..., 3] == 0).all()


def test_a_folder_rerun_adds_no_new_files(model_dir, photos, capsys):
    assert upscale(photos, "--model", model_dir) == 0
    after_first_run = sorted(os.listdir(photos))
    assert after_first_run == sorted(
        ["astronaut.png", "astronaut_x4.png", "camera.png", "camera_x4.png", "coffee.jpg", "coffee_x4.png"]
    )
    capsys.readouterr()
    assert upscale(photos, "--model", model_dir) == 3  # the three outputs exist; nothing is redone
    assert sorted(os.listdir(photos)) == after_first_run
    errors = capsys.readouterr().err
    assert "left out 3 earlier output(s)" in errors and "_x4_x4" not in errors
    # A file that only looks like an output (nothing named `old` beside it) is an input; so is a named one.
    PIL.Image.open(photos / "camera.png").save(photos / "old_x4.png")
    expected = [photos / name for name in ("astronaut.png", "camera.png", "coffee.jpg", "old_x4.png")]
    assert expand_inputs([str(photos)])[0] == expected
    assert expand_inputs([str(photos / "camera_x4.png")])[0] == [photos / "camera_x4.png"]


def test_an_unwritable_output_among_three_images_stops_only_that_one(model_dir, photos, tmp_path, capsys):
    (photos / "camera").write_text("a file where camera's output folder would go")
    assert upscale(photos, "-o", "{dir}/{stem}/up.png", "--model", model_dir) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "sr3-upscale" in line]
    assert errors == [
        f"sr3-upscale: {photos / 'camera.png'}: cannot write {photos / 'camera' / 'up.png'}: {photos / 'camera'} is a "
        "file, not a folder; choose another -o"
    ]
    assert (photos / "astronaut" / "up.png").is_file() and (photos / "coffee" / "up.png").is_file()


def test_a_write_that_fails_after_sampling_is_one_line_and_the_rest_are_written(model_dir, photos, monkeypatch, capsys):
    # A read-only file system seen only when the file is renamed into place (as a full or remounted disk would be).
    real_replace = os.replace

    def replace(source, target):
        if "coffee" in str(target):
            raise OSError(errno.EROFS, "Read-only file system", str(target))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    assert upscale(photos, "--model", model_dir) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "sr3-upscale" in line]
    assert errors == [
        f"sr3-upscale: {photos / 'coffee.jpg'}: cannot write {photos / 'coffee_x4.png'}: the file system is read-only; "
        "choose another -o"
    ]
    expected = ["astronaut.png", "astronaut_x4.png", "camera.png", "camera_x4.png", "coffee.jpg"]
    assert sorted(os.listdir(photos)) == expected  # no partial file left behind either


def test_cuda_without_cuda_is_one_line(photos, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert upscale(photos, "--device", "cuda") == 3
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("sr3-upscale: error: --device cuda: CUDA is not available (")
    assert errors[0].endswith("use --device cpu")


def _broken_models(tiny_pipeline, root):
    """Saved pipelines with one thing wrong each."""
    tiny_pipeline.save_pretrained(root / "pickled", safe_serialization=False)
    tiny_pipeline.save_pretrained(root / "truncated")
    weights = root / "truncated" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    tiny_pipeline.save_pretrained(root / "no_weights")
    (root / "no_weights" / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    (root / "not_a_pipeline").mkdir()


@pytest.mark.parametrize(
    "model, message",
    [
        ("pickled", "--model {root}/pickled: unet/ has only pickled .bin weights, which can run code when loaded; pass "
         "--allow-pickle"),
        ("truncated", "--model {root}/truncated: unet/diffusion_pytorch_model.safetensors is corrupt or truncated ("),
        ("no_weights", "--model {root}/no_weights: unet/ has no weights (diffusion_pytorch_model.safetensors)"),
        ("not_a_pipeline", "--model {root}/not_a_pipeline is not a saved SR3 pipeline: it has no model_index.json"),
        ("missing", "--model {root}/missing: no such folder (a Hub repo id has the form owner/name)"),
    ],
)
def test_model_problems_are_one_line_each(tiny_pipeline, photos, tmp_path, capsys, model, message):
    _broken_models(tiny_pipeline, tmp_path)
    capsys.readouterr()
    assert upscale(photos / "camera.png", "--model", tmp_path / model) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("sr3-upscale: error: " + message.format(root=tmp_path))


def test_allow_pickle_loads_bin_weights(tiny_pipeline, photos, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    args = (photos / "camera.png", "-o", tmp_path / "out.png", "--model", tmp_path / "pickled", "--allow-pickle")
    assert upscale(*args) == 0 and PIL.Image.open(tmp_path / "out.png").size == (56, 32)


def test_an_offline_hub_id_is_one_line(photos, tmp_path):
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    result = subprocess.run(
        [sys.executable, "-m", "sr3_diffusers", str(photos / "camera.png"), "--model", "someone/sr3-model"],
        capture_output=True, text=True, env=environment,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == [
        "sr3-upscale: error: --model someone/sr3-model is not a local folder, not in the Hugging Face cache, and the "
        "Hub cannot be reached (offline or HF_HUB_OFFLINE=1); download it once while online, or pass a local folder"
    ]


def test_memory_is_checked_before_sampling_and_large_inputs_are_tiled(model_dir, photos, tmp_path, monkeypatch, capsys):
    from sr3_diffusers import SR3Pipeline
    from sr3_diffusers.memory import estimate_sampling_memory

    unet_config = SR3Pipeline.from_pretrained(model_dir).unet.config
    untiled = estimate_sampling_memory(unet_config, 48, 64)
    tiled = estimate_sampling_memory(unet_config, 48, 64, tile_size=32)
    available = int((untiled + tiled) / 2 / cli.MEMORY_HEADROOM)  # room for 32-pixel tiles, not for the whole image
    monkeypatch.setattr(cli, "available_memory", lambda device: available)
    args = ("--model", model_dir, "--num-inference-steps", "2", "--seed", "3")
    assert upscale(photos / "astronaut.png", photos / "coffee.jpg", "-o", tmp_path / "auto", *args) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "tiling" in line]
    assert len(notes) == 1 and "tiling with --tile-size 32" in notes[0]
    assert upscale(photos / "astronaut.png", "-o", tmp_path / "explicit.png", "--tile-size", "32", *args) == 0
    np.testing.assert_array_equal(
        np.asarray(PIL.Image.open(tmp_path / "auto" / "astronaut_x4.png")),
        np.asarray(PIL.Image.open(tmp_path / "explicit.png")),
    )


def test_a_large_input_that_cannot_fit_stops_in_one_line_before_sampling(model_dir, tmp_path, monkeypatch, capsys):
    # 1500x1500 -> 6000x6000: untiled this would allocate ~20 GiB even with the tiny UNet; it must never get that far.
    PIL.Image.new("RGB", (1500, 1500), (120, 80, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(cli, "available_memory", lambda device: 2 * 2**30)
    monkeypatch.setattr(SR3Pipeline, "__call__", lambda *args, **kwargs: pytest.fail("sampling started"))
    assert upscale(tmp_path / "big.png", "--model", model_dir) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "sr3-upscale" in line]
    assert len(errors) == 1 and "a 6000x6000 output needs about" in errors[0] and "--tile-size" in errors[0]
    assert not (tmp_path / "big_x4.png").exists()


def test_running_out_of_memory_while_sampling_names_tile_size():
    try:
        torch.empty(2**50, dtype=torch.uint8)  # the CPU allocator's real error
    except RuntimeError as error:
        message = cli.describe_sampling_error(error)
    assert message == "out of memory; pass --tile-size 256 (or smaller) to sample in tiles, and --batch-size 1"


def test_each_report_line_is_one_write_so_that_processes_lines_never_merge():
    """Under torchrun with PYTHONUNBUFFERED=1 both processes write to one pipe: a line written in two pieces (text,
    then newline) could run into the other process's line and lose its `input -> output` report."""

    class RecordingStream:
        def __init__(self):
            self.writes = []

        def write(self, text):
            self.writes.append(text)

        def flush(self):
            pass

    stream = RecordingStream()
    cli._write_line("photo.png -> photo_x4.png", file=stream)
    assert [text for text in stream.writes if text] == ["photo.png -> photo_x4.png\n"]  # tqdm adds an empty write

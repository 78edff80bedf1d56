"""Reliability: each fault a probe of bad inputs, damaged files and interrupted runs found, re-run so it stays fixed.

Sections follow the issue's list: damaged or interrupted checkpoints, resumes with a changed schedule, the pipeline's
input gaps, loading checks, and the consistency projection at large sizes. Training runs use the tiny configs of
`tests/test_train_sr3.py`, in-process where no kill is needed (faster).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from sr3_diffusers import SR3Pipeline
from tests.test_train_sr3 import (  # noqa: F401  (fixtures)
    SCRIPT,
    TINY_ARGS,
    assert_same_weights,
    environment,
    folders,
    in_process,
    logged_scalars,
    train_sr3,
)


def random_image(height, width, seed=0):
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))


def training_args(folders, output_dir, *extra):
    """Tiny training flags without validation (the faults here are about checkpoints and schedules)."""
    return [
        "--train_data_dir", str(folders["train"]),
        "--output_dir", str(output_dir),
        "--cache_dir", str(folders["root"] / "datasets_cache"),
        *TINY_ARGS,
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def checkpointed_run(folders, environment):
    """4 steps of the cosine schedule (1e-5 -> 1e-7) with a checkpoint after every step."""
    output_dir = folders["root"] / "checkpointed"
    arguments = training_args(folders, output_dir, "--max_train_steps", "4", "--checkpointing_steps", "1")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return output_dir


@pytest.fixture
def run_copy(checkpointed_run, tmp_path):
    """A copy of the checkpointed run to damage or resume; the original stays the uninterrupted reference."""
    copy = tmp_path / "run"
    shutil.copytree(checkpointed_run, copy)
    return copy


def truncate(path):
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size // 2)


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def list_an_absent_rank(checkpoint):
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["random_states"].append("random_states_1.pkl")
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))


# How a checkpoint gets damaged after it was written, and the file the verification must name.
DAMAGES = {
    "random-states-deleted": (lambda folder: (folder / "random_states_0.pkl").unlink(), "random_states_0.pkl is missing"),
    "random-states-truncated": (lambda folder: truncate(folder / "random_states_0.pkl"), "random_states_0.pkl has"),
    "optimizer-truncated": (lambda folder: truncate(folder / "optimizer.bin"), "optimizer.bin has"),
    "weights-bit-flipped": (
        lambda folder: flip_a_byte(folder / "unet_training" / "diffusion_pytorch_model.safetensors"),
        "unet_training/diffusion_pytorch_model.safetensors does not match its SHA-256",
    ),
    "manifest-deleted": (lambda folder: (folder / "manifest.json").unlink(), "manifest.json is missing"),
    "manifest-truncated": (lambda folder: truncate(folder / "manifest.json"), "manifest.json is unreadable"),
    "training-state-truncated": (lambda folder: truncate(folder / "training_state.json"), "training_state.json is"),
    "a-rank-missing": (list_an_absent_rank, "random_states_1.pkl is not in manifest.json"),
}


# ---------------------------------------------------------------------------------------------------------------------
# Pipeline input gaps


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"enforce_consistency": "no"}, TypeError, "`enforce_consistency` must be True or False, got 'no'"),
        ({"enforce_consistency": 1}, TypeError, "`enforce_consistency` must be True or False"),
        ({"generator": 0}, TypeError, "`generator` must be a torch.Generator .* got int"),
        ({"generator": [0]}, TypeError, "`generator` must be a torch.Generator"),
        ({"tile_overlap": 8}, ValueError, "`tile_overlap=8` only applies to tiles: pass `tile_size`"),
    ],
)
def test_bad_call_arguments_name_the_argument(tiny_pipeline, kwargs, error, message):
    with pytest.raises(error, match=message):
        tiny_pipeline(random_image(4, 4), **kwargs)


def test_a_truthy_string_is_not_taken_as_enforce_consistency_in_the_config(tiny_pipeline):
    with pytest.raises(TypeError, match="`enforce_consistency` must be True or False"):
        SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, enforce_consistency="no")


def test_numpy_scalars_are_accepted_where_python_numbers_are(tiny_pipeline):
    low_res = random_image(4, 4)
    generator = torch.Generator().manual_seed(0)
    expected = tiny_pipeline(low_res, strength=0.5, generator=generator, output_type="pt").images
    generator = torch.Generator().manual_seed(0)
    got = tiny_pipeline(
        low_res, strength=np.float32(0.5), enforce_consistency=np.bool_(False), generator=generator, output_type="pt"
    ).images
    assert torch.equal(got, expected)
    assert SR3Pipeline(tiny_pipeline.unet, tiny_pipeline.scheduler, strength=np.float64(0.25)).config.strength == 0.25


def test_generator_accepts_what_diffusers_accepts(tiny_pipeline):
    """None, one generator for the batch, or a list of one per image (diffusers' pipelines refuse other lengths)."""
    low_res = torch.stack([random_image(4, 4, seed=1), random_image(4, 4, seed=2)])
    run = lambda generator: tiny_pipeline(low_res, generator=generator, output_type="pt").images  # noqa: E731
    per_image = run([torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)])
    alone = tiny_pipeline(low_res[1:], generator=torch.Generator().manual_seed(4), output_type="pt").images
    torch.testing.assert_close(per_image[1:], alone, atol=1e-5, rtol=0)
    assert run(torch.Generator().manual_seed(3)).shape == run(None).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="one per image"):
        run([torch.Generator().manual_seed(3)])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64])
def test_integer_images_are_scaled_by_their_own_dtype_range(tiny_pipeline, dtype):
    from sr3_diffusers.image_processing import to_rgb_tensors

    peak = np.iinfo(dtype).max
    levels = np.array([[0, peak // 4], [peak // 2, peak]], dtype=dtype)
    (tensor,) = to_rgb_tensors(levels)
    expected = torch.tensor([[0, peak // 4], [peak // 2, peak]], dtype=torch.float64) / peak
    torch.testing.assert_close(tensor[0], expected.float(), rtol=0, atol=1e-7)
    assert tiny_pipeline(levels, num_inference_steps=1, output_type="pt").images.shape == (1, 3, 8, 8)


def test_negative_integer_levels_are_refused_as_integers(tiny_pipeline):
    levels = np.array([[-3, 0], [5, 100]], dtype=np.int8)
    with pytest.raises(ValueError, match=r"Integer images are levels in \[0, 127\] for their dtype torch.int8") as error:
        tiny_pipeline(levels)
    assert "Float images" not in str(error.value)


def test_an_empty_numpy_batch_is_refused_clearly(tiny_pipeline):
    with pytest.raises(ValueError, match="`image` is an empty batch"):
        tiny_pipeline(np.zeros((0, 4, 4, 3), dtype=np.uint8))


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints: complete or refused


def test_a_checkpoint_carries_a_manifest_of_its_files_and_every_rank_s_random_states(checkpointed_run):
    checkpoint = checkpointed_run / "checkpoint-4"
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    assert manifest["random_states"] == ["random_states_0.pkl"]
    files = {str(path.relative_to(checkpoint)) for path in checkpoint.rglob("*") if path.is_file()}
    assert set(manifest["files"]) == files - {"manifest.json"}
    assert {"training_state.json", "optimizer.bin", "scheduler.bin", "random_states_0.pkl"} <= set(manifest["files"])
    entry = manifest["files"]["optimizer.bin"]
    assert entry["size"] == (checkpoint / "optimizer.bin").stat().st_size and len(entry["sha256"]) == 64
    assert all(train_sr3.verify_checkpoint(path) is None for path in train_sr3.list_checkpoints(checkpointed_run))


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_verify_checkpoint_names_the_damaged_file(run_copy, damage):
    make_damage, message = DAMAGES[damage]
    make_damage(run_copy / "checkpoint-4")
    assert message in train_sr3.verify_checkpoint(run_copy / "checkpoint-4")
    assert train_sr3.verify_checkpoint(run_copy / "checkpoint-3") is None


@pytest.mark.parametrize("damage", ["random-states-deleted", "random-states-truncated", "weights-bit-flipped"])
def test_resuming_a_damaged_checkpoint_is_refused_naming_the_file_and_the_previous_complete_one(
    folders, run_copy, in_process, damage
):
    make_damage, message = DAMAGES[damage]
    make_damage(run_copy / "checkpoint-4")
    make_damage(run_copy / "checkpoint-3")
    resume = ["--max_train_steps", "4", "--resume_from_checkpoint", str(run_copy / "checkpoint-4")]
    with pytest.raises(SystemExit) as error:
        in_process(training_args(folders, run_copy, *resume))
    text = str(error.value)
    assert text.startswith(f"train_sr3.py: error: checkpoint {run_copy / 'checkpoint-4'} is damaged: {message}")
    assert text.endswith(f"resume from {run_copy / 'checkpoint-2'}, the previous complete checkpoint.")
    assert "\n" not in text


def test_latest_skips_a_damaged_checkpoint_with_a_warning_and_resumes_exactly(
    folders, checkpointed_run, run_copy, in_process, caplog
):
    """Truncated random states in the newest checkpoint: `latest` warns, resumes from the one before, and ends with
    bit-identical weights (the damaged file used to be skipped silently, ending 3.5e-5 away)."""
    truncate(run_copy / "checkpoint-4" / "random_states_0.pkl")
    resume = ["--max_train_steps", "4", "--checkpointing_steps", "1", "--resume_from_checkpoint", "latest"]
    in_process(training_args(folders, run_copy, *resume, "--report_to", "none"))
    assert f"Skipping the incomplete checkpoint {run_copy / 'checkpoint-4'}: random_states_0.pkl has" in caplog.text
    assert f"Resuming from checkpoint {run_copy / 'checkpoint-3'}" in caplog.text
    assert train_sr3.verify_checkpoint(run_copy / "checkpoint-4") is None  # rewritten, complete
    assert_same_weights(run_copy / "checkpoint-4" / "unet_training", checkpointed_run / "checkpoint-4" / "unet_training")
    assert_same_weights(run_copy / "unet", checkpointed_run / "unet")


def test_latest_refuses_to_start_over_when_no_checkpoint_is_complete(folders, run_copy, in_process):
    for checkpoint in train_sr3.list_checkpoints(run_copy):
        (checkpoint / "random_states_0.pkl").unlink()
    with pytest.raises(SystemExit, match="no checkpoint in .* is complete \\(checkpoint-1, checkpoint-2, checkpoint-3"):
        in_process(training_args(folders, run_copy, "--max_train_steps", "4", "--resume_from_checkpoint", "latest"))


def test_a_run_killed_while_writing_a_checkpoint_resumes_from_the_previous_complete_one(
    folders, environment, tmp_path, caplog, in_process
):
    """SIGKILL as soon as a checkpoint's temporary folder appears: it never passes for a checkpoint, and `latest`
    resumes from the one before it."""
    output_dir = tmp_path / "killed"
    arguments = training_args(folders, output_dir, "--max_train_steps", "6", "--report_to", "none")
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *arguments, "--checkpointing_steps", "1"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    partial = None
    try:
        deadline = time.monotonic() + 240
        while partial is None and process.poll() is None and time.monotonic() < deadline:
            partial = next((path for path in output_dir.glob("checkpoint-*.partial") if step_of(path) >= 2), None)
            time.sleep(0.001)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL and partial is not None, "the run should be killed mid-checkpoint"
    killed_step = step_of(partial)
    assert partial.is_dir() and not (output_dir / f"checkpoint-{killed_step}").exists()

    in_process(arguments + ["--checkpointing_steps", "100", "--resume_from_checkpoint", "latest"])
    assert f"Resuming from checkpoint {output_dir / f'checkpoint-{killed_step - 1}'}" in caplog.text
    assert SR3Pipeline.from_pretrained(output_dir).config.scale == 4


def step_of(path):
    return int(re.match(r"checkpoint-(\d+)", path.name).group(1))


# ---------------------------------------------------------------------------------------------------------------------
# Resumes never drift silently: a changed schedule is refused, or re-planned when asked


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max_train_steps", "6"], "--max_train_steps 6 \\(the checkpoint's: 4\\)"),
        (["--max_train_steps", "4", "--learning_rate", "2e-5"], "--learning_rate 2e-05 \\(the checkpoint's: 1e-05\\)"),
        (["--max_train_steps", "4", "--train_batch_size", "3"], "--train_batch_size 3 \\(the checkpoint's: 2\\)"),
        (["--max_train_steps", "4", "--gradient_accumulation_steps", "2"], "--gradient_accumulation_steps 2"),
    ],
)
def test_resuming_with_a_changed_schedule_is_refused_naming_the_flag(folders, run_copy, in_process, flags, message):
    resume = [*flags, "--resume_from_checkpoint", str(run_copy / "checkpoint-2")]
    with pytest.raises(SystemExit, match=f"resuming .*checkpoint-2 with a changed schedule: {message}") as error:
        in_process(training_args(folders, run_copy, *resume))
    assert "--allow_schedule_change to re-plan the schedule from step 2" in str(error.value)


def test_allow_schedule_change_re_plans_the_cosine_from_the_current_step(folders, run_copy, in_process, caplog):
    """4 steps planned, extended to 6: the rate continues on a 6-step cosine and ends at --lr_min, instead of climbing
    back up the old 4-step cosine (which went from 1e-7 back towards 1e-5)."""
    import math

    resume = ["--max_train_steps", "6", "--allow_schedule_change", "--resume_from_checkpoint", "latest"]
    in_process(training_args(folders, run_copy, *resume, "--checkpointing_steps", "100", "--logging_dir", "resumed"))
    assert "--allow_schedule_change: resuming with --max_train_steps 6 (the checkpoint's: 4)" in caplog.text
    cosine = lambda step: 1e-7 + (1e-5 - 1e-7) * (1 + math.cos(math.pi * step / 6)) / 2  # noqa: E731
    learning_rates = logged_scalars(run_copy / "resumed", "lr")
    assert sorted(learning_rates) == [5, 6]
    assert learning_rates[5] == pytest.approx(cosine(5), rel=1e-5)
    assert learning_rates[6] == pytest.approx(1e-7, rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# Loading checks


@pytest.fixture
def saved_pipeline(tiny_pipeline, tmp_path):
    """A saved x4 pipeline whose UNet records its factor, as train_sr3.py's do."""
    unet = tiny_pipeline.unet
    unet.register_to_config(scale=4)
    SR3Pipeline(unet=unet, scheduler=tiny_pipeline.scheduler, scale=4).save_pretrained(tmp_path / "x4")
    return tmp_path / "x4"


def edit_model_index(folder, **changes):
    index = json.loads((folder / "model_index.json").read_text())
    index.update(changes)
    (folder / "model_index.json").write_text(json.dumps(index))


def test_a_scale_in_model_index_that_the_unet_was_not_trained_for_is_refused(saved_pipeline):
    assert SR3Pipeline.from_pretrained(saved_pipeline).config.scale == 4
    edit_model_index(saved_pipeline, scale=3)
    with pytest.raises(ValueError, match="`scale` is 3 but the UNet was trained for x4"):
        SR3Pipeline.from_pretrained(saved_pipeline)


def test_a_unet_that_records_no_scale_still_loads_at_any_scale(tiny_pipeline, tmp_path):
    assert tiny_pipeline.unet.config.scale is None  # e.g. models saved before the UNet recorded it
    SR3Pipeline(unet=tiny_pipeline.unet, scheduler=tiny_pipeline.scheduler, scale=2).save_pretrained(tmp_path)
    assert SR3Pipeline.from_pretrained(tmp_path).config.scale == 2


def test_another_pipeline_class_in_model_index_is_refused(saved_pipeline):
    edit_model_index(saved_pipeline, _class_name="StableDiffusionUpscalePipeline")
    with pytest.raises(ValueError, match="describes a StableDiffusionUpscalePipeline, not an SR3Pipeline"):
        SR3Pipeline.from_pretrained(saved_pipeline)


def test_an_unknown_component_class_is_a_clear_error(saved_pipeline):
    edit_model_index(saved_pipeline, unet=["sr3_diffusers.models.unet_sr3", "NoSuchUNet"])
    with pytest.raises(ValueError, match="names 'NoSuchUNet' from sr3_diffusers.models.unet_sr3; this version"):
        SR3Pipeline.from_pretrained(saved_pipeline)


def test_train_sr3_records_the_factor_in_the_unet_and_refuses_a_conflicting_unet_config(checkpointed_run, folders):
    assert json.loads((checkpointed_run / "unet" / "config.json").read_text())["scale"] == 4
    with pytest.raises(SystemExit):
        train_sr3.parse_args(training_args(folders, folders["root"] / "unused", "--unet_config", '{"scale": 2}'))


@pytest.fixture(scope="module")
def evaluation_folders(tmp_path_factory):
    from tests.test_data import make_photo_folder
    from tests.testing_utils import TINY_UNET_CONFIG, randomise_weights

    from sr3_diffusers import SR3Scheduler, SR3UNet2DModel

    root = tmp_path_factory.mktemp("evaluation")
    unet = randomise_weights(SR3UNet2DModel(**TINY_UNET_CONFIG)).eval()
    SR3Pipeline(unet=unet, scheduler=SR3Scheduler(num_inference_steps=4), scale=4).save_pretrained(root / "model")
    return {"root": root, "photos": make_photo_folder(root / "photos"), "model": root / "model", "cache": root / "cache"}


@pytest.mark.parametrize("damage", ["truncated", "not-a-png", "wrong-size"])
def test_a_damaged_cached_evaluation_output_is_recomputed_with_a_warning(evaluation_folders, tmp_path, caplog, damage):
    import PIL.Image

    from tests.test_evaluation import MODEL_ARGS, evaluate

    output_dir = tmp_path / "evaluation"
    assert evaluate(evaluation_folders, output_dir, *MODEL_ARGS) == 0
    output = output_dir / "sr" / "astronaut__sample0.png"
    intact = output.read_bytes()
    if damage == "truncated":
        output.write_bytes(intact[: len(intact) // 2])
    elif damage == "not-a-png":
        output.write_bytes(b"not an image")
    else:
        PIL.Image.new("RGB", (5, 5)).save(output)
    assert evaluate(evaluation_folders, output_dir, *MODEL_ARGS) == 0
    assert f"{output} is " in caplog.text and "recomputing it" in caplog.text
    assert output.read_bytes() == intact  # the same seed, the same output


# ---------------------------------------------------------------------------------------------------------------------
# The consistency projection at large sizes


@pytest.mark.parametrize("height, width, scale", [(24, 20, 4), (64, 48, 4), (30, 18, 2), (7, 9, 4), (3, 5, 4), (96, 64, 3)])
def test_projection_equals_the_dense_pseudo_inverse_it_replaces(height, width, scale):
    """x + A^+ (y - A x) with A^+ from `torch.linalg.pinv` of the dense matrices (the implementation before)."""
    import math

    from sr3_diffusers.image_processing import _matlab_resize_matrix, project_to_downscaled

    def dense(size):
        return _matlab_resize_matrix(size, math.ceil(size / scale), 1.0 / scale, antialias=True)

    generator = torch.Generator().manual_seed(height)
    images = torch.randn(2, 3, height, width, generator=generator, dtype=torch.float64)
    low_res = torch.randn(2, 3, math.ceil(height / scale), math.ceil(width / scale), generator=generator, dtype=torch.float64)
    rows, cols = dense(height), dense(width)
    expected = images + torch.linalg.pinv(rows) @ (low_res - rows @ images @ cols.T) @ torch.linalg.pinv(cols).T
    got = project_to_downscaled(images.float(), low_res.float(), scale)
    torch.testing.assert_close(got, expected.float(), atol=1e-5, rtol=0)


def test_projection_operators_stay_small_at_8000_pixels():
    """The cached operators of an 8000-pixel side: a sparse A (a few taps a row) and a 2000-square Gram inverse,
    instead of two dense 2000 x 8000 matrices and an SVD."""
    from sr3_diffusers.image_processing import _matlab_downscale_operators

    matrix, gram_inverse = _matlab_downscale_operators(8000, 4)
    _matlab_downscale_operators.cache_clear()
    assert matrix.is_sparse and matrix.shape == (2000, 8000) and matrix._nnz() <= 2000 * 18
    assert gram_inverse.shape == (2000, 2000)

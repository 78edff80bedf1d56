"""`sr3-upscale` and `sr3-evaluate` over 2 CPU processes (gloo) under `accelerate launch` and `torchrun`, against the
same commands in 1 process: the same files, bit for bit, and every image done exactly once.

`--batch-size 1` throughout: each image is then sampled alone in both runs, so that the comparison is exact (batched
convolutions may round differently from single ones).
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import PIL.Image
import pytest
import torch
from skimage import data as skimage_data

from sr3_diffusers import SR3Pipeline, SR3Scheduler, SR3UNet2DModel, evaluation
from sr3_diffusers.cli import upscale_main
from sr3_diffusers.distributed import command_processes
from tests.test_data import make_photo_folder
from tests.testing_utils import TINY_UNET_CONFIG, free_port, randomise_weights


REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    model = root / "model"
    unet = randomise_weights(SR3UNet2DModel(**TINY_UNET_CONFIG)).eval()
    SR3Pipeline(unet=unet, scheduler=SR3Scheduler(num_inference_steps=3), scale=4).save_pretrained(model)
    photos = root / "photos"
    photos.mkdir()
    astronaut = skimage_data.astronaut()
    for index in range(5):  # 5 crops of a real photo, of two sizes, and a file that is not an image
        PIL.Image.fromarray(astronaut[40 * index : 40 * index + 12, 100 : 112 + 4 * (index % 2)]).save(
            photos / f"crop{index}.png"
        )
    (photos / "broken.png").write_bytes(b"not a png")
    return {"root": root, "model": model, "photos": photos, "eval_photos": make_photo_folder(root / "eval_photos")}


def environment(folders, num_processes):
    """One CPU thread per process, nothing from the network; with 2 processes, gloo on the CPU even if a GPU is
    visible (as `accelerate launch --cpu` would set it)."""
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_CACHE=str(folders["root"] / "datasets_cache"),
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    if num_processes > 1:
        env.update(ACCELERATE_USE_CPU="1", CUDA_VISIBLE_DEVICES="")
    return env


def launch(folders, module, arguments, num_processes=1, launcher="accelerate"):
    """Run `python -m <module> <arguments>` in 1 process, or in 2 under `accelerate launch` or `torchrun`."""
    if num_processes == 1:
        command = [sys.executable, "-m", module]
    elif launcher == "accelerate":
        command = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision"]
        command += ["no", "--dynamo_backend", "no", "--multi_gpu", "--num_processes", str(num_processes)]
        command += ["--main_process_port", str(free_port()), "-m", module]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(num_processes)]
        command += ["--master_port", str(free_port()), "-m", module]
    return subprocess.run(
        command + [str(argument) for argument in arguments],
        env=environment(folders, num_processes),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folders["root"],
    )


def written(stdout):
    """The inputs of the `input -> output` lines of an `sr3-upscale` run, one line per image written."""
    return sorted(line.split(" -> ")[0] for line in stdout.splitlines() if " -> " in line)


def files(folder):
    return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir())}


@pytest.fixture(scope="module")
def single_process_upscale(folders):
    output = folders["root"] / "upscaled_1"
    result = launch(folders, "sr3_diffusers", [folders["photos"], "-o", output, "--model", folders["model"]])
    assert result.returncode == 1, result.stderr[-3000:]  # the broken file
    return output, result


def test_upscale_over_two_processes_writes_the_single_process_files_once_each(folders, single_process_upscale):
    expected, single = single_process_upscale
    output = folders["root"] / "upscaled_2"
    result = launch(folders, "sr3_diffusers", [folders["photos"], "-o", output, "--model", folders["model"]], 2)

    assert files(output) == files(expected) and len(files(output)) == 5
    # Each image was written by exactly one process: the two processes' lines together are the single run's.
    assert written(result.stdout) == written(single.stdout) and len(written(result.stdout)) == 5
    # The broken file (first in sorted order, so in process 0's share) fails the whole run, on both processes.
    assert result.returncode != 0
    assert "sr3-upscale: 1 of 6 images failed (process 0: 1, process 1: 0)" in result.stderr
    assert result.stderr.count("broken.png: cannot read image") == 1
    assert "exists" not in result.stderr


def test_upscale_under_torchrun_exits_0_when_every_image_succeeds(folders, single_process_upscale):
    expected, _ = single_process_upscale
    photos = [folders["photos"] / f"crop{index}.png" for index in range(3)]
    output = folders["root"] / "upscaled_torchrun"
    arguments = [*photos, "-o", output, "--model", folders["model"]]
    result = launch(folders, "sr3_diffusers", arguments, num_processes=2, launcher="torchrun")
    assert result.returncode == 0, result.stderr[-3000:]
    assert files(output) == {name: data for name, data in files(expected).items() if name < "crop3"}
    assert written(result.stdout) == [str(photo) for photo in photos]



def command_runs(folders):
    """In-process runs of both commands, one that succeeds and one that fails: (name, run, expected exit status)."""
    upscale = [folders["photos"] / "crop0.png", "-o", folders["root"] / "upscaled_in_process", "--model"]
    evaluate = ["--bicubic_only", "--data_dir", folders["root"] / "no such folder"]
    evaluate += ["--output_dir", folders["root"] / "unused"]
    return [
        ("sr3-upscale", lambda: upscale_main([str(argument) for argument in upscale + [folders["model"]]]), 0),
        ("sr3-upscale, no model", lambda: upscale_main([str(argument) for argument in upscale + ["no such model"]]), 1),
        ("sr3-evaluate, no data", lambda: evaluation.main([str(argument) for argument in evaluate]), 2),
    ]


def test_each_command_destroys_the_process_group_on_its_way_out(folders):
    """torch asks every process to destroy its process group before exiting: a gloo group left to the interpreter's
    shutdown aborted 1 in 20 runs of the torchrun test above after every image was written. A one-process gloo group
    stands in for a launcher's here; no command leaves it behind, whether it succeeds, fails or raises."""
    for name, run, expected_status in command_runs(folders):
        torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)
        assert run() == expected_status, name
        assert not torch.distributed.is_initialized(), name

    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)
    with pytest.raises(KeyboardInterrupt):
        with command_processes("cpu"):
            raise KeyboardInterrupt
    assert not torch.distributed.is_initialized()

def read_rows(output_dir):
    """per_image.csv without its timing column, which differs from run to run."""
    with open(output_dir / "per_image.csv", newline="") as file:
        return [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(file)]


def without_timings(summary):
    for entry in summary["methods"].values():
        entry.pop("seconds_per_image")
    return summary


def evaluation_arguments(folders, output_dir, *extra):
    arguments = ["--model", folders["model"], "--data_dir", folders["eval_photos"], "--center_crop", 32]
    arguments += ["--num_inference_steps", 2, "--num_samples", 2, "--no_fid", "--device", "cpu"]
    return arguments + ["--output_dir", output_dir, *extra]


@pytest.fixture(scope="module")
def evaluations(folders):
    """The same evaluation in 1 and in 2 processes (each with its own `datasets` cache): {processes: (folder, run)}."""
    runs = {}
    for num_processes in (1, 2):
        output_dir = folders["root"] / f"evaluation_{num_processes}"
        cache = ["--cache_dir", folders["root"] / f"datasets_cache_{num_processes}"]
        arguments = evaluation_arguments(folders, output_dir, *cache)
        result = launch(folders, "sr3_diffusers.evaluation", arguments, num_processes=num_processes)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[num_processes] = output_dir, result
    return runs


def test_evaluate_over_two_processes_gives_the_single_process_results(evaluations):
    (one, single), (two, double) = evaluations[1], evaluations[2]
    assert files(two / "sr") == files(one / "sr") and len(files(one / "sr")) == 8 * 2
    rows = read_rows(two)
    assert rows == read_rows(one)
    assert len(rows) == len({(row["image"], row["method"], row["sample"]) for row in rows}) == 8 * 3
    summary = without_timings(json.loads((two / "summary.json").read_text()))
    assert summary == without_timings(json.loads((one / "summary.json").read_text()))
    # The main process alone reports: one table, one summary line.
    assert double.stdout.count("# SR3 evaluation") == 1 and double.stderr.count("wrote ") == 1


def test_evaluate_error_on_the_main_process_stops_every_process_with_one_message(folders, evaluations):
    # The folder of the 2-process run holds seed 0's results; a run with another seed is refused.
    arguments = evaluation_arguments(folders, evaluations[2][0], "--seed", 1)
    result = launch(folders, "sr3_diffusers.evaluation", arguments, num_processes=2)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("sr3-evaluate: error")]
    assert len(errors) == 1 and "seed: stored 0, now 1" in errors[0]
    assert "]: Traceback" not in result.stderr  # no traceback from either process (torchrun adds its own)

"""Training throughput of train_sr3.py on this machine, in images per second.

Runs the real script (`python train_sr3.py`, one process) on a folder of scikit-image photos for a few steps per
configuration and reports the median of its logged `images_per_second` (total batch / wall time of an optimisation
step, data loading, forward, backward, clipping, Adam and the EMA update included), skipping warm-up steps. No
validation and no checkpoints are run inside the timed steps.

    python benchmarks/train_throughput.py                      # all configurations below
    python benchmarks/train_throughput.py --configs tiny-fp32 --steps 20 --threads 1

On a shared machine, pass `--threads` no larger than the idle cores: oversubscribed OpenMP threads can make CPU
training many times slower. The figures printed include the load average, for context.

Needs scikit-image (the test extra) for the photos and tensorboard (the train extra) to read the logged values.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import PIL.Image
import skimage.data
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_UNET = {"block_out_channels": [8, 16], "layers_per_block": 1, "attention_depths": [1], "norm_num_groups": 4}

# name -> train_sr3.py flags
CONFIGS = {
    "tiny-fp32": ["--unet_config", json.dumps(TINY_UNET), "--resolution", "32", "--train_batch_size", "4",
                  "--mixed_precision", "no"],
    "tiny-bf16": ["--unet_config", json.dumps(TINY_UNET), "--resolution", "32", "--train_batch_size", "4",
                  "--mixed_precision", "bf16"],
    "sr3-32-128-batch1-fp32": ["--preset", "sr3-32-128", "--train_batch_size", "1", "--mixed_precision", "no"],
    "sr3-32-128-batch1-bf16": ["--preset", "sr3-32-128", "--train_batch_size", "1", "--mixed_precision", "bf16"],
}  # fmt: skip


def make_photo_folder(folder: Path) -> Path:
    """Real photos, large enough for 128-pixel HR crops."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins"):
        PIL.Image.fromarray(getattr(skimage.data, name)()).save(folder / f"{name}.png")
    return folder


def logged_images_per_second(logging_dir: Path) -> dict:
    values = {}
    for path in glob.glob(f"{logging_dir}/**/events.out.tfevents.*", recursive=True):
        accumulator = EventAccumulator(path)
        accumulator.Reload()
        if "images_per_second" in accumulator.Tags()["scalars"]:
            values.update({event.step: event.value for event in accumulator.Scalars("images_per_second")})
    return values


def measure(name: str, flags: list, photos: Path, workdir: Path, steps: int, warmup: int, threads=None) -> dict:
    output_dir = workdir / name
    command = [
        sys.executable, str(REPO_ROOT / "train_sr3.py"),
        "--train_data_dir", str(photos),
        "--output_dir", str(output_dir),
        "--cache_dir", str(workdir / "datasets_cache"),
        "--max_train_steps", str(warmup + steps),
        "--checkpointing_steps", str(10 * (warmup + steps)),
        "--seed", "0",
        "--report_to", "tensorboard",
        *flags,
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-3000:]}")
    per_step = logged_images_per_second(output_dir / "logs")
    timed = [per_step[step] for step in sorted(per_step) if step > warmup]
    batch_size = int(flags[flags.index("--train_batch_size") + 1])
    return {
        "config": name,
        "images_per_second": statistics.median(timed),
        "seconds_per_step": statistics.median(batch_size / value for value in timed),
        "timed_steps": len(timed),
        "wall_seconds": time.perf_counter() - started,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=5, help="Timed steps per configuration.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first.")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the runs (default: torch's).")
    args = parser.parse_args()

    import torch

    threads = args.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, CUDA: {torch.cuda.is_available()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        photos = make_photo_folder(workdir / "photos")
        for name in args.configs:
            row = measure(name, CONFIGS[name], photos, workdir, args.steps, args.warmup, args.threads)
            load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
            print(
                f"{row['config']:<24} {row['images_per_second']:9.2f} images/s  {row['seconds_per_step']:8.3f} s/step"
                f"  (median of {row['timed_steps']} steps; run took {row['wall_seconds']:.0f} s; load {load})",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""End-to-end SR3Pipeline time and peak memory: reference sampler against the few-step settings, plain and tiled.

Each configuration (model, input size, sampler setting, tiling) runs in a fresh Python subprocess, so that its peak
resident memory (`resource.getrusage(RUSAGE_SELF).ru_maxrss` at the end of the child: weights, activations, Python
and torch themselves) is its own. torch's CPU allocations bypass `tracemalloc`, so only the OS's count is sound. In
the child, a warm-up call of `--warmup-steps` steps at the same size and tiling comes first (oneDNN picks its kernels
on the first call), then one timed `pipe(image, ...)` call on the bundled photo resized to the input size, PIL in and
PIL out: bicubic upsampling, the loop, tiling and conversion are all timed.

    python benchmarks/pipeline_speed.py           # the sr3-64-256 preset, and sr3_diffusers/default if present
    python benchmarks/pipeline_speed.py --model sr3-64-256 --model path/to/pipeline --sizes 64 128 256

Settings: `reference-100` is `SR3Scheduler`, SR3's 100 ancestral steps (the paper's 64 -> 256 sampler);
`dpmsolver++-N` is `SR3DPMSolverScheduler` (deterministic DPM-Solver++(2M), log-SNR spacing) with N steps; `-bf16`
runs the same with a bfloat16 UNet (the sample stays float32 in the pipeline). A preset (`sr3-64-256`,
`sr3-32-128`) is a randomly initialised UNet with that preset's scheduler: speed and memory do not depend on weights.

Long runs are extrapolated: every run times its first `--max-steps-timed` steps; if the whole run would then take more
than `--full-budget-s` seconds it stops there and its time is (first step, set-up included) + (median later step) x
(remaining steps) + (post-processing); the table marks it "extrap. N". `--full-budget-s inf` times everything in full,
`--full-budget-s 0` extrapolates every run longer than `--max-steps-timed`. Peak memory is the same either way: every
step of a run has the same footprint.

The tiled section (`--tiled LR:TILE`, TILE `none` for untiled) runs on `--tiled-model` and shows that peak memory
follows the tile size, not the image size: e.g. 512:256 (a 2048x2048 output in 256-pixel tiles) against 256:256,
256:none and 512:none.
"""

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from common import (
    DEFAULT_MODEL_FOLDER,
    PRESETS,
    check_models,
    default_models,
    input_image,
    load_pipeline,
    model_label,
)



# name -> (scheduler class name, steps, UNet dtype)
SETTINGS = {
    "reference-100": ("SR3Scheduler", 100, "float32"),
    "dpmsolver++-20": ("SR3DPMSolverScheduler", 20, "float32"),
    "dpmsolver++-10": ("SR3DPMSolverScheduler", 10, "float32"),
    "dpmsolver++-20-bf16": ("SR3DPMSolverScheduler", 20, "bfloat16"),
    "dpmsolver++-10-bf16": ("SR3DPMSolverScheduler", 10, "bfloat16"),
    "reference-100-bf16": ("SR3Scheduler", 100, "bfloat16"),
}
DEFAULT_SETTINGS = ["reference-100", "dpmsolver++-20", "dpmsolver++-10", "dpmsolver++-20-bf16", "dpmsolver++-10-bf16"]
REFERENCE_SETTING = "reference-100"
DEFAULT_TILED = ["512:256", "512:512", "256:256", "256:none", "512:none"]


# ----------------------------------------------------------------------------------------------------------------------
# Child: one configuration in this process.


def current_rss_mib() -> float:
    """Resident memory of this process now (VmRSS), MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    """High-water mark of this process's resident memory; Linux reports `ru_maxrss` in KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_call(pipe, image, steps: int, tiling: dict, max_steps_timed: int, full_budget_s: float, seed: int) -> dict:
    """One pipeline call, timed per step through `callback_on_step_end`; stopped early and extrapolated if long."""
    import torch

    stamps = []

    def callback(pipe, step_index, timestep, callback_kwargs):
        stamps.append(time.perf_counter())
        done, steps_to_run = step_index + 1, pipe.num_timesteps  # fewer than `steps` with strength < 1
        if done == max_steps_timed and done < steps_to_run:
            per_step = statistics.median(b - a for a, b in itertools.pairwise(stamps)) if done > 1 else stamps[0] - start
            if (stamps[0] - start) + per_step * (steps_to_run - 1) > full_budget_s:
                pipe._interrupt = True
        return {}

    start = time.perf_counter()
    pipe(image, num_inference_steps=steps, generator=torch.manual_seed(seed), callback_on_step_end=callback, **tiling)
    end = time.perf_counter()
    later_steps = [b - a for a, b in itertools.pairwise(stamps)]
    per_step = statistics.median(later_steps) if later_steps else stamps[0] - start
    steps_run, steps_to_run = len(stamps), pipe.num_timesteps
    if steps_run == steps_to_run:
        total = end - start
    else:
        total = (stamps[0] - start) + per_step * (steps_to_run - 1) + (end - stamps[-1])
    return dict(seconds=total, seconds_per_step=per_step, steps_run=steps_run, steps_to_run=steps_to_run,
                first_step_seconds=stamps[0] - start)


def run_child(spec: dict) -> dict:
    import torch
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # the advice printed when a preset's UNet is cast with `.to(bfloat16)`

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    started = time.perf_counter()
    scheduler_name, _, dtype_name = SETTINGS[spec["setting"]]
    pipe = load_pipeline(spec["model"], scheduler_name, dtype_name)
    load_seconds = time.perf_counter() - started
    loaded_rss, load_peak = current_rss_mib(), peak_rss_mib()
    image = input_image(spec["size"], spec["size"])
    steps = SETTINGS[spec["setting"]][1]
    tiling = dict(tile_size=spec["tile_size"], tile_batch_size=spec["tile_batch_size"])
    if spec["warmup_steps"]:
        timed_call(pipe, image, steps, tiling, spec["warmup_steps"], 0.0, spec["seed"])
    timing = timed_call(pipe, image, steps, tiling, spec["max_steps_timed"], spec["full_budget_s"], spec["seed"])
    peak = peak_rss_mib()
    return dict(
        **timing,
        steps=timing["steps_to_run"],
        extrapolated=timing["steps_run"] < timing["steps_to_run"],
        load_seconds=load_seconds,
        loaded_rss_mib=loaded_rss,
        load_peak_rss_mib=load_peak,
        peak_rss_mib=peak,
        peak_above_loaded_mib=peak - loaded_rss,
        threads=torch.get_num_threads(),
        parameters=sum(p.numel() for p in pipe.unet.parameters()),
        scale=pipe.config.scale,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Parent: the grid of configurations, one subprocess each.


def run_in_subprocess(spec: dict) -> dict:
    env = dict(os.environ)
    if spec["threads"]:
        env["OMP_NUM_THREADS"] = str(spec["threads"])
    command = [sys.executable, __file__, "--child", json.dumps(spec)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"configuration {spec} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def parse_tiled(value: str):
    size, _, tile = value.partition(":")
    return int(size), (None if tile in ("", "none") else int(tile))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None,
                        help="A preset name (random weights) or an SR3Pipeline folder; repeat for several. Default: "
                             "sr3-64-256, plus sr3_diffusers/default if it exists.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="Input (low-resolution) sizes.")
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, choices=list(SETTINGS))
    parser.add_argument("--tiled", nargs="*", default=DEFAULT_TILED, metavar="LR:TILE",
                        help="Tiled runs: input size and tile_size (or none); '--tiled' alone skips them.")
    parser.add_argument("--tiled-model", default=None,
                        help="Model of the tiled runs (default: the first --model folder, else sr3_diffusers/default "
                             "if it exists, else the first --model).")
    parser.add_argument("--tiled-setting", default="dpmsolver++-10", choices=list(SETTINGS))
    parser.add_argument("--tile-batch-size", type=int, default=1, help="tile_batch_size of the tiled runs.")
    parser.add_argument("--max-steps-timed", type=int, default=5, help="Steps timed before deciding to extrapolate.")
    parser.add_argument("--full-budget-s", type=float, default=120.0,
                        help="Runs estimated longer than this are extrapolated from their first --max-steps-timed "
                             "steps.")
    parser.add_argument("--warmup-steps", type=int, default=1, help="Steps of the untimed warm-up call (0: none).")
    parser.add_argument("--repeats", type=int, default=1,
                        help="Runs per configuration, round-robin; medians are quoted.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in each child (default: torch's).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/pipeline_speed.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:
        print("RESULT " + json.dumps(run_child(json.loads(args.child))), flush=True)
        return
    if args.max_steps_timed < 1:
        parser.error(f"--max-steps-timed must be at least 1, got {args.max_steps_timed}")
    models = args.model or default_models()
    check_models(parser, models + ([args.tiled_model] if args.tiled_model else []), "--model/--tiled-model")
    folders = [model for model in models if model not in PRESETS]
    tiled_model = args.tiled_model or next(iter(folders), None)
    if tiled_model is None:
        tiled_model = str(DEFAULT_MODEL_FOLDER) if DEFAULT_MODEL_FOLDER.is_dir() else models[0]
        if args.tiled and tiled_model in PRESETS:
            print(f"note: tiled runs use {tiled_model}; a 2048x2048 output takes minutes per step: pass --tiled-model")

    common = dict(max_steps_timed=args.max_steps_timed, full_budget_s=args.full_budget_s,
                  warmup_steps=args.warmup_steps, threads=args.threads, seed=args.seed)
    specs = [dict(section="untiled", model=model, size=size, setting=setting, tile_size=None, tile_batch_size=1,
                  **common)
             for model in models for size in args.sizes for setting in args.settings]
    specs += [dict(section="tiled", model=tiled_model, size=size, setting=args.tiled_setting, tile_size=tile,
                   tile_batch_size=args.tile_batch_size, **common)
              for size, tile in map(parse_tiled, args.tiled)]  # fmt: skip

    import torch

    print(f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}; load {', '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    header = (f"{'model':<14} {'LR->HR':>11} {'setting':<20} {'tile':>5} {'s/image':>9} {'s/step':>8} "
              f"{'speed-up':>8} {'peak MiB':>9} {'+call MiB':>9}  timed")
    print(header)
    runs = {index: [] for index in range(len(specs))}
    for repeat in range(args.repeats):
        for index, spec in enumerate(specs):
            runs[index].append(run_in_subprocess(spec))
            if repeat == args.repeats - 1:
                if spec["section"] == "tiled" and (index == 0 or specs[index - 1]["section"] != "tiled"):
                    print(f"tiled ({args.tiled_setting}, tile_batch_size {args.tile_batch_size}, "
                          f"tile_overlap tile_size // 4); peak MiB should follow the tile, not the image:")
                print_row(specs, runs, index)

    rows = [summarise(spec, runs[index]) for index, spec in enumerate(specs)]
    for row in rows:
        reference = next((other for other in rows if row["section"] == other["section"] == "untiled"
                          and other["model"] == row["model"] and other["size"] == row["size"]
                          and other["setting"] == REFERENCE_SETTING), None)
        row["speedup_vs_reference"] = reference["seconds"] / row["seconds"] if reference else None
    print("\nspeed-up = s/image of reference-100 (same model, size) / s/image; "
          "peak MiB = peak RSS of the process; +call MiB = peak RSS - RSS after loading the pipeline")
    for row in rows:
        if row["speedup_vs_reference"] is not None and row["setting"] != REFERENCE_SETTING:
            print(f"  {model_label(row['model'])} {row['size']}->{row['output_size']} {row['setting']}: "
                  f"{row['speedup_vs_reference']:.2f}x faster than reference-100")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dict(
        date=str(date.today()), torch=torch.__version__, threads=args.threads or torch.get_num_threads(),
        cpus=os.cpu_count(), machine=platform.machine(), processor=platform.processor(),
        max_steps_timed=args.max_steps_timed, full_budget_s=args.full_budget_s, repeats=args.repeats, rows=rows,
    ), indent=2))
    print(f"\nwrote {args.json}")


def summarise(spec: dict, results: list) -> dict:
    """Median time over repeats; the largest peak memory."""
    return dict(
        section=spec["section"], model=spec["model"], size=spec["size"], output_size=results[0]["scale"] * spec["size"],
        setting=spec["setting"], tile_size=spec["tile_size"], tile_batch_size=spec["tile_batch_size"],
        steps=results[0]["steps"], extrapolated=any(r["extrapolated"] for r in results),
        steps_timed=min(r["steps_run"] for r in results),
        seconds=statistics.median(r["seconds"] for r in results),
        seconds_per_step=statistics.median(r["seconds_per_step"] for r in results),
        peak_rss_mib=max(r["peak_rss_mib"] for r in results),
        peak_above_loaded_mib=max(r["peak_above_loaded_mib"] for r in results),
        load_peak_rss_mib=max(r["load_peak_rss_mib"] for r in results),
        parameters=results[0]["parameters"], repeats=len(results), runs=results,
    )


def print_row(specs: list, runs: dict, index: int) -> None:
    spec, row = specs[index], summarise(specs[index], runs[index])
    reference = next((i for i, other in enumerate(specs) if spec["section"] == other["section"] == "untiled"
                      and other["model"] == spec["model"] and other["size"] == spec["size"]
                      and other["setting"] == REFERENCE_SETTING and runs[i]), None)
    reference_seconds = None if reference is None else summarise(specs[reference], runs[reference])["seconds"]
    speedup = "" if reference is None else f"{reference_seconds / row['seconds']:.2f}x"
    timed = f"extrap. {row['steps_timed']}/{row['steps']}" if row["extrapolated"] else f"full {row['steps']}"
    tile = "-" if spec["tile_size"] is None else str(spec["tile_size"])
    lr_hr = f"{spec['size']}->{row['output_size']}"
    print(f"{model_label(spec['model']):<14} {lr_hr:>11} {spec['setting']:<20} {tile:>5} {row['seconds']:>9.2f} "
          f"{row['seconds_per_step']:>8.3f} {speedup:>8} {row['peak_rss_mib']:>9.0f} "
          f"{row['peak_above_loaded_mib']:>9.0f}"
          f"  {timed}", flush=True)


if __name__ == "__main__":
    main()

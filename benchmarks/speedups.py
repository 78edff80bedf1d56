"""Optional SR3Pipeline speed-ups against the plain float32 pipeline, measured in one process.

Each variant is the user's own one-liner on a copy of the same UNet, in an `SR3Pipeline` with the few-step sampler
(`SR3DPMSolverScheduler`, deterministic DPM-Solver++(2M)):

    channels_last        pipe.unet.to(memory_format=torch.channels_last)
    bf16                 pipe.unet.to(torch.bfloat16)        (as SR3Pipeline.from_pretrained(..., dtype=torch.bfloat16))
    compile              pipe.unet = torch.compile(pipe.unet, dynamic=True)
    compile-freezing     pipe.unet = torch.compile(pipe.unet, dynamic=True, options={"freezing": True})
    ...                  and the combinations named by joining with "-" (e.g. bf16-channels_last, compile-bf16)

For each input size the variants are first called once (the warm-up; for compiled UNets this call compiles, and at a
second size it shows whether dynamic shapes avoided a recompile: "graphs" counts the graphs dynamo compiled during
the call), then called `--repeats` times in turn, so that drifts of the machine hit all alike. We quote the median
seconds per sampling step (call time / steps) and its ratio to `fp32` (< 1.0 is faster), and the PSNR of each
variant's output against `fp32`'s for the same seed (inf: identical).

Two batching figures follow, both for the plain float32 pipeline: `tile_batch_size` (tiles per UNet call) in a tiled
run, against one tile per call; and B images in one call against B calls of one image (seconds per image).

    python benchmarks/speedups.py                 # the sr3-64-256 preset, and sr3_diffusers/default if present
    python benchmarks/speedups.py --model path/to/pipeline --sizes 64 128 --variants fp32 bf16 compile

The default sizes compile at 64 (a 256x256 output), then show whether a new size (96) or a non-square image (64x96)
recompiles (`--no-duck-shape` shows the fix for the latter). Compile times are cold: inductor's on-disk cache goes to
a fresh temporary folder (`--inductor-cache-dir` to keep one), but compiled variants after the first may reuse C++
kernels built earlier in the same process, so time a single compiled variant (`--variants fp32 compile-freezing`)
for its own cold compile. Inductor compiles C++ with gcc;
`TORCHINDUCTOR_COMPILE_THREADS` sets its parallel compile workers, and `TORCH_LOGS=recompiles` prints why a recompile
happened.
"""

import argparse
import copy
import json
import math
import os
import platform
import statistics
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import torch
from diffusers.utils import logging as diffusers_logging
from torch._dynamo.utils import counters
from torch.fx.experimental import _config as fx_config

from common import check_models, default_models, input_image, load_pipeline, model_label
from sr3_diffusers import SR3DPMSolverScheduler, SR3Pipeline


VARIANTS = (
    "fp32", "channels_last", "bf16", "bf16-channels_last", "compile", "compile-freezing", "compile-bf16",
    "compile-freezing-bf16", "compile-channels_last",
)  # fmt: skip
DEFAULT_VARIANTS = [
    "fp32", "channels_last", "bf16", "bf16-channels_last", "compile", "compile-freezing", "compile-bf16",
]  # fmt: skip


def make_variant(base: SR3Pipeline, variant: str) -> SR3Pipeline:
    """A pipeline sharing `base`'s scheduler config, with its own copy of the UNet changed as `variant` says."""
    parts = variant.split("-")
    unet = copy.deepcopy(base.unet)
    scheduler = SR3DPMSolverScheduler.from_config(base.scheduler.config)
    pipe = SR3Pipeline(unet=unet, scheduler=scheduler, scale=base.config.scale)
    pipe.set_progress_bar_config(disable=True)
    if "bf16" in parts:
        pipe.unet.to(torch.bfloat16)
    if "channels_last" in parts:
        pipe.unet.to(memory_format=torch.channels_last)
    if "compile" in parts:
        options = {"freezing": True} if "freezing" in parts else None
        pipe.unet = torch.compile(pipe.unet, dynamic=True, options=options)
    return pipe


def parse_size(value: str) -> tuple:
    """`"64"` -> (64, 64); `"64x96"` -> (64, 96), height x width."""
    height, _, width = value.partition("x")
    return int(height), int(width or height)


def size_label(size: tuple, scale: int = 1) -> str:
    height, width = size
    return f"{height * scale}" if height == width else f"{height * scale}x{width * scale}"


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of [0, 1] images; inf when identical."""
    mse = (image.double() - reference.double()).square().mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def timed(call):
    """(seconds, graphs compiled by dynamo, result) of one call."""
    graphs = counters["stats"]["unique_graphs"]
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, counters["stats"]["unique_graphs"] - graphs, result


def alternate(calls: dict, repeats: int) -> dict:
    """Warm up each call once, then run them in turn `repeats` times; first-call and median seconds, graphs, outputs."""
    results = {}
    for name, call in calls.items():
        seconds, graphs, output = timed(call)
        results[name] = dict(first_call_s=seconds, first_call_graphs=graphs, output=output, times=[], graphs_later=0)
    for _ in range(repeats):
        for name, call in calls.items():
            seconds, graphs, _ = timed(call)
            results[name]["times"].append(seconds)
            results[name]["graphs_later"] += graphs
    for result in results.values():
        result["median_s"] = statistics.median(result["times"])
    return results


def fmt_ratio(value: float) -> str:
    return f"{value:.3f}"


def variant_rows(model: str, base: SR3Pipeline, args) -> list:
    pipes = {variant: make_variant(base, variant) for variant in args.variants}
    rows = []
    print(f"\n[{model_label(model)}] variants, {args.steps} DPM-Solver++ steps per call; "
          "ratio = median s/step / fp32's; graphs = dynamo graphs compiled in the first call (later calls)")
    print(f"{'LR->HR':>16} {'variant':<22} {'1st call s':>10} {'graphs':>9} {'s/step':>8} {'ratio':>6} "
          f"{'PSNR vs fp32':>12}")
    for size in args.sizes:
        image = input_image(*size)

        def call_for(pipe, image):
            return lambda: pipe(image, num_inference_steps=args.steps, generator=torch.manual_seed(0),
                                output_type="pt").images  # fmt: skip

        results = alternate({variant: call_for(pipe, image) for variant, pipe in pipes.items()}, args.repeats)
        baseline = results.get("fp32")
        for variant, result in results.items():
            row = dict(
                section="variants", model=model, size=list(size), variant=variant,
                output_size=[side * base.config.scale for side in size],
                steps=args.steps, first_call_s=result["first_call_s"], first_call_graphs=result["first_call_graphs"],
                graphs_in_timed_calls=result["graphs_later"], seconds_per_step=result["median_s"] / args.steps,
                times=result["times"],
                ratio=result["median_s"] / baseline["median_s"] if baseline else None,
                psnr_vs_fp32=psnr(result["output"], baseline["output"]) if baseline else None,
            )
            rows.append(row)
            ratio = "" if row["ratio"] is None else fmt_ratio(row["ratio"])
            quality = "" if row["psnr_vs_fp32"] is None else f"{row['psnr_vs_fp32']:.1f} dB"
            graphs = f"{row['first_call_graphs']} ({row['graphs_in_timed_calls']})"
            lr_hr = f"{size_label(size)}->{size_label(size, base.config.scale)}"
            print(f"{lr_hr:>16} {variant:<22} {row['first_call_s']:>10.2f} {graphs:>9} "
                  f"{row['seconds_per_step']:>8.3f} {ratio:>6} {quality:>12}", flush=True)
    return rows


def tile_batch_rows(model: str, base: SR3Pipeline, args) -> list:
    image = input_image(args.tiled_size, args.tiled_size)
    calls = {
        batch: (lambda batch=batch: base(image, num_inference_steps=args.tile_steps, generator=torch.manual_seed(0),
                                         output_type="pt", tile_size=args.tile_size, tile_batch_size=batch).images)
        for batch in args.tile_batch_sizes
    }  # fmt: skip
    results = alternate(calls, args.repeats)
    output_size = args.tiled_size * base.config.scale
    print(f"\n[{model_label(model)}] tile batching, fp32, {args.tiled_size}->{output_size} in {args.tile_size}-pixel tiles, "
          f"{args.tile_steps} steps per call; "
          "ratio = s/step / s/step at tile_batch_size 1")
    rows = []
    for batch, result in results.items():
        row = dict(section="tile_batch", model=model, size=args.tiled_size, output_size=output_size,
                   tile_size=args.tile_size, tile_batch_size=batch, steps=args.tile_steps,
                   seconds_per_step=result["median_s"] / args.tile_steps, times=result["times"],
                   ratio=result["median_s"] / results[args.tile_batch_sizes[0]]["median_s"])  # fmt: skip
        rows.append(row)
        print(f"  tile_batch_size {batch:>3}: {row['seconds_per_step']:8.3f} s/step  ratio {fmt_ratio(row['ratio'])}",
              flush=True)
    return rows


def image_batch_rows(model: str, base: SR3Pipeline, args) -> list:
    size, count = args.sizes[0], args.image_batch
    images = [input_image(*size)] * count

    def batched():
        return base(images, num_inference_steps=args.steps, generator=torch.manual_seed(0), output_type="pt").images

    def one_by_one():
        return [base(image, num_inference_steps=args.steps, generator=torch.manual_seed(0), output_type="pt").images
                for image in images]  # fmt: skip

    results = alternate({"one call": batched, "one by one": one_by_one}, args.repeats)
    per_image = {name: result["median_s"] / count for name, result in results.items()}
    ratio = per_image["one call"] / per_image["one by one"]
    print(f"\n[{model_label(model)}] image batching, fp32, {count} images "
          f"{size_label(size)}->{size_label(size, base.config.scale)}, "
          f"{args.steps} steps: "
          f"{per_image['one call']:.3f} s/image in one call, {per_image['one by one']:.3f} s/image one by one, "
          f"ratio {fmt_ratio(ratio)}", flush=True)
    return [dict(section="image_batch", model=model, size=list(size), images=count, steps=args.steps,
                 seconds_per_image_batched=per_image["one call"], seconds_per_image_single=per_image["one by one"],
                 ratio=ratio)]  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None,
                        help="A preset name (random weights) or an SR3Pipeline folder; repeat for several. Default: "
                             "sr3-64-256, plus sr3_diffusers/default if it exists.")
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(64, 64), (96, 96), (64, 96)],
                        help="Input sizes, N or HxW; compiled UNets compile at the first, later ones show recompiles.")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=VARIANTS)
    parser.add_argument("--steps", type=int, default=3, help="Sampling steps per timed pipeline call.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed calls per variant after the warm-up.")
    parser.add_argument("--tiled-size", type=int, default=96, help="Input size of the tile-batching runs.")
    parser.add_argument("--tile-size", type=int, default=256, help="tile_size of the tile-batching runs.")
    parser.add_argument("--tile-steps", type=int, default=2, help="Sampling steps per tiled call.")
    parser.add_argument("--tile-batch-sizes", type=int, nargs="*", default=[1, 2, 4],
                        help="tile_batch_size values, the first being the reference; none skips tile batching.")
    parser.add_argument("--image-batch", type=int, default=4,
                        help="Images per call in the image-batching run (0: skip).")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's).")
    parser.add_argument("--inductor-cache-dir", default=None,
                        help="TORCHINDUCTOR_CACHE_DIR for the compiled variants; default: a fresh temporary folder, so "
                             "that the first compile is cold (pass a folder twice to see warm-cache compile times).")
    parser.add_argument("--no-duck-shape", action="store_true",
                        help="Set torch.fx.experimental._config.use_duck_shape = False before compiling, so that a "
                             "square first image does not tie height to width (no recompile for non-square images).")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/speedups.json"))
    args = parser.parse_args()

    models = args.model or default_models()
    check_models(parser, models)
    if "fp32" not in args.variants:
        args.variants = ["fp32"] + args.variants
    if args.threads:
        torch.set_num_threads(args.threads)
    fresh_cache = None if args.inductor_cache_dir else tempfile.TemporaryDirectory(prefix="sr3_inductor_")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = args.inductor_cache_dir or fresh_cache.name
    if args.no_duck_shape:
        fx_config.use_duck_shape = False
    diffusers_logging.set_verbosity_error()  # the bf16 `.to()` cast advice, once per variant
    warnings.filterwarnings("ignore", message="Dynamo detected a call to a `functools.lru_cache`")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}; load {', '.join(f'{x:.1f}' for x in os.getloadavg())}")

    rows = []
    for model in models:
        base = load_pipeline(model)
        rows += variant_rows(model, base, args)
        if args.tile_batch_sizes:
            rows += tile_batch_rows(model, base, args)
        if args.image_batch:
            rows += image_batch_rows(model, base, args)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dict(
        date=str(date.today()), torch=torch.__version__, threads=torch.get_num_threads(), cpus=os.cpu_count(),
        machine=platform.machine(), processor=platform.processor(), steps=args.steps, repeats=args.repeats, rows=rows,
    ), indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

"""`sr3-upscale`: upscale image files, folders and globs with an SR3 pipeline (also `python -m sr3_diffusers`); and the
entry points of `sr3-evaluate` and `sr3-train`, which first check that their optional dependencies are installed."""

import argparse
import glob
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import PIL.Image
import torch
from tqdm.auto import tqdm

from .pipelines import SHIPPED_MODEL, SR3Pipeline
from .schedulers import SAMPLERS, check_sampler, scheduler_for_sampler


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_OUTPUT_PATTERN = "{dir}/{stem}_x{scale}.png"

logger = logging.getLogger("sr3_diffusers.cli")

# The optional dependencies of the commands and the extra of `setup.cfg` that installs each.
OPTIONAL_DEPENDENCIES = {"datasets": "eval", "evaluate": "eval", "scipy": "eval", "tensorboard": "train"}


def parse_upscale_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sr3-upscale",
        description="Upscale images with SR3 (super-resolution by iterative refinement). Writes PNG files.",
    )
    parser.add_argument("inputs", nargs="+", help="Image files, folders (their images, not recursive) or globs.")
    parser.add_argument(
        "-o",
        "--output",
        default=DEFAULT_OUTPUT_PATTERN,
        help="Where to write: a .png file name (one input only), a folder, or a pattern with {dir}, {stem} and "
        f"{{scale}}, e.g. 'out/{{stem}}_sr.png'. Default: '{DEFAULT_OUTPUT_PATTERN}', next to each input.",
    )
    parser.add_argument(
        "--model",
        default=SHIPPED_MODEL,
        help=f"SR3 pipeline: a local folder or a Hugging Face Hub repo id. Default: {SHIPPED_MODEL}, the small x4 "
        "model that ships with this package (no network needed).",
    )
    parser.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=None,
        help="How to sample: 'ancestral' is SR3's Algorithm 2 (the paper's sampler, stochastic, slow: 100 steps); "
        "'ddim' and 'dpmsolver++' are few-step samplers that add no noise after the start unless --eta > 0. "
        "The fast setting is '--sampler dpmsolver++ --num-inference-steps 20'. Default: the model's own scheduler.",
    )
    parser.add_argument(
        "--eta",
        type=float,
        default=None,
        help="Noise that --sampler ddim or dpmsolver++ adds at each step, in [0, 1]: 0 (default) adds none, 1 as "
        "much as DDPM's ancestral sampling.",
    )
    parser.add_argument(
        "--num-inference-steps",
        type=int,
        default=None,
        help="Denoising steps (default: the scheduler's own, e.g. 100 for SR3's ancestral schedule, 20 for "
        "--sampler ddim or dpmsolver++).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Random seed; the same seed gives the same output.")
    parser.add_argument("--batch-size", type=int, default=1, help="Images per pipeline call (same-size images batch).")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available).")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="UNet precision.")
    parser.add_argument("--overwrite", action="store_true", help="Replace output files that already exist.")
    parser.add_argument(
        "--tile-size",
        type=int,
        default=None,
        help="Run the UNet on overlapping tiles of this many output pixels (a multiple of the UNet's downsampling, "
        "e.g. 256) so that large images fit in memory; tiles share one canvas, so there are no seams. "
        "Default: whole images.",
    )
    parser.add_argument("--tile-overlap", type=int, default=None, help="Tile overlap in output pixels (default: a quarter tile).")
    parser.add_argument("--tile-batch-size", type=int, default=1, help="Tiles per UNet call (faster, more memory).")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.num_inference_steps is not None and args.num_inference_steps < 1:
        parser.error(f"--num-inference-steps must be at least 1, got {args.num_inference_steps}")
    try:
        check_sampler(args.sampler, args.eta)
    except ValueError as error:
        parser.error(str(error))
    return args


def expand_inputs(inputs: Sequence[str]) -> Tuple[List[Path], List[str]]:
    """Resolve files, folders and globs to image paths (sorted, without duplicates); also return the problems."""
    paths, problems = [], []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(p for p in Path(item).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append(f"{item}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        elif os.path.exists(item):
            found = [Path(item)]
        else:
            found = sorted(Path(match) for match in glob.glob(item) if os.path.isfile(match))
            if not found:
                problems.append(f"{item}: no such file, folder or matching glob")
        paths.extend(path for path in found if path not in paths)
    return paths, problems


def output_path_for(input_path: Path, output: str, scale: int, single_input: bool) -> Path:
    """Where the upscaled version of `input_path` goes, following the `-o` argument (see `--help`)."""
    if "{" in output:
        filled = output.format(dir=input_path.parent, stem=input_path.stem, scale=scale)
        return Path(filled)
    if output.endswith(os.sep) or os.path.isdir(output) or not single_input:
        return Path(output) / f"{input_path.stem}_x{scale}.png"
    return Path(output)


def plan_outputs(
    paths: List[Path], output: str, scale: int, overwrite: bool
) -> Tuple[List[Tuple[Path, Path]], List[str]]:
    """Pair each input with its output path; refuse outputs that are inputs, are shared, or exist unless `overwrite`."""
    if "{" not in output and output.lower().endswith(".png") and len(paths) > 1:
        raise SystemExit(
            f"sr3-upscale: error: -o {output} names one file but {len(paths)} inputs were given; "
            "pass a folder or a pattern such as 'out/{stem}_x4.png'"
        )
    inputs = {path.resolve() for path in paths}
    jobs, problems, claimed = [], [], set()
    for path in paths:
        target = output_path_for(path, output, scale, single_input=len(paths) == 1)
        if target.suffix.lower() != ".png":
            target = target.with_suffix(".png")
        resolved = target.resolve()
        if resolved in inputs:
            problems.append(
                f"{path}: output {target} is an input file; inputs are never overwritten, choose another -o"
            )
        elif resolved in claimed:
            problems.append(f"{path}: output {target} is also the output of another input; add {{stem}} to -o")
        elif target.exists() and not overwrite:
            problems.append(f"{path}: output {target} exists; pass --overwrite to replace it")
        else:
            claimed.add(resolved)
            jobs.append((path, target))
    return jobs, problems


def read_image(path: Path) -> PIL.Image.Image:
    with PIL.Image.open(path) as image:
        image.load()
        return image.copy()


def save_atomically(image: PIL.Image.Image, target: Path) -> None:
    """Write to a temporary name, then rename, so that an interrupted run never leaves a truncated PNG behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    image.save(partial, format="PNG")
    os.replace(partial, target)


def upscale_main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_upscale_args(argv)
    paths, problems = expand_inputs(args.inputs)
    for problem in problems:
        print(f"sr3-upscale: {problem}", file=sys.stderr)
    if not paths:
        print("sr3-upscale: nothing to upscale", file=sys.stderr)
        return 1

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = SR3Pipeline.from_pretrained(args.model, dtype=DTYPES[args.dtype]).to(device)
    if pipe.device.type == "cpu":
        # oneDNN's channels-last convolutions: 15-23% faster on CPU, same output (benchmarks/README.md, speed-ups).
        pipe.unet.to(memory_format=torch.channels_last)
    if args.sampler is not None:
        pipe.scheduler = scheduler_for_sampler(pipe.scheduler.config, args.sampler, args.eta)
    pipe.set_progress_bar_config(leave=False, desc="steps")
    scale = pipe.config.scale

    jobs, planning_problems = plan_outputs(paths, args.output, scale, args.overwrite)
    for problem in planning_problems:
        print(f"sr3-upscale: {problem}", file=sys.stderr)
    failures = len(problems) + len(planning_problems)

    batch: List[Tuple[Path, Path, PIL.Image.Image]] = []
    with tqdm(total=len(jobs), desc="images", unit="image") as progress:
        for index, (path, target) in enumerate(jobs):
            try:
                batch.append((path, target, read_image(path)))
            except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:
                tqdm.write(f"sr3-upscale: {path}: cannot read image ({error}); skipped", file=sys.stderr)
                failures += 1
                progress.update(1)
            is_last = index == len(jobs) - 1
            if batch and (len(batch) == args.batch_size or is_last):
                failures += upscale_batch(pipe, batch, args)
                progress.update(len(batch))
                batch = []
    return 1 if failures else 0


def upscale_batch(pipe: SR3Pipeline, batch: List[Tuple[Path, Path, PIL.Image.Image]], args) -> int:
    """Upscale one batch and write its PNGs; return the number of failed images."""
    generators = [torch.Generator().manual_seed(args.seed) for _ in batch]
    try:
        images = pipe(
            [image for _, _, image in batch],
            num_inference_steps=args.num_inference_steps,
            generator=generators,
            tile_size=args.tile_size,
            tile_overlap=args.tile_overlap,
            tile_batch_size=args.tile_batch_size,
        ).images
    except (ValueError, TypeError) as error:
        names = ", ".join(str(path) for path, _, _ in batch)
        tqdm.write(f"sr3-upscale: {names}: {error}", file=sys.stderr)
        return len(batch)
    for (path, target, _), upscaled in zip(batch, images):
        save_atomically(upscaled, target)
        tqdm.write(f"{path} -> {target}")
    return 0


def _import_command(command: str, module_name: str, extra: str):
    """Import a command's module, or exit with one line naming the extra to install when a dependency is missing."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in OPTIONAL_DEPENDENCIES:
            raise
        sys.exit(f"{command}: error: it needs `{missing}`, which is not installed: pip install 'sr3-diffusers[{extra}]'")


def evaluate_main() -> int:
    """The `sr3-evaluate` console script (`sr3_diffusers.evaluation.main`); needs the `eval` extra."""
    return _import_command("sr3-evaluate", "sr3_diffusers.evaluation", "eval").main()


def train_main() -> None:
    """The `sr3-train` console script: the top-level `train_sr3.py` (installed beside the package); needs the `train`
    extra. Launch it on several processes with `accelerate launch $(which sr3-train) ...`."""
    train_sr3 = _import_command("sr3-train", "train_sr3", "train")
    train_sr3.main(train_sr3.parse_args())


if __name__ == "__main__":
    sys.exit(upscale_main())

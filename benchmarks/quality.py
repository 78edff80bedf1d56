"""Quality of an SR3 model on the held-out photos, next to bicubic, for several samplers and step counts.

The rerunnable quality check of issues 5 (shipped model: sharper than bicubic, consistency close to bicubic's, PSNR at
most 1 dB below it) and 6 (few-step sampling: 10-20 steps within 0.3 dB PSNR and equal consistency of the 100-step
reference). Everything is `sr3_diffusers.evaluation`: the same pairs, sampling, per-image metrics and resumable output
folders as `sr3-evaluate`, one folder per setting; this script only loops over the settings and joins the tables.

Images: the photos listed in `--heldout` (paths relative to `--photos_root`; never trained on), centre crops with the
reference protocol (LR `--lr_size` = 64, made by MATLAB's antialiased bicubic x4 of the photo; HR 256 at exactly 4x the
LR offset). Settings are `SAMPLER:STEPS` or `SAMPLER:STEPS:ETA`, SAMPLER one of `ancestral` (SR3's Algorithm 2 on its
100-step schedule, respaced for fewer steps), `ddim` or `dpmsolver++` (`SR3DPMSolverScheduler`, log-SNR-spaced noise
levels; deterministic unless ETA > 0). The first setting is the reference the others are compared with.

Columns: PSNR (dB) and SSIM on RGB (no crop) and on Y (BT.601, 8-pixel crop); LPIPS (AlexNet, v0.1; lower is closer
to the HR image); consistency (MSE on [0, 1] between the output downsampled by MATLAB's bicubic and the LR input);
sharpness relative to the HR image (mean Sobel gradient magnitude ratio; ratio of spectral energies above the LR
Nyquist frequency): 1 = as sharp as the ground truth, bicubic is well below; seconds per image of sampling on this
machine; the PSNR RGB difference to bicubic and to the first setting. With `--num_samples K` > 1, cells read
"mean ± std over the K samples of the set mean".

    python benchmarks/quality.py --model runs/shipped/checkpoint-8000 \\
        --settings ancestral:100 dpmsolver++:20 dpmsolver++:10 ddim:10

Writes `quality.json` and `quality.md` (and one `sr3-evaluate` folder per setting) under `--output_dir`, by default
`outputs/quality/<model folder name>`; a rerun resumes, sampling only what is missing. FID is off by default
(`--fid`): on a handful of images it is dominated by its small-sample bias (see `sr3_diffusers/evaluation.py`).
"""

import argparse
import json
import sys
from pathlib import Path

import datasets

import sr3_diffusers
from sr3_diffusers import evaluation


REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = Path(sr3_diffusers.__file__).resolve().parent / "default"
DEFAULT_HELDOUT = REPO_ROOT / "docs" / "shipped_model" / "heldout_photos.txt"
DEFAULT_PHOTOS_ROOT = REPO_ROOT.parent / "shared" / "data" / "photos-train"
DEFAULT_SETTINGS = [
    "ancestral:100",
    "ancestral:50",
    "dpmsolver++:50",
    "dpmsolver++:20",
    "dpmsolver++:10",
    "ddim:20",
    "ddim:10",
]

COLUMNS = (
    ("PSNR RGB", "psnr_rgb", 3, False),
    ("PSNR Y", "psnr_y", 3, False),
    ("SSIM RGB", "ssim_rgb", 4, False),
    ("SSIM Y", "ssim_y", 4, False),
    ("LPIPS", "lpips", 3, False),
    ("consistency", "consistency", 3, True),
    ("sharpness (gradient)", "sharpness_gradient", 3, False),
    ("sharpness (high freq.)", "sharpness_spectral", 3, False),
)


def parse_setting(text: str):
    """`SAMPLER:STEPS[:ETA][,strength=S][,consistency=0|1]` as (sampler, steps, eta or None, pipeline options)."""
    head, *options = text.split(",")
    parts = head.split(":")
    if len(parts) not in (2, 3) or parts[0] not in evaluation.SAMPLERS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a setting is SAMPLER:STEPS or SAMPLER:STEPS:ETA with SAMPLER one of "
            f"{', '.join(evaluation.SAMPLERS)}, e.g. dpmsolver++:20, optionally followed by ,strength=S and "
            ",consistency=0|1 (the pipeline's call options; default: the model's own)"
        )
    try:
        steps, eta = int(parts[1]), float(parts[2]) if len(parts) == 3 else None
        pipeline_options = {}
        for option in options:
            key, value = option.split("=")
            if key == "strength":
                pipeline_options["strength"] = float(value)
            elif key == "consistency" and value in ("0", "1"):
                pipeline_options["enforce_consistency"] = value == "1"
            else:
                raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: STEPS must be an integer, ETA a number, and options strength=S or consistency=0|1"
        ) from None
    if steps < 1 or (eta is not None and not 0.0 <= eta <= 1.0):
        raise argparse.ArgumentTypeError(f"{text!r}: STEPS must be at least 1 and ETA in [0, 1]")
    return parts[0], steps, eta, pipeline_options


def setting_name(sampler: str, steps: int, eta, pipeline_options: dict) -> str:
    name = f"{sampler}-{steps}" + (f"-eta{eta:g}" if eta is not None else "")
    if "strength" in pipeline_options:
        name += f"-strength{pipeline_options['strength']:g}"
    if "enforce_consistency" in pipeline_options:
        name += "-consistency" if pipeline_options["enforce_consistency"] else "-free"
    return name


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        default=str(DEFAULT_MODEL),
        help="SR3 pipeline folder or Hub id (default: the shipped model, sr3_diffusers/default).",
    )
    parser.add_argument("--heldout", type=Path, default=DEFAULT_HELDOUT, help="List of held-out photos, one per line.")
    parser.add_argument("--photos_root", type=Path, default=DEFAULT_PHOTOS_ROOT, help="Folder the list is relative to.")
    parser.add_argument("--lr_size", type=int, default=64, help="Side of the centre LR crop (HR: scale x lr_size).")
    parser.add_argument(
        "--settings",
        nargs="+",
        type=parse_setting,
        default=[parse_setting(s) for s in DEFAULT_SETTINGS],
        help=f"SAMPLER:STEPS[:ETA] ... ; the first is the reference (default: {' '.join(DEFAULT_SETTINGS)}).",
    )
    parser.add_argument("--num_samples", type=int, default=1, help="Samples per image and setting.")
    parser.add_argument(
        "--seed", type=int, default=0, help="Seed (per image and sample, see sr3_diffusers.evaluation)."
    )
    parser.add_argument("--batch_size", type=int, default=4, help="Images per pipeline call.")
    parser.add_argument("--max_images", type=int, default=None, help="Use only the first N held-out photos.")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu).")
    parser.add_argument("--dtype", choices=sorted(evaluation.DTYPES), default="float32", help="UNet precision.")
    parser.add_argument("--fid", action="store_true", help="Also compute FID (needs the TF-Inception weights).")
    parser.add_argument("--output_dir", type=Path, default=None, help="Default: outputs/quality/<model folder name>.")
    args = parser.parse_args(argv)
    if args.output_dir is None:
        args.output_dir = REPO_ROOT / "outputs" / "quality" / Path(args.model.rstrip("/")).name
    return args


def heldout_dataset(heldout: Path, photos_root: Path) -> datasets.Dataset:
    """The listed photos as a dataset with an undecoded `image` column, as `data.load_image_dataset` returns."""
    if not heldout.is_file():
        raise evaluation.EvaluationError(f"--heldout {heldout}: no such file.")
    names = [line.strip() for line in heldout.read_text().splitlines() if line.strip() and not line.startswith("#")]
    missing = [name for name in names if not (photos_root / name).is_file()]
    if not names or missing:
        raise evaluation.EvaluationError(
            f"--heldout {heldout} lists no photos"
            if not names
            else f"{len(missing)} held-out photos are not under --photos_root {photos_root}, e.g. {missing[0]}"
        )
    dataset = datasets.Dataset.from_dict({"image": [str(photos_root / name) for name in names]})
    return dataset.cast_column("image", datasets.Image(decode=False))


def quality_table(results) -> str:
    """The markdown table: bicubic, then each setting, with the PSNR RGB differences to bicubic and to the first."""
    first_name, first = results[0]
    bicubic = first["methods"][evaluation.BICUBIC]
    reference_psnr = first["methods"][evaluation.SR3]["psnr_rgb"]["mean"]
    header = ["setting", "steps", "strength", "projection", "s / image"] + [label for label, *_ in COLUMNS]
    header += ["ΔPSNR RGB vs bicubic", f"ΔPSNR RGB vs {first_name}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = [("bicubic", "-", "-", "-", bicubic)] + [
        (
            name,
            str(summary["settings"]["model"]["num_inference_steps"]),
            f"{summary['settings']['model']['strength']:g}",
            "on" if summary["settings"]["model"]["enforce_consistency"] else "off",
            summary["methods"][evaluation.SR3],
        )
        for name, summary in results
    ]
    for name, steps, strength, projection, entry in rows:
        seconds = entry.get("seconds_per_image")
        cells = [name, steps, strength, projection, "-" if seconds is None else f"{seconds:.2f}"]
        cells += [evaluation.format_cell(entry[key], digits, scientific) for _, key, digits, scientific in COLUMNS]
        psnr = entry["psnr_rgb"]["mean"]
        cells += [f"{psnr - bicubic['psnr_rgb']['mean']:+.3f}", f"{psnr - reference_psnr:+.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(args) -> int:
    if Path(args.model) == DEFAULT_MODEL and not DEFAULT_MODEL.is_dir():
        print(f"quality.py: error: the shipped model {DEFAULT_MODEL} does not exist yet; pass --model PATH, e.g. a "
              "train_sr3.py checkpoint such as runs/shipped/checkpoint-N", file=sys.stderr)  # fmt: skip
        return 2
    try:
        pipe = evaluation.load_pipeline(args.model, args.device, args.dtype)
        scale = pipe.config.scale
        dataset = heldout_dataset(args.heldout, args.photos_root)
        pairs, report = evaluation.load_pairs(
            dataset, scale, center_crop=args.lr_size * scale, max_images=args.max_images, root=str(args.photos_root)
        )
        data_settings = {
            "source": f"{args.heldout.resolve()} under {args.photos_root.resolve()}",
            "center_crop": args.lr_size * scale,
        }
        original_scheduler = pipe.scheduler
        original_options = {key: pipe.config[key] for key in ("strength", "enforce_consistency")}
        for sampler, steps, eta, _ in args.settings:  # check every setting before sampling anything
            pipe.scheduler = original_scheduler
            evaluation.use_sampler(pipe, sampler, eta)
            evaluation.resolve_steps(pipe, steps)
        results = []
        for sampler, steps, eta, pipeline_options in args.settings:
            name = setting_name(sampler, steps, eta, pipeline_options)
            print(f"== {name}", file=sys.stderr)
            pipe.scheduler = original_scheduler
            evaluation.use_sampler(pipe, sampler, eta)
            pipe.register_to_config(**{**original_options, **pipeline_options})
            summary = evaluation.run_evaluation(
                pairs,
                args.output_dir / name,
                scale,
                data_settings,
                pipe=pipe,
                num_inference_steps=steps,
                num_samples=args.num_samples,
                seed=args.seed,
                batch_size=args.batch_size,
                fid=args.fid,
                device=str(pipe.device),
                report=report,
            )
            results.append((name, summary))
    except (evaluation.EvaluationError, FileNotFoundError) as error:
        print(f"quality.py: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2

    table = quality_table(results)
    model = results[0][1]["settings"]["model"]
    model_path = Path(args.model).resolve()
    model_name = model_path.relative_to(REPO_ROOT) if model_path.is_relative_to(REPO_ROOT) else args.model
    text = (
        f"# SR3 quality on held-out photos\n\nModel `{model_name}` (UNet sha256 {model['unet_sha256'][:12]}, "
        f"{model['dtype']}); {report.summary()}; centre crops LR {args.lr_size} -> HR {args.lr_size * scale}; "
        f"seed {args.seed}, {args.num_samples} sample(s) per image; device {pipe.device}.\n\n{table}\n"
    )
    print(text)
    evaluation.write_atomically(args.output_dir / "quality.md", text)
    joined = {"model": args.model, "data_report": report.summary(), "settings": {name: s for name, s in results}}
    evaluation.write_atomically(args.output_dir / "quality.json", json.dumps(joined, indent=2) + "\n")
    print(f"quality.py: wrote {args.output_dir / 'quality.md'} and quality.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))

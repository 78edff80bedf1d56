"""What `pipeline_speed.py` and `speedups.py` share: the bundled photo, the models they take by name, how they load them.

A model is a preset name (a randomly initialised UNet with that preset's scheduler: speed and memory do not depend on
the weights) or an `SR3Pipeline` folder, by default the shipped one.
"""

import argparse
from pathlib import Path

import PIL.Image


REPO_ROOT = Path(__file__).resolve().parent.parent
PHOTO = REPO_ROOT / "docs" / "motorcycle_lr.png"
DEFAULT_MODEL_FOLDER = REPO_ROOT / "sr3_diffusers" / "default"
PRESETS = ("sr3-64-256", "sr3-32-128")


def default_models() -> list:
    """The `sr3-64-256` preset, plus the shipped model if its folder exists."""
    return ["sr3-64-256"] + ([str(DEFAULT_MODEL_FOLDER)] if DEFAULT_MODEL_FOLDER.is_dir() else [])


def check_models(parser: argparse.ArgumentParser, models: list, flag: str = "--model") -> None:
    """Stop with a usage error for a model that is neither a preset nor a folder."""
    for model in models:
        if model not in PRESETS and not Path(model).is_dir():
            parser.error(f"{flag} {model!r} is neither a preset {PRESETS} nor a pipeline folder")


def model_label(model: str) -> str:
    return model if model in PRESETS else Path(model).name or model


def load_pipeline(model: str, scheduler_name: str = "SR3DPMSolverScheduler", dtype_name: str = "float32"):
    """The pipeline of `model` with its UNet in `dtype_name` and a `scheduler_name` scheduler from its config."""
    # Imported here so that pipeline_speed.py's parent process, which only starts children, stays free of torch.
    import torch

    from sr3_diffusers import SR3DPMSolverScheduler, SR3Pipeline, SR3Scheduler, SR3UNet2DModel

    dtype = getattr(torch, dtype_name)
    if model in PRESETS:
        torch.manual_seed(0)
        pipe = SR3Pipeline(SR3UNet2DModel.from_preset(model), SR3Scheduler.from_preset(model)).to(dtype)
    else:
        pipe = SR3Pipeline.from_pretrained(model, dtype=dtype)
    scheduler_class = {"SR3Scheduler": SR3Scheduler, "SR3DPMSolverScheduler": SR3DPMSolverScheduler}[scheduler_name]
    pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def input_image(height: int, width: int) -> PIL.Image.Image:
    """The bundled photo resized to `height` x `width` (bicubic); content does not change the timing."""
    with PIL.Image.open(PHOTO) as photo:
        return photo.convert("RGB").resize((width, height), PIL.Image.BICUBIC)

"""Evaluation metrics for SR3, each an `evaluate` module in its own folder, loaded by path.

`evaluate.load(metric_path("psnr"))` (also `ssim`, `lpips`, `consistency`, `sharpness`, `fid`, `inception_score`), or
instantiate the class directly, e.g. `sr3_diffusers.metrics.psnr.psnr.PSNR()`. The modules import what they share
(`image_inputs.py`: the input check, the Y channel, the border crop) from the installed `sr3_diffusers` package;
`inception.py` loads the TF-Inception network for FID and IS; `lpips/` ships its own converted AlexNet weights.
"""

from pathlib import Path


METRICS = ("psnr", "ssim", "lpips", "consistency", "sharpness", "fid", "inception_score")


def metric_path(name: str) -> str:
    """The folder of the `evaluate` module `name` (one of `METRICS`) inside the installed package, so that
    `evaluate.load(metric_path("psnr"))` works from any working directory."""
    if name not in METRICS:
        raise ValueError(f"Unknown SR3 metric {name!r}; choose one of {list(METRICS)}.")
    return str(Path(__file__).resolve().parent / name)

"""Model-card metadata shared by everything that writes an SR3 card (`train_sr3.py`, the shipping script,
`sr3-evaluate --model_card`, `SR3Pipeline.push_to_hub`): the Hub fields a card needs so that the Hub shows how to load
the model and its measured quality (model-index results)."""

import math
import os
import re
from typing import List, Optional, Sequence

from huggingface_hub import EvalResult, ModelCard, ModelCardData


# The library the Hub's "Use this model" button shows: diffusers loads these repos (with `trust_remote_code=True`).
CARD_LIBRARY_NAME = "diffusers"
# The package is not on PyPI yet: it installs from a checkout of the project.
INSTALL_COMMAND = "pip install ./sr3-diffusers, a checkout of the project; it is not on PyPI yet"
CARD_TAGS = ["super-resolution", "image-to-image", "diffusion", "sr3", "diffusers", "sr3-diffusers"]

# A Hub dataset id: `name` or `owner/name`, letters, digits, `-`, `_` and `.` (huggingface_hub's repo id rule).
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")

USAGE_TEMPLATE = """## Usage

Without installing anything beyond diffusers, from the code files stored in this repo:

```python
import torch
from diffusers import DiffusionPipeline
from PIL import Image

pipe = DiffusionPipeline.from_pretrained("{repo_id}", trust_remote_code=True)
image = pipe(Image.open("photo.png"), generator=torch.manual_seed(0)).images[0]   # {scale}x larger
```

Or with the package (`{install}`): `SR3Pipeline.from_pretrained("{repo_id}")` from `sr3_diffusers`, which runs no
code from the repo.
"""


def hub_dataset_ids(names: Sequence[Optional[str]]) -> Optional[List[str]]:
    """The names that are Hub dataset ids, for the card's `datasets:`; local folders and files are left out."""
    ids = [name for name in names if name and _HUB_ID.match(name) and not os.path.exists(name)]
    return list(dict.fromkeys(ids)) or None


def sr3_card_data(license: str = "apache-2.0", license_link: Optional[str] = None, **fields) -> ModelCardData:
    """`ModelCardData` with the fields every SR3 card carries: `library_name`, `pipeline_tag`, the tags, and the
    license, with `license_link` required for `license: other` (the Hub shows no licence text otherwise)."""
    if license == "other" and not license_link:
        raise ValueError("A card with `license: other` needs `license_link` (a URL or a file of the repo, e.g. LICENSE).")
    return ModelCardData(
        library_name=CARD_LIBRARY_NAME,
        pipeline_tag="image-to-image",
        tags=list(CARD_TAGS),
        license=license,
        license_link=license_link,
        **fields,
    )


def write_pipeline_model_card(pipeline, repo_id: str, path: str) -> None:
    """A short card for a pipeline pushed without one: metadata, what it is, and how to load it."""
    scale = pipeline.config.scale
    text = (
        f"---\n{sr3_card_data(model_name=repo_id).to_yaml()}\n---\n\n"
        f"# {repo_id}: SR3 image super-resolution x{scale}\n\n"
        f"An [SR3](https://arxiv.org/abs/2104.07636) diffusion model (Saharia et al., *Image Super-Resolution via "
        f"Iterative Refinement*) saved with sr3-diffusers: a `{type(pipeline.unet).__name__}` and a "
        f"`{type(pipeline.scheduler).__name__}`.\n\n"
        + USAGE_TEMPLATE.format(repo_id=repo_id, scale=scale, install=INSTALL_COMMAND)
    )
    ModelCard(text).save(path)


# The per-image metrics of an `sr3-evaluate` summary that go into a card's model-index: (summary key, type, name).
EVAL_RESULT_METRICS = (
    ("psnr_rgb", "psnr", "PSNR (RGB, no crop)"),
    ("ssim_rgb", "ssim", "SSIM (RGB, no crop)"),
    ("psnr_y", "psnr", "PSNR (Y, crop {crop_border})"),
    ("ssim_y", "ssim", "SSIM (Y, crop {crop_border})"),
    ("consistency", "mse", "Consistency (MSE of the downscaled output to the input)"),
)


def eval_results_from_summary(
    summary: dict, method: str, scale: int, crop_border: int, dataset_type: str, dataset_name: str,
    dataset_split: Optional[str] = None,
) -> List[EvalResult]:
    """The card's model-index entries (the Hub's `EvalResult` format) for one method of an `sr3-evaluate` summary."""
    results = []
    for key, metric_type, metric_name in EVAL_RESULT_METRICS:
        value = summary["methods"][method][key]["mean"]
        if value is None or not math.isfinite(value):
            continue
        results.append(EvalResult(
            task_type="image-to-image", task_name=f"Image super-resolution x{scale}", dataset_type=dataset_type,
            dataset_name=dataset_name, dataset_split=dataset_split, metric_type=metric_type,
            metric_name=metric_name.format(crop_border=crop_border), metric_value=round(float(value), 6 if key == "consistency" else 4),
        ))
    return results


def write_eval_results(card_path: str, results: List[EvalResult], model_name: str) -> ModelCard:
    """Put `results` into the model-index of the card at `card_path` (created if missing), replacing earlier results
    with the same metric on the same dataset; the rest of the card is kept."""
    card = ModelCard.load(card_path) if os.path.isfile(card_path) else ModelCard(f"---\n{sr3_card_data().to_yaml()}\n---\n")
    new = {(result.dataset_name, result.metric_name) for result in results}
    kept = [result for result in card.data.eval_results or [] if (result.dataset_name, result.metric_name) not in new]
    card.data.eval_results = kept + list(results)
    card.data.model_name = card.data.model_name or model_name
    card.save(card_path)
    return card

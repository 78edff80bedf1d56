"""The README picture: bicubic | the shipped model | the original, for the bundled `docs/motorcycle_lr.png`.

`docs/motorcycle_lr.png` is MATLAB-style bicubic x1/4 (`image_processing.imresize`) of the centred 496x496 crop of
scikit-image's `motorcycle_right.png` (stereo_motorcycle, not in the training photos). This upscales it with the shipped
model's defaults (seed 0, as `sr3-upscale`) and writes `docs/motorcycle_comparison.png`, plus a 2x nearest-neighbour
zoom of the centre (`docs/motorcycle_comparison_zoom.png`) to see single pixels.

    python docs/shipped_model/comparison.py
"""

from pathlib import Path

import numpy as np
import PIL.Image
import torch
from skimage import data as skimage_data

from sr3_diffusers import SHIPPED_MODEL, SR3Pipeline
from sr3_diffusers.image_processing import upsample_bicubic


DOCS = Path(__file__).resolve().parents[1]
CROP = 496
ZOOM_WINDOW = 160


def main():
    right = skimage_data.stereo_motorcycle()[1]
    top, left = (right.shape[0] - CROP) // 2, (right.shape[1] - CROP) // 2
    original = right[top : top + CROP, left : left + CROP]
    low_res = PIL.Image.open(DOCS / "motorcycle_lr.png").convert("RGB")

    pipe = SR3Pipeline.from_pretrained(SHIPPED_MODEL)
    pipe.set_progress_bar_config(disable=True)
    upscaled = np.asarray(pipe(low_res, generator=torch.Generator().manual_seed(0)).images[0])
    low_res_tensor = torch.from_numpy(np.asarray(low_res).copy()).permute(2, 0, 1).float()[None] / 255
    bicubic = (upsample_bicubic(low_res_tensor, 4)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    panels = [bicubic, upscaled, original]
    PIL.Image.fromarray(np.concatenate(panels, axis=1)).save(DOCS / "motorcycle_comparison.png")
    start = (CROP - ZOOM_WINDOW) // 2
    windows = [panel[start : start + ZOOM_WINDOW, start : start + ZOOM_WINDOW] for panel in panels]
    zoom = PIL.Image.fromarray(np.concatenate(windows, axis=1))
    zoom.resize((zoom.width * 2, zoom.height * 2), PIL.Image.NEAREST).save(DOCS / "motorcycle_comparison_zoom.png")
    print(f"wrote {DOCS / 'motorcycle_comparison.png'} and {DOCS / 'motorcycle_comparison_zoom.png'}")


if __name__ == "__main__":
    main()

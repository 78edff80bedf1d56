"""Do ways of combining the shipped model's two predictors at inference move its PSNR/LPIPS trade-off?

A model with a perceptual `predictor` and a `faithful_predictor` (L1) of the same architecture, the first trained
from the second, has other points between theirs that need no training; this script measured them for issue 10's
LPIPS target (docs/recipe.md sections 11, 13 and 14), and the best, the split, became the pipeline option
`frequency_split_sigma`. Run it on a pipeline assembled from a training run's two predictors (as
`docs/shipped_model/device/assemble.py` does): the shipped model's `predictor` is already extrapolated 1.25 past its
faithful one, so there `interpolate 1` is that extrapolated predictor. The pipeline's own split is left out: rows,
each the predictor image the pipeline returns at `strength=0` (the consistency projection included):

- `interpolate a`: network interpolation (ESRGAN, Wang et al., 2018, section 3.4): one predictor with the weights
  (1 - a) x faithful + a x perceptual; a = 0 is the faithful predictor, 1 the perceptual one, a > 1 extrapolates
  past it along the direction the perceptual training moved the weights.
- `split s`: the faithful image's low frequencies with the perceptual image's high ones, G_s * faithful +
  (perceptual - G_s * perceptual), with G_s a Gaussian blur of standard deviation s pixels. With `--split_alpha a`
  the high frequencies come from the interpolated predictor of `interpolate a` instead (`split s, a`).
- `self-ensemble`: the mean of the perceptual predictor's images of the 8 flips and rotations of the input, turned
  back (Timofte et al., 2016).

Images and metrics are those of `benchmarks/quality.py` (the 17 held-out photos, MATLAB-bicubic LR 64 -> HR 256,
`evaluation.PairMetrics`).

    python benchmarks/predictor_tradeoff.py
    python benchmarks/predictor_tradeoff.py --alphas 1 1.25 1.5 --sigmas 1 --no_self_ensemble
"""

import argparse
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import torch

from quality import DEFAULT_HELDOUT, DEFAULT_MODEL, DEFAULT_PHOTOS_ROOT, heldout_dataset
from sr3_diffusers import SR3PredictorModel, evaluation
from sr3_diffusers.image_processing import frequency_split
from sr3_diffusers.models import interpolate_predictors


SCALE = 4
METRICS = ("psnr_rgb", "lpips", "sharpness_gradient")


def self_ensemble(upscale: Callable[[torch.Tensor], torch.Tensor], low_res: torch.Tensor) -> torch.Tensor:
    """The mean of `upscale` over the 8 flips and rotations of `low_res` `(B, C, h, w)`, each turned back."""
    outputs = []
    for flip in (False, True):
        flipped = low_res.flip(-1) if flip else low_res
        for turns in range(4):
            output = torch.rot90(upscale(torch.rot90(flipped, turns, (-2, -1))), -turns, (-2, -1))
            outputs.append(output.flip(-1) if flip else output)
    return torch.stack(outputs).mean(0)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="A pipeline with both predictors.")
    parser.add_argument("--alphas", type=float, nargs="*", default=[0, 0.5, 1, 1.25, 1.5])
    parser.add_argument("--sigmas", type=float, nargs="*", default=[1, 1.5, 2])
    parser.add_argument("--split_alpha", type=float, default=1.0, help="The split's high frequencies' predictor.")
    parser.add_argument("--no_self_ensemble", action="store_true")
    parser.add_argument("--heldout", type=Path, default=DEFAULT_HELDOUT)
    parser.add_argument("--photos_root", type=Path, default=DEFAULT_PHOTOS_ROOT)
    parser.add_argument("--lr_size", type=int, default=64, help="Side of the centre LR crop (HR: 4 x lr_size).")
    return parser.parse_args(argv)


def measure(args) -> Dict[str, Dict[str, float]]:
    """Each row's mean PSNR RGB (and its difference to bicubic's), LPIPS and sharpness on the held-out photos."""
    pipe = evaluation.load_pipeline(args.model, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    faithful, perceptual = pipe.faithful_predictor, pipe.predictor
    if faithful is None or perceptual is None:
        raise SystemExit(f"{args.model} needs both a predictor and a faithful_predictor.")
    pipe.register_to_config(frequency_split_sigma=None)  # each row's predictor alone; the split rows are made here
    dataset = heldout_dataset(args.heldout, args.photos_root)
    pairs, _ = evaluation.load_pairs(dataset, SCALE, center_crop=args.lr_size * SCALE, root=str(args.photos_root))
    low_res = torch.stack([evaluation.to_float(pair.low_res) for pair in pairs])

    def predictor_images(predictor: SR3PredictorModel, inputs: torch.Tensor = low_res) -> torch.Tensor:
        # strength=0 returns the pipeline's faithful predictor's image, else its predictor's.
        pipe.predictor, pipe.faithful_predictor = predictor, None
        with torch.no_grad():
            return pipe(inputs, strength=0, output_type="pt").images

    images_at: Dict[float, torch.Tensor] = {}

    def interpolated_images(alpha: float) -> torch.Tensor:
        # Each predictor's images once: a = 0 is also the split's low-frequency side, the split's --split_alpha
        # often one of the --alphas.
        if alpha not in images_at:
            images_at[alpha] = predictor_images(interpolate_predictors(faithful, perceptual, alpha))
        return images_at[alpha]

    outputs: Dict[str, torch.Tensor] = {
        "bicubic": torch.stack([evaluation.to_float(evaluation.bicubic_upscale(p.low_res, SCALE)) for p in pairs])
    }
    for alpha in args.alphas:
        outputs[f"interpolate {alpha:g}"] = interpolated_images(alpha)
    faithful_images, sharp_images = interpolated_images(0), interpolated_images(args.split_alpha)
    for sigma in args.sigmas:
        split = frequency_split(faithful_images, sharp_images, sigma)
        outputs[f"split {sigma:g}" + (f", {args.split_alpha:g}" if args.split_alpha != 1 else "")] = split
    if not args.no_self_ensemble:
        outputs["self-ensemble"] = self_ensemble(lambda inputs: predictor_images(perceptual, inputs), low_res)

    metrics = evaluation.PairMetrics(SCALE)
    results = {}
    for name, images in outputs.items():
        outputs_uint8 = evaluation.to_uint8(images)
        scores = [metrics(output, pair.high_res, pair.low_res) for output, pair in zip(outputs_uint8, pairs)]
        results[name] = {key: float(np.mean([score[key] for score in scores])) for key in METRICS}
        results[name]["delta_psnr_rgb"] = results[name]["psnr_rgb"] - results["bicubic"]["psnr_rgb"]
    return results


def main(args) -> None:
    results = measure(args)
    print(f"{args.model} on the photos of {args.heldout}; bicubic {results['bicubic']['psnr_rgb']:.3f} dB")
    print("| row | ΔPSNR RGB vs bicubic | LPIPS | sharpness (gradient) |\n|---|---:|---:|---:|")
    for name, row in results.items():
        print(f"| {name} | {row['delta_psnr_rgb']:+.3f} | {row['lpips']:.4f} | {row['sharpness_gradient']:.3f} |")


if __name__ == "__main__":
    main(parse_args())

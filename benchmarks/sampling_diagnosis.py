"""Why does pure SR3 sampling of a model leave noise or shift colours? Per-step previews of the predicted image.

For a few held-out photos (64 -> 256 centre crops, as `benchmarks/quality.py`), samples from pure noise (strength 1,
no projection) with the model's scheduler, keeps every step's `pred_original_sample` (the pipeline's preview of the
result, an image in [-1, 1]) and prints, per step: the noise level sqrt(gamma) the UNet is asked for, where it lies in
the model's training range, the PSNR of the preview against the original photo, the colour shift (the largest
per-channel mean difference to the original, in 8-bit levels), and the preview's high-frequency energy relative to
the original's (1 = as much fine detail as the photo; much more is leftover noise). It also writes a strip of previews
(`--output`, PNG): bicubic, the previews at a few steps, the result, the original.

    python benchmarks/sampling_diagnosis.py --model sr3_diffusers/default --sampler dpmsolver++ --steps 20
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from sr3_diffusers import evaluation
from sr3_diffusers.image_processing import denormalize, upsample_bicubic

import quality


def high_frequency_energy(images: torch.Tensor, cutoff: float = 0.125) -> torch.Tensor:
    """Spectral energy above `cutoff` cycles/pixel (the x4 input's Nyquist frequency) of `(B, 3, H, W)` images."""
    spectrum = torch.fft.fft2(images - images.mean(dim=(-2, -1), keepdim=True)).abs().square()
    fy = torch.fft.fftfreq(images.shape[-2]).abs()[:, None]
    fx = torch.fft.fftfreq(images.shape[-1]).abs()[None, :]
    return (spectrum * (torch.maximum(fy, fx) > cutoff)).sum(dim=(-3, -2, -1))


def psnr(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    mse = (images.clamp(0, 1) - reference).square().mean(dim=(-3, -2, -1))
    return 10 * torch.log10(1.0 / mse)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sr3_diffusers/default", help="SR3 pipeline folder or Hub id.")
    parser.add_argument("--sampler", choices=evaluation.SAMPLERS, default=None, help="Default: the model's own.")
    parser.add_argument("--steps", type=int, default=None, help="Sampling steps. Default: the scheduler's.")
    parser.add_argument("--max_images", type=int, default=4, help="Held-out photos to sample.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("outputs/sampling_diagnosis.png"), help="Preview strip.")
    return parser.parse_args(argv)


def main(args) -> int:
    pipe = evaluation.load_pipeline(args.model, "cpu")
    evaluation.use_sampler(pipe, args.sampler)
    steps = evaluation.resolve_steps(pipe, args.steps)
    dataset = quality.heldout_dataset(quality.DEFAULT_HELDOUT, quality.DEFAULT_PHOTOS_ROOT)
    pairs, _ = evaluation.load_pairs(dataset, pipe.config.scale, center_crop=256, max_images=args.max_images)
    low_res = torch.stack([evaluation.to_float(pair.low_res) for pair in pairs])
    high_res = torch.stack([evaluation.to_float(pair.high_res) for pair in pairs])

    previews, noise_levels = [], []

    def keep_preview(pipe, step_index, timestep, callback_kwargs):
        previews.append(denormalize(callback_kwargs["pred_original_sample"]).cpu())
        noise_levels.append(pipe.scheduler.get_noise_level(timestep).item())
        return {}

    output = pipe(
        low_res,
        num_inference_steps=steps,
        strength=1.0,
        enforce_consistency=False,
        generator=torch.Generator().manual_seed(args.seed),
        output_type="pt",
        callback_on_step_end=keep_preview,
        callback_on_step_end_tensor_inputs=["pred_original_sample"],
    ).images
    gammas = pipe.scheduler.alphas_cumprod
    trained = (gammas[-1].sqrt().item(), (1 - pipe.scheduler.config.beta_start) ** 0.5)
    reference_energy = high_frequency_energy(high_res)
    bicubic = upsample_bicubic(low_res, pipe.config.scale).clamp(0, 1)

    print(f"Model {args.model}: {type(pipe.scheduler).__name__}, {steps} steps, prediction type "
          f"{pipe.scheduler.config.prediction_type}, residual_scale {pipe.config.residual_scale}, predictor "
          f"{'yes' if pipe.predictor is not None else 'no'}; trained sqrt(gamma) range "
          f"[{trained[0]:.4f}, {trained[1]:.4f}]; {len(pairs)} photos.\n")  # fmt: skip
    print("| step | sqrt(gamma) | in training range | preview PSNR (dB) | colour shift (levels) | HF energy / photo |")
    print("|---:|---:|---|---:|---:|---:|")
    rows = [("bicubic", None, bicubic)] + list(zip(range(len(previews)), noise_levels, previews)) + [("output", None, output)]
    for step, noise_level, images in rows:
        shift = ((images.mean(dim=(-2, -1)) - high_res.mean(dim=(-2, -1))).abs().amax(dim=-1) * 255).mean().item()
        energy = (high_frequency_energy(images.clamp(0, 1)) / reference_energy).mean().item()
        level = "-" if noise_level is None else f"{noise_level:.4f}"
        inside = "-" if noise_level is None else ("yes" if trained[0] - 1e-6 <= noise_level <= trained[1] + 1e-6 else "NO")
        print(f"| {step} | {level} | {inside} | {psnr(images, high_res).mean().item():.2f} | {shift:.1f} | {energy:.2f} |")

    # The strip: bicubic | previews at 4 steps | output | original, one row per photo
    picks = sorted({0, len(previews) // 3, 2 * len(previews) // 3, len(previews) - 1})
    columns = [bicubic] + [previews[index] for index in picks] + [output, high_res]
    strip = torch.cat([torch.cat([column[i] for column in columns], dim=-1) for i in range(len(pairs))], dim=-2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(evaluation.to_uint8(strip[None])[0]).save(args.output)
    print(f"\nPreview strip (bicubic | steps {', '.join(str(p) for p in picks)} | output | original): {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))

"""How far the reference-compatible metric variants are from the real metrics, on the same images (docs/metrics.md).

Images: every photo under `--photos` gives the evaluation pair of SPEC section 3 (`sr3_diffusers.data.center_crop_pair`:
centre LR crop of 64 pixels made with MATLAB's antialiased bicubic, HR crop of 256 at exactly 4x its offset). The
"outputs" are the bicubic x4 upscales of the LR crops (`image_processing.upsample_bicubic`, the SR3 condition),
quantised to uint8; the metrics compare them with the HR crops, as the bicubic baseline row of an evaluation would.

Every number comes from the `evaluate` modules in `sr3_diffusers/metrics`, except the last table, which feeds the same
Inception network with pytorch-fid's input convention to show what our TF-style resize changes. Needs the TF-Inception
weights in the cache (see `sr3_diffusers/metrics/inception.py`). Prints markdown tables. From the repository root, with
the package installed (or `PYTHONPATH=.`). Most of the time goes to the Inception network (4 passes over every image):

    python benchmarks/metric_variants.py --photos ../shared/data/photos-train
"""

import argparse
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from sr3_diffusers.data import center_crop_pair, image_to_tensor
from sr3_diffusers.evaluation import to_uint8
from sr3_diffusers.image_processing import upsample_bicubic
from sr3_diffusers.metrics import inception
from sr3_diffusers.metrics.consistency.consistency import Consistency
from sr3_diffusers.metrics.fid.fid import FID, frechet_distance
from sr3_diffusers.metrics.psnr.psnr import PSNR
from sr3_diffusers.metrics.ssim.ssim import SSIM

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, required=True, help="Folder searched recursively for photos.")
    parser.add_argument("--lr_size", type=int, default=64, help="Side of the centre LR crop.")
    parser.add_argument("--scale", type=int, default=4, help="Super-resolution factor.")
    parser.add_argument("--batch_size", type=int, default=16, help="Images per Inception call.")
    parser.add_argument("--device", default="cpu", help="Where the Inception network runs.")
    return parser.parse_args()


def load_pairs(photos: Path, lr_size: int, scale: int):
    """uint8 (LR crops, HR crops, bicubic upscales) of every photo large enough for the crop, and the skipped count."""
    low_res, high_res, bicubic, skipped = [], [], [], 0
    for path in sorted(p for p in photos.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        image = image_to_tensor(PIL.Image.open(path))
        if min(image.shape[-2:]) < lr_size * scale:
            skipped += 1
            continue
        lr, hr = center_crop_pair(image, lr_size, scale)
        low_res.append(to_uint8(lr))
        high_res.append(to_uint8(hr))
        bicubic.append(to_uint8(upsample_bicubic(lr[None], scale)[0]))
    return low_res, high_res, bicubic, skipped


def pytorch_fid_inputs(images):
    """pytorch-fid's input convention: half-pixel-centred bilinear resize to 299 of [0, 1] images, then 2x - 1."""
    batch = torch.stack([torch.tensor(image, dtype=torch.float32).permute(2, 0, 1) / 255.0 for image in images])
    return 2.0 * F.interpolate(batch, size=(299, 299), mode="bilinear", align_corners=False) - 1.0


@torch.inference_mode()
def pytorch_fid_features(images, network, batch_size, device):
    chunks = [images[start : start + batch_size] for start in range(0, len(images), batch_size)]
    return np.concatenate([network(pytorch_fid_inputs(chunk).to(device)).double().cpu().numpy() for chunk in chunks])


def statistics(features):
    return features.mean(axis=0), np.cov(features, rowvar=False)


def main(args):
    low_res, high_res, bicubic, skipped = load_pairs(args.photos, args.lr_size, args.scale)
    hr_size = args.lr_size * args.scale
    print(f"{len(high_res)} photos ({skipped} skipped as too small): LR {args.lr_size} -> HR {hr_size}\n")
    pairs = dict(predictions=bicubic, references=high_res)
    network_kwargs = dict(batch_size=args.batch_size, device=args.device)

    psnr, ssim = PSNR(), SSIM()
    reference_psnr = PSNR(config_name="reference_compatible").compute(**pairs)["reference_psnr"]
    reference_ssim = SSIM(config_name="reference_compatible").compute(**pairs)["reference_ssim"]
    fid = FID().compute(**pairs, **network_kwargs)["fid"]
    reference_fid = FID(config_name="reference_compatible").compute(**pairs, **network_kwargs)["reference_fid"]
    rows = [
        ("PSNR (dB), Y, crop 8", psnr.compute(**pairs, channel="y", crop_border=8)["psnr"], reference_psnr),
        ("PSNR (dB), RGB, no crop (SR3 paper)", psnr.compute(**pairs)["psnr"], reference_psnr),
        ("SSIM, Y, crop 8", ssim.compute(**pairs, channel="y", crop_border=8)["ssim"], reference_ssim),
        ("SSIM, RGB, no crop", ssim.compute(**pairs)["ssim"], reference_ssim),
        ("FID (2048-d pool3)", fid, reference_fid),
    ]
    print("| real metric | real | reference-compatible variant | variant - real |")
    print("|---|---|---|---|")
    for name, real, variant in rows:
        print(f"| {name} | {real:.4f} | {variant:.4f} | {variant - real:+.3g} |")
    consistency = Consistency().compute(predictions=bicubic, references=low_res)["consistency"]
    print(f"\nConsistency of the bicubic upscales (no variant): {consistency:.3e}\n")

    network = inception.load_inception().to(args.device)
    ours = [inception.network_outputs(images, network, **network_kwargs) for images in (bicubic, high_res)]
    theirs = [pytorch_fid_features(images, network, **network_kwargs) for images in (bicubic, high_res)]
    ours_fid = frechet_distance(*statistics(ours[0]), *statistics(ours[1]))
    theirs_fid = frechet_distance(*statistics(theirs[0]), *statistics(theirs[1]))
    feature_change = np.abs(ours[1] - theirs[1]).mean() / np.abs(ours[1]).mean()
    print("| Inception input | FID | mean relative change of the HR features |")
    print("|---|---|---|")
    print(f"| ours: TF1 bilinear (no half-pixel centres), (x - 128) / 128 | {ours_fid:.4f} | - |")
    print(f"| pytorch-fid: half-pixel bilinear, x / 127.5 - 1 | {theirs_fid:.4f} | {feature_change:.2%} |")


if __name__ == "__main__":
    main(parse_args())

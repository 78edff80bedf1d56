"""Training pairs per second of train_sr3.py's data path, without and with `--cache_images`.

Builds the training data exactly as `train_sr3.py` does (`load_image_dataset`, `prepare_train_dataset`, a
`DataLoader` with a seeded generator) on a folder of photos and times how fast the loader yields (LR, HR) crop pairs,
with no model in the loop: the ceiling the data path puts on training speed. Without `--cache_images` every pair
decodes its whole photo; with it, each photo is decoded once, up front (that one-off time is printed separately).

    python benchmarks/data_throughput.py                                   # photos/train (docs/shipped_model/split_photos.sh)
    python benchmarks/data_throughput.py --data_dir my_photos --num_workers 4 --resolution 256 --batch_size 16
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from sr3_diffusers.data import load_image_dataset, prepare_train_dataset


REPO_ROOT = Path(__file__).resolve().parent.parent


def pairs_per_second(data_dir, cache_dir, cache_images, resolution, scale, batch_size, num_workers, num_batches):
    """(set-up seconds, pairs per second over `num_batches` batches after one warm-up batch)."""
    start = time.perf_counter()
    dataset = load_image_dataset(data_dir=str(data_dir), cache_dir=cache_dir)
    dataset, _, _ = prepare_train_dataset(
        dataset, "image", resolution // scale, scale, seed=0, cache_images=cache_images
    )
    setup_seconds = time.perf_counter() - start
    # Random photos with replacement, so that a small folder still fills every batch.
    sampler = torch.utils.data.RandomSampler(
        dataset, replacement=True, num_samples=(num_batches + 1) * batch_size, generator=torch.Generator().manual_seed(0)
    )
    batches = iter(torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers))
    next(batches)  # warms up the workers; not timed
    start = time.perf_counter()
    num_pairs = sum(len(batch["hr"]) for batch in batches)
    return setup_seconds, num_pairs / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=REPO_ROOT / "photos" / "train")
    parser.add_argument("--resolution", type=int, default=128, help="HR crop size (the shipped model's recipe: 128).")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader workers (train_sr3.py's default: 0).")
    parser.add_argument("--num_batches", type=int, default=8, help="Timed batches per setting.")
    args = parser.parse_args()
    if not args.data_dir.is_dir():
        parser.error(f"--data_dir {args.data_dir} is not a folder (make photos/ with docs/shipped_model/split_photos.sh).")

    print(f"{args.data_dir} ({len(list(args.data_dir.iterdir()))} files), {args.resolution}-px HR crops x{args.scale},"
          f" batch {args.batch_size}, {args.num_workers} workers, torch threads {torch.get_num_threads()},"
          f" load average {os.getloadavg()[0]:.2f}")
    print("| data path | set-up s | pairs / s |\n|---|---:|---:|")
    with tempfile.TemporaryDirectory() as cache_dir:
        for cache_images in (False, True):
            setup, rate = pairs_per_second(
                args.data_dir, cache_dir, cache_images, args.resolution, args.scale, args.batch_size,
                args.num_workers, args.num_batches,
            )  # fmt: skip
            label = "--cache_images (decoded once)" if cache_images else "decode per pair (default)"
            print(f"| {label} | {setup:.1f} | {rate:.1f} |")


if __name__ == "__main__":
    main()

"""Cost of the consistency projection (`image_processing.project_to_downscaled`) at large output sizes.

`SR3Pipeline(enforce_consistency=True)` projects the predicted image at every step. The projection used to build the
dense pseudo-inverse of each axis's downscaling matrix with `torch.linalg.pinv` (an SVD: about 70 s the first time a
side reached 8000 pixels) and applied dense matrices; it now applies the sparse downscaling matrix and the inverse of
its small Gram matrix (A^+ = A^T (A A^T)^-1, a Cholesky factorisation). Both run here in one process, alternately, on
the same `(3, size, size)` image: the first call (the per-size operators built, caches cleared) and a warm call
(cached), with the largest difference between their outputs.

    python benchmarks/projection_cost.py [--sizes 2000 8000] [--scale 4] [--threads 2] [--skip-before]
                                         [--json benchmarks/results/projection_cost.json]
"""

import argparse
import json
import math
import os
import platform
import time
from datetime import date
from functools import lru_cache
from pathlib import Path

import torch

from sr3_diffusers import image_processing


# ----------------------------------------------------------------------------------------------------------------------
# The implementation before the change, kept verbatim for comparison (dense matrices and `torch.linalg.pinv`).


@lru_cache(maxsize=16)
def _dense_downscale_matrices(size: int, scale: int):
    matrix = image_processing._matlab_resize_matrix(size, math.ceil(size / scale), 1.0 / scale, antialias=True)
    return matrix, torch.linalg.pinv(matrix)


def dense_project_to_downscaled(images: torch.Tensor, low_res: torch.Tensor, scale: int) -> torch.Tensor:
    height, width = images.shape[-2:]
    rows, rows_pinv = _dense_downscale_matrices(height, scale)
    cols, cols_pinv = _dense_downscale_matrices(width, scale)
    matrices = [m.to(images.device, torch.float32) for m in (rows, rows_pinv, cols, cols_pinv)]
    rows, rows_pinv, cols, cols_pinv = matrices
    residual = low_res.float() - rows @ images.float() @ cols.T
    return (images.float() + rows_pinv @ residual @ cols_pinv.T).to(images.dtype)


# ----------------------------------------------------------------------------------------------------------------------


VARIANTS = {
    "before (dense pinv)": (dense_project_to_downscaled, _dense_downscale_matrices.cache_clear),
    "after (sparse + Gram inverse)": (
        image_processing.project_to_downscaled,
        image_processing._matlab_downscale_operators.cache_clear,
    ),
}


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8000], help="Output sides in pixels (square images).")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-before", action="store_true", help="Time only the current implementation.")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/projection_cost.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    machine = f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads"
    machine += f", load average {os.getloadavg()[0]:.1f}"
    print(f"Machine: {machine}")

    variants = {name: value for name, value in VARIANTS.items() if not (args.skip_before and "before" in name)}
    rows = []
    print("| output side | implementation | first call (s) | warm call (s) | max diff vs before |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        generator = torch.Generator().manual_seed(0)
        images = torch.rand(3, size, size, generator=generator) * 2 - 1
        low_res = torch.rand(3, math.ceil(size / args.scale), math.ceil(size / args.scale), generator=generator) * 2 - 1
        outputs = {}
        for name, (project, clear_cache) in variants.items():
            clear_cache()
            outputs[name], first = timed(project, images, low_res, args.scale)
            _, warm = timed(project, images, low_res, args.scale)
            rows.append({"size": size, "implementation": name, "first_call_s": first, "warm_call_s": warm})
            reference = outputs.get("before (dense pinv)")
            difference = (outputs[name] - reference).abs().max().item() if reference is not None else None
            rows[-1]["max_abs_diff_vs_before"] = difference
            shown = "-" if difference is None else f"{difference:.2e}"
            print(f"| {size} | {name} | {first:.2f} | {warm:.2f} | {shown} |", flush=True)
            clear_cache()  # free the operators before the next variant
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"date": str(date.today()), "machine": machine, "rows": rows}, indent=2) + "\n")
    print(f"Wrote {args.json}")


if __name__ == "__main__":
    main()

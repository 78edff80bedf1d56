"""`memory.estimate_sampling_memory` (what `sr3-upscale` checks before sampling) against the measured peak.

Each configuration runs one 1-step pipeline call in a fresh Python subprocess, set up as `sr3-upscale` runs it on a CPU
(channels-last UNet), and reports its peak resident memory above the memory after loading (`ru_maxrss`, as
`pipeline_speed.py` measures it), next to the estimate computed from the sizes alone.

    python benchmarks/memory_estimate.py     # the shipped model: 512 and 1024 untiled, 1024 in 256 tiles
    python benchmarks/memory_estimate.py --sizes 1024:none 4096:512
"""

import argparse
import json
import os
import resource
import subprocess
import sys

from common import DEFAULT_MODEL_FOLDER


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_child(model: str, side: int, tile_size) -> dict:
    import numpy as np
    import torch

    from sr3_diffusers import SR3Pipeline
    from sr3_diffusers.memory import estimate_sampling_memory

    pipe = SR3Pipeline.from_pretrained(model)
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.set_progress_bar_config(disable=True)
    scale = pipe.config.scale
    image = np.full((side // scale, side // scale, 3), 0.5, dtype=np.float32)
    loaded = current_rss_bytes()
    pipe(image, num_inference_steps=1, generator=torch.manual_seed(0), output_type="np", tile_size=tile_size)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    estimate = estimate_sampling_memory(pipe.unet.config, side, side, tile_size=tile_size)
    return {"side": side, "tile_size": tile_size, "measured_bytes": peak - loaded, "estimated_bytes": estimate}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL_FOLDER), help="An SR3Pipeline folder (default: shipped).")
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=["512:none", "1024:none", "1024:256"],
        help="OUTPUT_SIDE:TILE pairs (TILE 'none' for untiled).",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, side, tile = args.child
        print(json.dumps(run_child(model, int(side), None if tile == "none" else int(tile))))
        return

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    print(f"{'output':>10} {'tile':>5} {'measured MiB':>13} {'estimated MiB':>14} {'estimate/measured':>18}")
    for size in args.sizes:
        side, tile = size.split(":")
        command = [sys.executable, __file__, "--child", args.model, side, tile]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        measured, estimated = result["measured_bytes"] / 2**20, result["estimated_bytes"] / 2**20
        row = f"{side + 'x' + side:>10} {tile:>5} {measured:>13.0f} {estimated:>14.0f} {estimated / measured:>18.2f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()

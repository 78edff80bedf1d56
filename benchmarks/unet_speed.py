"""UNet latency: SR3UNet2DModel against a diffusers UNet2DModel with the same architecture.

Both models have the `sr3-64-256` layout (channels 56 x (1, 2, 4, 4, 8, 8), 3 ResBlocks per depth down and 4 up,
single-head attention at depth 4 and in the middle, GroupNorm(8)); they differ only in the noise-level embedding's
period and in SR3's explicit condition input. For each input size and precision (fp32, bf16 autocast, fp32
channels_last) the variants run alternately in one process after warm-up; we report median latencies, their ratio
(SR3 / UNet2DModel, <= 1.0 means ours is at least as fast), FLOPs counted by `torch.utils.flop_counter` and the achieved
fraction of this machine's matrix-multiply peak, measured with `torch.mm` in the same run.

    python benchmarks/unet_speed.py [--sizes 128 256 1024] [--repeats 5] [--device cpu|cuda]
                                    [--json benchmarks/results/unet_speed.json]

Forward+backward at 1024 needs tens of GB of activations for a 110M-parameter UNet, so at sizes above
`--backward-max-size` (default 256) only the forward pass is timed.
"""

import argparse
import contextlib
import json
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch
from diffusers import UNet2DModel
from torch.utils.flop_counter import FlopCounterMode

from sr3_diffusers import SR3UNet2DModel


PRECISIONS = ("fp32", "bf16-autocast", "fp32-channels_last")


def matched_unet2d(sr3: SR3UNet2DModel) -> UNet2DModel:
    """A diffusers UNet2DModel with the SR3 model's channels, blocks, attention placement and norm groups."""
    config = sr3.config
    depths = range(len(config.block_out_channels))
    return UNet2DModel(
        in_channels=config.in_channels + config.condition_channels,
        out_channels=config.out_channels,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        down_block_types=tuple("AttnDownBlock2D" if d in config.attention_depths else "DownBlock2D" for d in depths),
        up_block_types=tuple(
            "AttnUpBlock2D" if d in config.attention_depths else "UpBlock2D" for d in reversed(depths)
        ),
        attention_head_dim=None,  # one head per attention layer, as SR3
        norm_num_groups=config.norm_num_groups,
        norm_eps=config.norm_eps,
        flip_sin_to_cos=False,
        freq_shift=1,
    )


def synchronize(device: torch.device):
    """Wait for queued GPU work, so that wall-clock timers measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul_peak(dtype: torch.dtype, device: torch.device, repeats: int = 5) -> float:
    """GFLOP/s of the fastest square `torch.mm` seen over a few sizes: this machine's practical matrix-multiply peak.

    The best run, not the median: a peak is what the hardware reaches when nothing interferes, and a median taken on a
    shared machine would understate it (and so overstate every fraction of it).
    """
    # A GPU needs larger products than a CPU to reach its peak.
    sizes = (4096, 8192) if device.type == "cuda" else (1024, 2048, 3072)
    best = 0.0
    for size in sizes:
        a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
        torch.mm(a, b)
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            torch.mm(a, b)
            synchronize(device)
            best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def make_call(model, which: str, size: int, precision: str, backward: bool):
    """A closure running one forward (and backward) pass of `model` in `precision`, on the model's device."""
    device = model.device
    memory_format = torch.channels_last if precision == "fp32-channels_last" else torch.contiguous_format
    model.to(memory_format=memory_format)
    sample = torch.randn(1, 3, size, size, device=device).to(memory_format=memory_format)
    condition = torch.randn(1, 3, size, size, device=device).to(memory_format=memory_format)
    joined = torch.cat([sample, condition], dim=1).contiguous(memory_format=memory_format)
    noise_level = torch.tensor([0.5], device=device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16-autocast" else contextlib.nullcontext()
    )

    def call():
        with autocast, torch.set_grad_enabled(backward):
            if which == "sr3":
                output = model(sample, noise_level, condition).sample
            else:
                output = model(joined, noise_level).sample
            if backward:
                output.float().square().mean().backward()

    return call


def count_flops(call) -> int:
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def time_alternating(calls: dict, repeats: int, device: torch.device) -> dict:
    """Median seconds per call, the variants interleaved so that drifts of the machine hit both alike."""
    for call in calls.values():
        call()  # warm-up
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            synchronize(device)
            start = time.perf_counter()
            call()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 1024])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backward-max-size", type=int, default=256)
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/unet_speed.json"))
    args = parser.parse_args()

    torch.manual_seed(0)
    sr3 = SR3UNet2DModel.from_preset("sr3-64-256").to(args.device)
    unet2d = matched_unet2d(sr3).to(args.device)
    parameters = {name: sum(p.numel() for p in m.parameters()) for name, m in (("sr3", sr3), ("unet2d", unet2d))}
    peaks = {dtype_name: measure_matmul_peak(dtype, args.device)
             for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    hardware = (torch.cuda.get_device_name(args.device) if args.device.type == "cuda"
                else f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"torch {torch.__version__}, {hardware}")
    print(f"parameters: SR3 {parameters['sr3'] / 1e6:.2f}M, UNet2DModel {parameters['unet2d'] / 1e6:.2f}M")
    print(f"torch.mm peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s\n")

    rows = []
    header = f"{'size':>5} {'pass':>8} {'precision':>19} {'SR3 s':>8} {'UNet2D s':>9} {'ratio':>6} {'GFLOP':>8} {'% peak':>7}"
    print(header)
    for size in args.sizes:
        passes = ["forward"] + (["fwd+bwd"] if size <= args.backward_max_size else [])
        for pass_name in passes:
            backward = pass_name == "fwd+bwd"
            for precision in args.precisions:
                calls = {
                    "sr3": make_call(sr3, "sr3", size, precision, backward),
                    "unet2d": make_call(unet2d, "unet2d", size, precision, backward),
                }
                flops = count_flops(calls["sr3"])
                seconds = time_alternating(calls, args.repeats, args.device)
                peak = peaks["bf16" if precision == "bf16-autocast" else "fp32"]
                fraction = flops / seconds["sr3"] / 1e9 / peak
                row = dict(size=size, pass_=pass_name, precision=precision, sr3_s=seconds["sr3"],
                           unet2d_s=seconds["unet2d"], ratio=seconds["sr3"] / seconds["unet2d"],
                           gflop=flops / 1e9, fraction_of_peak=fraction)
                rows.append(row)
                print(f"{size:>5} {pass_name:>8} {precision:>19} {row['sr3_s']:>8.3f} {row['unet2d_s']:>9.3f} "
                      f"{row['ratio']:>6.3f} {row['gflop']:>8.1f} {100 * fraction:>6.1f}%", flush=True)
        for model in (sr3, unet2d):
            model.zero_grad(set_to_none=True)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dict(
        date=str(date.today()), torch=torch.__version__, threads=torch.get_num_threads(),
        machine=platform.machine(), device=hardware, parameters=parameters, matmul_peak_gflops=peaks, rows=rows,
    ), indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

"""GPU checks and figures: the pipeline in each precision, tiling, sampling speed and training steps on CUDA.

CI has no GPU, so what only a GPU can show is checked here, on a machine that has one, and printed:

1. The shipped model upscales the bundled photo (`docs/motorcycle_lr.png`, 128 -> 512) on CUDA in fp32, fp16 and bf16,
   and on the CPU in fp32, with the same seed (the pipeline draws its noise on the generator's device, the CPU, so all
   runs start from the same noise). Reported: non-finite pixels, PSNR against CUDA fp32 and the largest per-channel
   mean shift in 8-bit levels (a colour cast shows there). Also a tiled run (tile 256, overlap 64) against the
   untiled one.
2. Seconds per 64 -> 256 image for the `sr3-64-256` preset (random weights: speed does not depend on them): the
   reference 100-step sampler against 20-step DPM-Solver++, in fp32 and bf16, batch 1 and 8.
3. One `sr3-64-256` training step (batch 4 at 256 x 256, Adam): seconds and peak GPU memory, fp32 and bf16 autocast,
   with and without gradient checkpointing.

    python benchmarks/cuda_check.py [--json benchmarks/results/cuda_check.json]

Exits non-zero if a check fails (non-finite output, PSNR below its floor).
"""

import argparse
import contextlib
import json
import statistics
import time
from datetime import date
from pathlib import Path

import PIL.Image
import torch

from sr3_diffusers import (
    SHIPPED_MODEL,
    SR3DPMSolverScheduler,
    SR3Pipeline,
    SR3Scheduler,
    SR3UNet2DModel,
)
from sr3_diffusers.evaluation import to_uint8
from sr3_diffusers.metrics.psnr.psnr import PSNR

PHOTO = Path(__file__).resolve().parent.parent / "docs" / "motorcycle_lr.png"
# Floors of the checks, in dB against CUDA fp32: the CPU differs only by kernel rounding; fp16 and bf16 round every
# activation (bf16 keeps 8 bits of mantissa, so it sits lower); tiling blends overlapping noise predictions.
PSNR_FLOORS = {"cpu-fp32": 45.0, "cuda-fp16": 35.0, "cuda-bf16": 30.0, "cuda-fp32-tiled": 30.0}


def synchronized_seconds(function, device: torch.device) -> float:
    """Wall-clock seconds of `function()`, including the GPU work it queued."""
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    synchronize()
    start = time.perf_counter()
    function()
    synchronize()
    return time.perf_counter() - start


def upscale(pipe, image, **kwargs) -> torch.Tensor:
    """The float32 `(3, H, W)` output on the CPU, in [0, 1]."""
    return pipe(image, generator=torch.manual_seed(0), output_type="pt", **kwargs).images[0].float().cpu()


def check_precisions(image, device: torch.device) -> list:
    """Shipped model on the photo: CPU fp32 and GPU fp16/bf16/tiled against GPU fp32 (run names say "cuda")."""
    psnr = PSNR()
    runs = {}
    for name, run_device, dtype, kwargs in (
        ("cuda-fp32", device, torch.float32, {}),
        ("cpu-fp32", torch.device("cpu"), torch.float32, {}),
        ("cuda-fp16", device, torch.float16, {}),
        ("cuda-bf16", device, torch.bfloat16, {}),
        ("cuda-fp32-tiled", device, torch.float32, dict(tile_size=256, tile_overlap=64)),
    ):
        if run_device.type == "cpu" and dtype == torch.float16:
            continue  # no fp16 kernels for most CPU operators (only when the script is tried with --device cpu)
        pipe = SR3Pipeline.from_pretrained(SHIPPED_MODEL, dtype=dtype).to(run_device)
        pipe.set_progress_bar_config(disable=True)
        upscale(pipe, image, **kwargs)  # warm-up
        start = time.perf_counter()
        runs[name] = upscale(pipe, image, **kwargs)
        seconds = time.perf_counter() - start
        output = runs[name]
        row = dict(run=name, seconds=seconds, non_finite=int((~torch.isfinite(output)).sum()))
        if name != "cuda-fp32":
            reference = runs["cuda-fp32"]
            row["psnr_vs_cuda_fp32"] = psnr.compute(predictions=[to_uint8(output)], references=[to_uint8(reference)])[
                "psnr"
            ]
            row["max_channel_mean_shift"] = float((output - reference).mean(dim=(1, 2)).abs().max() * 255)
            row["ok"] = row["non_finite"] == 0 and row["psnr_vs_cuda_fp32"] >= PSNR_FLOORS[name]
        else:
            row["ok"] = row["non_finite"] == 0
        print(row, flush=True)
        yield row


def sampling_speed(device: torch.device) -> list:
    """Seconds per 64 -> 256 image with the sr3-64-256 preset: reference 100 steps vs DPM-Solver++ 20 steps."""
    torch.manual_seed(0)
    unet = SR3UNet2DModel.from_preset("sr3-64-256")
    image = PIL.Image.open(PHOTO).convert("RGB").resize((64, 64), PIL.Image.BICUBIC)
    for dtype in (torch.float32, torch.bfloat16):
        pipe = SR3Pipeline(unet, SR3Scheduler.from_preset("sr3-64-256")).to(device, dtype)
        pipe.set_progress_bar_config(disable=True)
        for batch in (1, 8):
            for scheduler, steps in ((SR3Scheduler, 100), (SR3DPMSolverScheduler, 20)):
                pipe.scheduler = scheduler.from_config(pipe.scheduler.config)
                call = lambda: pipe([image] * batch, num_inference_steps=steps, output_type="pt")  # noqa: E731
                call()  # warm-up
                seconds = statistics.median(synchronized_seconds(call, device) for _ in range(3))
                row = dict(dtype=str(dtype), batch=batch, sampler=scheduler.__name__, steps=steps,
                           seconds_per_image=seconds / batch)
                print(row, flush=True)
                yield row


def training_step_cost(device: torch.device) -> list:
    """Time and peak memory of an sr3-64-256 training step, batch 4 at 256 x 256."""
    scheduler = SR3Scheduler.from_preset("sr3-64-256")
    for checkpointing in (False, True):
        for precision in ("fp32", "bf16-autocast"):
            torch.manual_seed(0)
            unet = SR3UNet2DModel.from_preset("sr3-64-256").to(device).train()
            if checkpointing:
                unet.enable_gradient_checkpointing()
            optimizer = torch.optim.Adam(unet.parameters(), lr=1e-5)
            high_res = torch.rand(4, 3, 256, 256, device=device) * 2 - 1
            condition = torch.rand(4, 3, 256, 256, device=device) * 2 - 1
            autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16-autocast"
                        else contextlib.nullcontext())

            def step():
                noise = torch.randn_like(high_res)
                gamma = scheduler.sample_gamma(high_res.shape[0], device=device)
                with autocast:
                    prediction = unet(scheduler.add_noise(high_res, noise, gamma), gamma.sqrt(), condition).sample
                loss = torch.nn.functional.mse_loss(prediction.float(), noise)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            step()  # warm-up
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            seconds = statistics.median(synchronized_seconds(step, device) for _ in range(5))
            row = dict(gradient_checkpointing=checkpointing, precision=precision, seconds_per_step=seconds)
            if device.type == "cuda":
                row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            print(row, flush=True)
            yield row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/cuda_check.json"))
    parser.add_argument("--device", type=torch.device, default=torch.device("cuda"),
                        help="The GPU to check; `cpu` runs the same code on the CPU (slow; for trying the script).")
    args = parser.parse_args()
    if args.device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("cuda_check.py needs a CUDA GPU and none is visible to torch; try --device cpu.")
    device_name = torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, {device_name}", flush=True)

    image = PIL.Image.open(PHOTO).convert("RGB")
    results = dict(date=str(date.today()), torch=torch.__version__, device=device_name)
    results["precisions"] = list(check_precisions(image, args.device))
    results["sampling_speed"] = list(sampling_speed(args.device))
    results["training_step"] = list(training_step_cost(args.device))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")
    failed = [row["run"] for row in results["precisions"] if not row["ok"]]
    if failed:
        raise SystemExit(f"failed: {failed}")


if __name__ == "__main__":
    main()

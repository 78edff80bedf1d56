"""Quality of an SR3 model sampled with diffusers' own schedulers, next to our samplers, on the held-out photos.

Each of diffusers' DDIM, DPMSolverMultistep, Euler, UniPC and DDPM schedulers is built with
`from_config(pipe.scheduler.config)`, which takes over the model's linear-beta training schedule (T, beta range); the
pipeline feeds the UNet sqrt(alphas_cumprod[t]) as its noise level. The same images, metrics, resumable output folders
and table as `benchmarks/quality.py` (whose helpers this reuses), with the model's own call options (strength,
consistency projection) for every row; the first row is our SR3DPMSolverScheduler (DPM-Solver++) at the same steps.

    python benchmarks/diffusers_schedulers.py --num_inference_steps 20 [--max_images 17]

Writes `diffusers_schedulers.md` and `.json` under `--output_dir` (default `outputs/diffusers_schedulers/<model>`).
"""

import argparse
import json
import sys
from pathlib import Path

import diffusers

from quality import DEFAULT_HELDOUT, DEFAULT_MODEL, DEFAULT_PHOTOS_ROOT, REPO_ROOT, heldout_dataset, quality_table
from sr3_diffusers import evaluation
from sr3_diffusers.pipelines.pipeline_sr3 import DIFFUSERS_SCHEDULERS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="SR3 pipeline folder or Hub id (default: shipped).")
    parser.add_argument("--heldout", type=Path, default=DEFAULT_HELDOUT, help="List of held-out photos, one per line.")
    parser.add_argument("--photos_root", type=Path, default=DEFAULT_PHOTOS_ROOT, help="Folder the list is relative to.")
    parser.add_argument("--lr_size", type=int, default=64, help="Side of the centre LR crop (HR: scale x lr_size).")
    parser.add_argument("--num_inference_steps", type=int, default=20, help="Steps of every scheduler.")
    parser.add_argument("--schedulers", nargs="+", default=list(DIFFUSERS_SCHEDULERS), choices=DIFFUSERS_SCHEDULERS)
    parser.add_argument("--seed", type=int, default=0, help="Seed (per image, see sr3_diffusers.evaluation).")
    parser.add_argument("--batch_size", type=int, default=4, help="Images per pipeline call.")
    parser.add_argument("--max_images", type=int, default=None, help="Use only the first N held-out photos.")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu).")
    parser.add_argument("--output_dir", type=Path, default=None, help="Default: outputs/diffusers_schedulers/<model>.")
    args = parser.parse_args(argv)
    if args.output_dir is None:
        args.output_dir = REPO_ROOT / "outputs" / "diffusers_schedulers" / Path(args.model.rstrip("/")).name
    return args


def main(args) -> int:
    try:
        pipe = evaluation.load_pipeline(args.model, args.device, "float32")
        scale = pipe.config.scale
        pairs, report = evaluation.load_pairs(
            heldout_dataset(args.heldout, args.photos_root), scale, center_crop=args.lr_size * scale,
            max_images=args.max_images, root=str(args.photos_root),
        )
        data_settings = {"source": f"{args.heldout.resolve()} under {args.photos_root.resolve()}",
                         "center_crop": args.lr_size * scale}
        own_scheduler = pipe.scheduler
        schedulers = [("SR3DPMSolverScheduler (ours)", own_scheduler)] + [
            (name, getattr(diffusers, name).from_config(own_scheduler.config)) for name in args.schedulers
        ]
        results = []
        for name, scheduler in schedulers:
            print(f"== {name}", file=sys.stderr)
            pipe.scheduler = scheduler
            summary = evaluation.run_evaluation(
                pairs, args.output_dir / name.split()[0], scale, data_settings, pipe=pipe,
                num_inference_steps=args.num_inference_steps, seed=args.seed, batch_size=args.batch_size, fid=False,
                device=str(pipe.device), report=report,
            )
            results.append((name, summary))
    except (evaluation.EvaluationError, FileNotFoundError) as error:
        print(f"diffusers_schedulers.py: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2

    model = results[0][1]["settings"]["model"]
    text = (
        f"# SR3 with diffusers' schedulers on held-out photos\n\nModel `{args.model}` (UNet sha256 "
        f"{model['unet_sha256'][:12]}); {report.summary()}; centre crops LR {args.lr_size} -> HR {args.lr_size * scale};"
        f" {args.num_inference_steps} steps, strength {model['strength']:g}, consistency projection "
        f"{'on' if model['enforce_consistency'] else 'off'}; seed {args.seed}; device {pipe.device}.\n\n"
        f"{quality_table(results)}\n"
    )
    print(text)
    evaluation.write_atomically(args.output_dir / "diffusers_schedulers.md", text)
    joined = {"model": args.model, "data_report": report.summary(), "settings": {name: s for name, s in results}}
    evaluation.write_atomically(args.output_dir / "diffusers_schedulers.json", json.dumps(joined, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))

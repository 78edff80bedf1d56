"""Turn what train.sh brought back through $OUT into pipelines to score here: the shipped pipeline (its UNet and
scheduler) with the GPU-trained faithful predictor and, per perceptual checkpoint, that checkpoint as the predictor.

    python docs/shipped_model/device/assemble.py <the run's files_at folder> [--output_dir runs/device]
    python benchmarks/quality.py --model runs/device/checkpoint-N --settings "dpmsolver++:1,strength=0" dpmsolver++:1
    python benchmarks/predictor_tradeoff.py --model runs/device/checkpoint-N --alphas 0 0.5 1 --sigmas 1 1.5

(`strength=0` returns the faithful predictor's image; the perceptual predictor alone is `benchmarks/quality.py` on a
pipeline without it, as in docs/recipe.md section 10.)
"""

import argparse
from pathlib import Path

from safetensors.torch import load_file

from sr3_diffusers import SR3Pipeline, SR3PredictorModel


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("returned", type=Path, help="The folder holding faithful/ and perceptual/ from train.sh.")
    parser.add_argument("--base", default="sr3_diffusers/default", help="The pipeline whose UNet and scheduler to use.")
    parser.add_argument("--output_dir", type=Path, default=Path("runs/device"))
    args = parser.parse_args(argv)
    faithful = SR3PredictorModel.from_pretrained(args.returned / "faithful")
    for weights in sorted((args.returned / "perceptual").glob("checkpoint-*.safetensors")):
        predictor = SR3PredictorModel.from_config(faithful.config)  # stage 2 trained the same architecture
        predictor.load_state_dict(load_file(weights))
        output = args.output_dir / weights.stem
        # the predictor as the condition, as trained; predictor_tradeoff.py measures its split with the faithful one
        SR3Pipeline.from_pretrained(
            args.base, predictor=predictor, faithful_predictor=faithful, frequency_split_sigma=None
        ).save_pretrained(output)
        print(f"wrote {output}")


if __name__ == "__main__":
    main()

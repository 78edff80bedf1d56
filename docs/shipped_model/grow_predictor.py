"""A trained predictor made larger without changing its output: more residual blocks at the low resolution
(`--num_blocks`, appended after its own, each starting as the identity) and/or a branch at the high resolution
(`--num_high_res_blocks`, starting at zero). Training then starts from the predictor as it is (docs/recipe.md
section 11). Writes `<output_dir>/predictor/`, the layout `train_sr3.py --pretrained_model_name_or_path` reads.

    python docs/shipped_model/grow_predictor.py sr3_diffusers/default runs/predictor_high_res_init \
        --num_high_res_blocks 2
    python docs/shipped_model/grow_predictor.py sr3_diffusers/default runs/predictor_deeper_init --num_blocks 20
"""

import argparse

import torch

from sr3_diffusers import SR3PredictorModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="A pipeline folder (or Hub id) with a predictor/ subfolder.")
    parser.add_argument("output_dir")
    parser.add_argument("--num_blocks", type=int, default=None, help="Low-resolution blocks in all (default: as is).")
    parser.add_argument("--num_high_res_blocks", type=int, default=None, help="Default: as is.")
    parser.add_argument("--high_res_channels", type=int, default=None, help="Default: as is.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the new layers' initialisation.")
    args = parser.parse_args()

    trained = SR3PredictorModel.from_pretrained(args.model, subfolder="predictor")
    config = {key: value for key, value in trained.config.items() if not key.startswith("_")}
    for key in ("num_blocks", "num_high_res_blocks", "high_res_channels"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if config["num_blocks"] < trained.config.num_blocks or (
        trained.config.num_high_res_blocks
        and (config["high_res_channels"], config["num_high_res_blocks"])
        != (trained.config.high_res_channels, trained.config.num_high_res_blocks)
    ):
        raise SystemExit("Only growing is supported: more low-resolution blocks, or a branch the predictor lacks.")

    torch.manual_seed(args.seed)
    grown = SR3PredictorModel(**config)
    _, unexpected = grown.load_state_dict(trained.state_dict(), strict=False)
    if unexpected:
        raise SystemExit(f"{args.model}'s predictor does not fit the grown one: unexpected weights {unexpected}")
    with torch.no_grad():
        # An appended residual block whose last convolution is zero is the identity.
        for block in grown.blocks[trained.config.num_blocks :]:
            block.conv2.weight.zero_()
            block.conv2.bias.zero_()
    grown.save_pretrained(f"{args.output_dir}/predictor")
    print(f"{args.output_dir}/predictor: {sum(p.numel() for p in grown.parameters()):,} parameters")


if __name__ == "__main__":
    main()

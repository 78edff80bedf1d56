"""How fast can the LPIPS-VGG term move each network's image? A diagnostic of docs/recipe.md section 8.

Takes the shipped pipeline and one fixed batch (the centre 128x128 crops of the first `--num_photos` training photos,
their x4 LR as in training), then runs `--steps` Adam steps of the LPIPS-VGG term alone on one network and prints the
term every 5 steps: on the predictor's image, or on the image one sampling step from pure noise returns (the UNet's
x_0 estimate at gamma = `--gamma`, with a fixed noise draw, as `train_sr3.py --perceptual_gamma`). Both start from
the same image (the UNet's residual over the predictor is about zero), so the two curves compare how well each
network's output can follow the term, not how good it is on held-out photos.

    python docs/shipped_model/perceptual_step_response.py --network predictor
    python docs/shipped_model/perceptual_step_response.py --network unet [--learning_rate 2e-3] [--output_gain 10]
    python docs/shipped_model/perceptual_step_response.py --network unet --model runs/one_step_perceptual/checkpoint-200

Needs the LPIPS-VGG weights (see train_perceptual_refine.sh).
"""

import argparse
from pathlib import Path

import torch

from sr3_diffusers import SHIPPED_MODEL, SR3Pipeline
from sr3_diffusers.data import center_crop_pair, decode_image, image_to_tensor
from sr3_diffusers.image_processing import normalize
from sr3_diffusers.metrics.lpips.lpips import load_lpips_network
from sr3_diffusers.schedulers.scheduling_sr3_utils import noise_and_original_from_model_output


REPO = Path(__file__).resolve().parents[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", choices=("predictor", "unet"), required=True)
    parser.add_argument("--learning_rate", type=float, default=2e-4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--gamma", type=float, default=0.006, help="The UNet's noise level (the one-step sampler's).")
    parser.add_argument(
        "--output_gain", type=float, default=1.0,
        help="UNet only: divide conv_out by this and multiply its output by it (the same image to start with).",
    )
    parser.add_argument("--model", default=SHIPPED_MODEL, help="The pipeline folder (default: the shipped model).")
    parser.add_argument(
        "--fresh_noise", action="store_true",
        help="UNet only: draw the noise of x_t anew at every step, as training does (default: one fixed draw).",
    )
    parser.add_argument("--num_photos", type=int, default=4)
    parser.add_argument("--train_data_dir", type=Path, default=REPO / "photos" / "train")
    args = parser.parse_args()
    if args.network == "predictor" and args.output_gain != 1.0:
        parser.error("--output_gain rescales the UNet's conv_out: use it with --network unet.")

    torch.manual_seed(0)
    pipe = SR3Pipeline.from_pretrained(args.model)
    if pipe.faithful_predictor is not None:  # the L1 predictor, which the UNet was trained on
        pipe.register_modules(predictor=pipe.faithful_predictor)
    lpips_vgg = load_lpips_network(net="vgg")
    pairs = []
    for path in sorted(p for p in args.train_data_dir.rglob("*") if p.is_file())[: args.num_photos]:
        pairs.append(center_crop_pair(image_to_tensor(decode_image(str(path))), 32, pipe.config.scale))
    low_res, high_res = (normalize(torch.stack(images)) for images in zip(*pairs))
    with torch.no_grad():
        condition = pipe.predictor(low_res).sample.clamp(-1.0, 1.0)

    network = getattr(pipe, args.network).train()
    if args.output_gain != 1.0:
        # The same image, another parametrisation: conv_out divided by the gain, its output multiplied by it, so that
        # an Adam step on conv_out moves the image `output_gain` times as far
        with torch.no_grad():
            for parameter in pipe.unet.conv_out.parameters():
                parameter.div_(args.output_gain)
    optimizer = torch.optim.Adam(network.parameters(), lr=args.learning_rate)
    # The UNet's input, fixed: x_t at gamma from the true residual and one noise draw (x_t is almost pure noise)
    gamma = torch.full((len(pairs),), args.gamma)
    residual = (high_res - condition) / pipe.config.residual_scale
    noisy = pipe.scheduler.add_noise(residual, torch.randn_like(high_res), gamma)
    start = lpips_vgg(condition, high_res).mean()
    print(f"{args.network}, lr {args.learning_rate}: LPIPS-VGG of the predictor's image {start:.4f}")
    for step in range(args.steps + 1):
        if args.network == "predictor":
            image = network(low_res).sample
        else:
            # One step from pure noise: the image condition + s x_0(x_t, v)
            if args.fresh_noise:
                noisy = pipe.scheduler.add_noise(residual, torch.randn_like(high_res), gamma)
            output = args.output_gain * network(noisy, gamma.sqrt(), condition).sample
            _, original = noise_and_original_from_model_output(
                pipe.scheduler.config.prediction_type, output, noisy, gamma.reshape(-1, 1, 1, 1)
            )
            image = condition + pipe.config.residual_scale * original
        loss = lpips_vgg(image, high_res).mean()
        if step % 5 == 0:
            change = (image - condition).std().item()
            print(f"step {step:3d}: LPIPS-VGG {loss.item():.4f}, change from the predictor's image (std) {change:.4f}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


if __name__ == "__main__":
    main()

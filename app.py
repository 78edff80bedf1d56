"""A Gradio demo of SR3 super-resolution: upload an image, get it back `scale` times larger.

    pip install "sr3-diffusers[demo]"
    python app.py                                # the model that ships with the package, on http://127.0.0.1:7860
    python app.py --model path/to/pipeline       # any saved SR3Pipeline folder, or a Hugging Face Hub repo id

This file is also a Hugging Face Space as it stands (the Spaces layout: `app.py` at the top level). It runs offline:
Gradio's analytics are off and the page uses the system's fonts, so nothing is fetched from the network.
"""

import os


# Before Gradio is imported: no usage statistics, no version check.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Optional, Tuple  # noqa: E402

import gradio as gr  # noqa: E402
import PIL.Image  # noqa: E402
import torch  # noqa: E402
from diffusers.image_processor import VaeImageProcessor  # noqa: E402

from sr3_diffusers import SHIPPED_MODEL, SR3Pipeline  # noqa: E402
from sr3_diffusers.image_processing import to_rgb_tensors, upsample_bicubic  # noqa: E402
from sr3_diffusers.schedulers import SAMPLERS, sampler_label, scheduler_for_sampler  # noqa: E402


OWN_SAMPLER = "the model's own"
# The largest input side the demo accepts: at 4x a 512-pixel side is a 2048-pixel output (minutes on a CPU).
MAX_INPUT_SIDE = 512
# Offline: the system's fonts instead of the Google Fonts of Gradio's default theme.
THEME = gr.themes.Default(
    font=("ui-sans-serif", "system-ui", "sans-serif"), font_mono=("ui-monospace", "Consolas", "monospace")
)


def read_upload(path: Optional[str], max_side: int = MAX_INPUT_SIDE) -> PIL.Image.Image:
    """The uploaded image, decoded; a `gr.Error` that says what is wrong and what to do for anything else."""
    if path is None:
        raise gr.Error("Upload an image first (PNG, JPEG, WebP, ...).")
    try:
        with PIL.Image.open(path) as image:
            image.load()
            image = image.copy()
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:
        raise gr.Error(f"{Path(path).name} is not an image Pillow can read ({error}); upload a PNG, JPEG or WebP.")
    if max(image.size) > max_side:
        raise gr.Error(
            f"{Path(path).name} is {image.width} x {image.height} pixels; this demo takes at most {max_side} pixels a "
            "side. Crop or shrink it, or use `sr3-upscale` (no size limit)."
        )
    return image


def bicubic(image: PIL.Image.Image, scale: int) -> PIL.Image.Image:
    """The pipeline's condition for `image`: its bicubic upsampling (`image_processing.upsample_bicubic`)."""
    upsampled = upsample_bicubic(to_rgb_tensors(image)[0][None], scale)
    return VaeImageProcessor.numpy_to_pil(VaeImageProcessor.pt_to_numpy(upsampled))[0]


def upscale(
    pipe: SR3Pipeline,
    path: Optional[str],
    num_inference_steps: int,
    strength: float,
    enforce_consistency: bool,
    seed: int,
    tile_size: int,
    progress: Callable,
) -> Tuple[Tuple[PIL.Image.Image, PIL.Image.Image], str]:
    """Upscale the uploaded image; return (bicubic, SR3) for the before/after slider and the PNG file to download.
    `progress` is called after each step as a `gr.Progress`.

    `tile_size` 0 runs the whole image at once; otherwise the UNet runs on overlapping tiles of that many output
    pixels (the pipeline's `tile_size`), which keeps the memory of large inputs bounded.
    """
    image = read_upload(path)

    def report_step(pipe, step_index, timestep, callback_kwargs):
        progress((step_index + 1, pipe.num_timesteps), desc="sampling", unit="steps")
        return {}

    try:
        upscaled = pipe(
            image,
            num_inference_steps=int(num_inference_steps),
            generator=torch.Generator().manual_seed(int(seed)),
            strength=float(strength),
            enforce_consistency=bool(enforce_consistency),
            tile_size=int(tile_size) or None,
            callback_on_step_end=report_step,
        ).images[0]
    except ValueError as error:  # the pipeline's `check_inputs` (tile size, image size) say what to change
        raise gr.Error(str(error))
    output = Path(tempfile.mkdtemp(prefix="sr3_")) / f"{Path(path).stem}_x{pipe.config.scale}.png"
    upscaled.save(output)
    return (bicubic(image, pipe.config.scale), upscaled), str(output)


def build_demo(pipe: SR3Pipeline, model: str = SHIPPED_MODEL) -> gr.Blocks:
    """The page: the upload and the sampling options on the left, the before/after slider and the download on the
    right. The defaults are the pipeline's own (steps, strength, consistency); `model` is the name the page shows."""
    own_scheduler = pipe.scheduler
    scale = pipe.config.scale
    factor = pipe.unet.downsample_factor
    model_name = "the small model that ships with sr3-diffusers" if model == SHIPPED_MODEL else f"`{model}`"

    def run(path, sampler, steps, strength, consistency, seed, tile_size, progress=gr.Progress()):
        # Requests run one at a time (Gradio's queue), each with the sampler it asks for.
        pipe.scheduler = own_scheduler if sampler == OWN_SAMPLER else scheduler_for_sampler(own_scheduler.config, sampler)
        return upscale(pipe, path, steps, strength, consistency, seed, tile_size, progress)

    with gr.Blocks(title="SR3 super-resolution", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# SR3 super-resolution (x{scale})\n"
            "Super-resolution by iterative refinement (Saharia et al., 2021): a diffusion model that turns the "
            f"bicubic upsampling of your image into a sharp {scale}x larger one. Model: {model_name}."
        )
        with gr.Row():
            with gr.Column():
                upload = gr.Image(
                    type="filepath", label="Low-resolution image", sources=["upload"], height=256, elem_id="upload"
                )
                sampler = gr.Dropdown(
                    [OWN_SAMPLER, *SAMPLERS],
                    value=OWN_SAMPLER,
                    label="Sampler",
                    info=f"The model's own: {sampler_label(own_scheduler)}. 'ancestral' (SR3's Algorithm 2) needs about"
                    " 100 steps; 'ddim' and 'dpmsolver++' 4 to 20.",
                )
                steps = gr.Slider(
                    1, 200, value=pipe.scheduler.config.num_inference_steps, step=1, label="Denoising steps"
                )
                strength = gr.Slider(
                    0.0,
                    1.0,
                    value=pipe.config.get("strength", 1.0),
                    step=0.05,
                    label="Strength (realism)",
                    info="1: sample from pure noise (most detail invented); lower: stay closer to the condition; 0: "
                    "no sampling, the model's most faithful output (its faithful predictor's, if it has one).",
                )
                consistency = gr.Checkbox(
                    value=pipe.config.get("enforce_consistency", False),
                    label="Enforce consistency",
                    info="The result downscales exactly to your image.",
                )
                seed = gr.Number(value=0, precision=0, label="Seed", info="The same seed gives the same result.")
                tile_size = gr.Slider(
                    0,
                    1024,
                    value=0,
                    step=factor,
                    label="Tile size (output pixels; 0: whole image)",
                    info="For large inputs: sample in overlapping tiles of this size, without seams.",
                )
                button = gr.Button("Upscale", variant="primary", elem_id="upscale")
            with gr.Column():
                comparison = gr.ImageSlider(
                    type="pil", format="png", label="Bicubic | SR3 (drag to compare)", elem_id="comparison"
                )
                download = gr.File(label="Download the result (PNG)", elem_id="download")
        button.click(
            run,
            inputs=[upload, sampler, steps, strength, consistency, seed, tile_size],
            outputs=[comparison, download],
        )
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Gradio demo of SR3 super-resolution.")
    parser.add_argument(
        "--model",
        default=SHIPPED_MODEL,
        help=f"SR3 pipeline: a saved SR3Pipeline folder or a Hugging Face Hub repo id (default: {SHIPPED_MODEL}, "
        "the model that ships with sr3-diffusers).",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to serve on (0.0.0.0: every interface).")
    parser.add_argument("--port", type=int, default=7860, help="Port to serve on.")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    pipe = SR3Pipeline.from_pretrained(args.model)
    pipe.to(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    pipe.set_progress_bar_config(disable=True)  # the page shows the progress
    build_demo(pipe, args.model).launch(server_name=args.host, server_port=args.port, theme=THEME, ssr_mode=False)


if __name__ == "__main__":
    main()

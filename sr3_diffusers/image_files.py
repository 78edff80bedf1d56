"""Reading and writing the image files of `sr3-upscale`: everything about a file that the RGB pipeline does not see.

`SR3Pipeline` takes and returns RGB images. A user's file carries more: an EXIF orientation, an ICC colour profile,
EXIF and DPI metadata, an alpha channel, 16 bits per sample, a single grey channel. `read_image_file` turns a file into
an upright [`ImageFile`]: the pixels the pipeline upscales (float32 in [0, 1], so 16-bit samples keep their precision)
and what the writer must carry over. `write_image_file` puts the upscaled pieces back together in the format that the
output's extension names, with the metadata that format can hold.

What each output format keeps (Pillow's writers):

| format | alpha | 16-bit grey | ICC profile | EXIF | DPI | `quality` |
|---|---|---|---|---|---|---|
| PNG  | yes | yes | yes | yes | yes | - |
| JPEG | no  | no  | yes | yes | yes | yes |
| WebP | yes | no  | yes | yes | no  | yes |
| TIFF | yes | yes | yes | yes | yes | - |

Pillow reads 16-bit RGB files as 8-bit RGB, so only greyscale keeps 16 bits end to end.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import PIL.Image
import PIL.ImageOps


OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
LOSSY_FORMATS = ("JPEG", "WEBP")
DEFAULT_QUALITY = 95  # JPEG/WebP quality when none is given (Real-ESRGAN's OpenCV default; Pillow's own is 75)
_ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")
_SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
_DPI_FORMATS = ("PNG", "JPEG", "TIFF")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
# The colour space an ICC profile describes (bytes 16-20 of its header) that each kind of output needs.
_PROFILE_COLOUR_SPACES = {False: b"RGB ", True: b"GRAY"}


@dataclass
class ImageFile:
    """
    An image file read for upscaling: upright pixels plus what the output should carry over.

    Args:
        pixels (`np.ndarray`): `(H, W)` for greyscale or `(H, W, 3)`, float32 in [0, 1], EXIF orientation applied.
        alpha (`np.ndarray`, *optional*): `(H, W)` float32 opacity in [0, 1]; `None` for opaque files.
        bits (`int`): 16 for 16-bit greyscale files, otherwise 8.
        icc_profile (`bytes`, *optional*): The embedded ICC colour profile.
        exif (`bytes`, *optional*): The EXIF block with its orientation tag removed (the pixels are upright now).
        dpi (`Tuple[float, float]`, *optional*): Horizontal and vertical dots per inch.
    """

    pixels: np.ndarray
    alpha: Optional[np.ndarray] = None
    bits: int = 8
    icc_profile: Optional[bytes] = None
    exif: Optional[bytes] = None
    dpi: Optional[Tuple[float, float]] = None

    @property
    def is_greyscale(self) -> bool:
        return self.pixels.ndim == 2

    @property
    def size(self) -> Tuple[int, int]:
        """`(width, height)`, as PIL gives sizes."""
        return self.pixels.shape[1], self.pixels.shape[0]


def read_image_file(path: os.PathLike) -> ImageFile:
    """Read an image file for upscaling (see [`ImageFile`]); `OSError` or `ValueError` for files it cannot use."""
    with PIL.Image.open(path) as image:
        image.load()
        icc_profile = image.info.get("icc_profile") or None
        dpi = image.info.get("dpi")
        # Rotate or flip the pixels as the EXIF orientation says a viewer would; this also drops the tag.
        upright = PIL.ImageOps.exif_transpose(image)
    exif = upright.getexif()
    exif.pop(0x0112, None)  # Orientation
    mode = upright.mode
    if mode == "F":
        raise ValueError("32-bit float images are not supported; save it as 8- or 16-bit first")
    if mode in _SIXTEEN_BIT_MODES:
        pixels = np.clip(np.asarray(upright, dtype=np.float32), 0, 65535) / 65535.0
        return ImageFile(pixels, None, 16, icc_profile, exif.tobytes() if exif else None, dpi)
    has_alpha = "A" in mode or "a" in mode or (mode in ("P", "L", "RGB") and "transparency" in upright.info)
    is_greyscale = mode in ("1", "L", "LA", "La")
    converted = upright.convert(("LA" if is_greyscale else "RGBA") if has_alpha else ("L" if is_greyscale else "RGB"))
    array = np.asarray(converted, dtype=np.float32) / 255.0
    if has_alpha:
        pixels, alpha = (array[..., 0], array[..., 1]) if is_greyscale else (array[..., :3], array[..., 3])
    else:
        pixels, alpha = array, None
    return ImageFile(np.ascontiguousarray(pixels), alpha, 8, icc_profile, exif.tobytes() if exif else None, dpi)


def resize_lanczos(pixels: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize a float `(H, W)` or `(H, W, C)` image in [0, 1] to `size = (width, height)` with Lanczos, per channel in
    float precision (PIL's mode "F"), clipping the filter's overshoot back into [0, 1]."""
    if pixels.ndim == 2:
        return resize_lanczos(pixels[..., None], size)[..., 0]
    channels = [
        np.asarray(PIL.Image.fromarray(pixels[..., channel], mode="F").resize(size, PIL.Image.Resampling.LANCZOS))
        for channel in range(pixels.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def output_format(path: os.PathLike) -> str:
    """The Pillow format that an output path's extension names; `ValueError` for any other extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(
            f"unknown image extension {suffix or '(none)'!r} in {path}; use one of {', '.join(OUTPUT_FORMATS)}"
        )
    return OUTPUT_FORMATS[suffix]


def _quantise(pixels: np.ndarray, bits: int) -> np.ndarray:
    """[0, 1] floats as 8- or 16-bit integers, rounding to nearest (as diffusers' `numpy_to_pil` does for 8 bits)."""
    peak, dtype = (65535, np.uint16) if bits == 16 else (255, np.uint8)
    return (np.clip(pixels, 0.0, 1.0) * peak).round().astype(dtype)


def write_image_file(
    path: os.PathLike,
    pixels: np.ndarray,
    alpha: Optional[np.ndarray],
    source: ImageFile,
    factor: float,
    quality: Optional[int] = None,
) -> List[str]:
    """
    Write upscaled pixels to `path` in the format its extension names, atomically (a temporary file renamed into place,
    so an interrupted or failed write never leaves a truncated file), and return notes about what the format could not
    keep (alpha in a JPEG, 16 bits in a JPEG or WebP).

    Args:
        path (`os.PathLike`): The output file; its folder is created.
        pixels (`np.ndarray`): `(H, W)` grey or `(H, W, 3)` RGB floats in [0, 1].
        alpha (`np.ndarray`, *optional*): `(H, W)` opacity in [0, 1], or `None`.
        source ([`ImageFile`]): The input file, whose bit depth, ICC profile, EXIF and DPI the output takes.
        factor (`float`): Output size over input size; the DPI is multiplied by it, so the print size stays the same.
        quality (`int`, *optional*): JPEG/WebP quality, 1-100; defaults to `DEFAULT_QUALITY`.
    """
    path = Path(path)
    file_format = output_format(path)
    notes = []
    is_greyscale = pixels.ndim == 2
    if alpha is not None and file_format not in _ALPHA_FORMATS:
        notes.append(
            f"{file_format} has no alpha channel, so the transparency is dropped; write .png, .webp or .tiff to keep it"
        )
        alpha = None
    bits = source.bits
    if bits == 16 and (file_format not in _SIXTEEN_BIT_FORMATS or not is_greyscale or alpha is not None):
        bits = 8
        notes.append(
            f"the input has 16 bits per sample but this {file_format} output holds 8; write .png or .tiff to keep 16"
        )
    if bits == 16:
        image = PIL.Image.fromarray(_quantise(pixels, 16))  # mode I;16
    else:
        channels = [_quantise(pixels, 8)] + ([_quantise(alpha, 8)] if alpha is not None else [])
        stacked = np.dstack(channels) if alpha is not None else channels[0]
        image = PIL.Image.fromarray(stacked)  # L, LA, RGB or RGBA from the array's shape

    options = {}
    if source.icc_profile is not None and source.icc_profile[16:20] == _PROFILE_COLOUR_SPACES[is_greyscale]:
        options["icc_profile"] = source.icc_profile
    if source.exif is not None:
        options["exif"] = source.exif
    if source.dpi is not None and file_format in _DPI_FORMATS:
        options["dpi"] = tuple(float(value) * factor for value in source.dpi)
    if file_format in LOSSY_FORMATS:
        options["quality"] = DEFAULT_QUALITY if quality is None else quality

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        image.save(partial, format=file_format, **options)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return notes

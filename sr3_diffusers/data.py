"""Paired low/high-resolution data for SR3: the HR->LR degradation, aligned crops, and the `datasets` plumbing.

How a pair is made (SPEC section 3, the reference's recipe):

1. **Degradation.** The low-resolution (LR) image is MATLAB's `imresize(hr, 1/scale, "bicubic")` of the whole
   high-resolution (HR) image, antialiased, then quantised to uint8 levels (`floor(255 x + 0.5) / 255`, MATLAB's
   rounding), exactly as DIV2K's `X4` PNG files the reference trained on were made. This is `image_processing.imresize`,
   the one MATLAB-style resizer of the package. The HR image is first trimmed to a multiple of `scale` on each side
   (the usual "mod crop"), so that LR pixel `(i, j)` covers HR pixels `scale * (i, j)` to `scale * (i + 1, j + 1)`.
2. **Aligned crop.** An LR crop of `lr_size` pixels at `(top, left)` is paired with the HR crop of `scale * lr_size`
   pixels at exactly `(scale * top, scale * left)`. Only a window of the HR image around the crop is degraded (the
   bicubic kernel reaches 2 LR pixels; `_LR_CONTEXT` keeps 3), so the pair equals "degrade the whole image, then crop"
   up to float rounding while costing a crop's worth of work.
3. **Training augmentation.** A uniformly random crop position, a horizontal flip with probability 1/2 and a rotation
   by a uniformly random multiple of 90 degrees (the reference's flip + `rotate(90 k)`: all 8 symmetries of the square).
   The randomness of each image is drawn from a generator seeded by `(seed, epoch, image identity)`, not from a global
   or per-worker random state: the pair an image gives in an epoch does not depend on the data-loader worker, the
   process or the step a run was resumed at, which is what makes a resumed run match an uninterrupted one.
4. **Evaluation crop.** The centre LR crop starts at `round((h - lr_size) / 2)` (torchvision's `CenterCrop`, as the
   reference) and the HR crop at exactly `scale` times that offset; the reference cropped both centres independently,
   which misaligns LR and HR by up to 2 HR pixels.

Images travel as float32 `(3, H, W)` tensors in [0, 1] (`image_processing.to_rgb_tensors` converts grey, palette,
RGBA, CMYK and 16-bit modes to RGB). Images that cannot be decoded, cannot be converted, or are smaller than the crop
are skipped and counted (`DataReport`), never a crash in the middle of an epoch: a map-style dataset is inspected once
up front (`inspect_dataset`, cached by `datasets`), a streaming one on the fly (`PairedRandomCrop(drop_unusable=True)`).
"""

import hashlib
import io
import itertools
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import datasets
import PIL.Image
import torch

from .image_processing import imresize, to_rgb_tensors


logger = logging.getLogger(__name__)

# LR pixels of context degraded around a crop: MATLAB's antialiased bicubic kernel is 4 LR pixels wide (it reaches 2
# LR pixels either side), so 2 would do; 3 keeps one spare.
_LR_CONTEXT = 3

# Why an image is not used, in the order they are checked.
PROBLEM_UNREADABLE = "unreadable"
PROBLEM_UNSUPPORTED = "unsupported pixel format"
PROBLEM_TOO_SMALL = "smaller than the crop"

# Helper columns written by `inspect_dataset` (in a separate small table, never into the image data).
_PROBLEM_COLUMN = "sr3_problem"
_MODE_COLUMN = "sr3_mode"
_HEIGHT_COLUMN = "sr3_height"
_WIDTH_COLUMN = "sr3_width"
_DETAIL_COLUMN = "sr3_detail"

_DECODER = datasets.Image()

# PIL modes whose conversion to [0, 1] depends on the values of the whole image (`image_processing` tells 8-bit from
# 16-bit data in 32-bit integer `I` images by their maximum, and checks the range of float `F` images): these are
# converted whole, then cropped; other modes are cropped first, which is cheaper.
_CONVERT_WHOLE_MODES = ("I", "F")


# ----------------------------------------------------------------------------------------------------------------------
# Degradation and aligned crops (pure tensor functions)
# ----------------------------------------------------------------------------------------------------------------------


def modcrop(images: torch.Tensor, scale: int) -> torch.Tensor:
    """Trim `(..., H, W)` images to the largest multiple of `scale` on each side, keeping the top-left corner."""
    height, width = images.shape[-2:]
    return images[..., : height - height % scale, : width - width % scale]


def degrade(hr_images: torch.Tensor, scale: int) -> torch.Tensor:
    """The HR->LR degradation of SR3's training data: MATLAB's antialiased bicubic `imresize` by `1 / scale`, then
    quantised to uint8 levels, as the reference's stored LR PNG files were made (SPEC section 3).

    Takes `(..., H, W)` float images in [0, 1] whose sides are multiples of `scale` (see `modcrop`); returns
    `(..., H / scale, W / scale)` float images in [0, 1] holding multiples of 1/255. Rounding is MATLAB's (half away
    from zero), and the resampling runs in float32 where MATLAB uses doubles: a handful of pixels per image may land
    one uint8 level apart from MATLAB's files.
    """
    _check_scale(scale)
    height, width = hr_images.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(
            f"degrade needs image sides that are multiples of scale={scale}, got {height}x{width}; apply modcrop first."
        )
    low_res = imresize(hr_images, 1.0 / scale).clamp(0.0, 1.0)
    return torch.floor(low_res * 255.0 + 0.5) / 255.0


def _context_window(top: int, left: int, lr_size: int, lr_height: int, lr_width: int) -> Tuple[int, int, int, int]:
    """The LR-pixel box `(top, left, bottom, right)` degraded around an LR crop: the crop and `_LR_CONTEXT`, clipped."""
    return (
        max(top - _LR_CONTEXT, 0),
        max(left - _LR_CONTEXT, 0),
        min(top + lr_size + _LR_CONTEXT, lr_height),
        min(left + lr_size + _LR_CONTEXT, lr_width),
    )


def _check_crop(top: int, left: int, lr_size: int, lr_height: int, lr_width: int) -> None:
    if lr_size <= 0:
        raise ValueError(f"lr_size must be a positive number of pixels, got {lr_size}.")
    if top < 0 or left < 0 or top + lr_size > lr_height or left + lr_size > lr_width:
        raise ValueError(
            f"An LR crop of {lr_size} pixels at (top={top}, left={left}) does not fit in the {lr_height}x{lr_width} LR"
            " image."
        )


def aligned_crop_pair(
    hr_image: torch.Tensor, top: int, left: int, lr_size: int, scale: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """An aligned (LR, HR) crop pair from one HR image, LR made by `degrade`.

    Equal (up to float rounding) to `degrade(modcrop(hr_image))[..., top:top + lr_size, left:left + lr_size]` and
    `hr_image[..., scale * top:scale * (top + lr_size), scale * left:scale * (left + lr_size)]`, but only a window of
    `_LR_CONTEXT` LR pixels around the crop is degraded.

    Args:
        hr_image (`torch.Tensor`): `(..., H, W)` float image in [0, 1].
        top, left (`int`): LR-pixel coordinates of the crop's top-left corner.
        lr_size (`int`): side of the LR crop; the HR crop's side is `scale * lr_size`.
        scale (`int`): the super-resolution factor.
    """
    _check_scale(scale)
    lr_height, lr_width = hr_image.shape[-2] // scale, hr_image.shape[-1] // scale
    _check_crop(top, left, lr_size, lr_height, lr_width)
    win_top, win_left, win_bottom, win_right = _context_window(top, left, lr_size, lr_height, lr_width)
    window = hr_image[..., win_top * scale : win_bottom * scale, win_left * scale : win_right * scale]
    row, col = top - win_top, left - win_left
    low_res = degrade(window, scale)[..., row : row + lr_size, col : col + lr_size]
    high_res = window[..., row * scale : (row + lr_size) * scale, col * scale : (col + lr_size) * scale]
    return low_res.contiguous(), high_res.contiguous()


def center_crop_offsets(height: int, width: int, size: int) -> Tuple[int, int]:
    """Top-left corner of a centred `size` crop in a `height x width` image, rounded as torchvision's `CenterCrop`."""
    if size > height or size > width:
        raise ValueError(f"A centre crop of {size} pixels does not fit in a {height}x{width} image.")
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def center_crop_pair(
    hr_image: torch.Tensor, lr_size: int, scale: int, lr_image: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The evaluation pair: centred LR crop of `lr_size` pixels and the HR crop at exactly `scale` x its offset.

    With `lr_image=None` the LR image is `degrade(modcrop(hr_image))` (computed on the crop's window only). With a
    stored LR image (e.g. DIV2K's `X4` files) its centre crop is used as is; its size must be the HR size divided by
    `scale` (rounded down, or up as MATLAB's `imresize` does for sides that are not multiples of `scale`).

    Returns `(lr, hr)` of shapes `(..., lr_size, lr_size)` and `(..., scale * lr_size, scale * lr_size)`.
    """
    _check_scale(scale)
    hr_height, hr_width = hr_image.shape[-2:]
    if lr_image is None:
        top, left = center_crop_offsets(hr_height // scale, hr_width // scale, lr_size)
        return aligned_crop_pair(hr_image, top, left, lr_size, scale)
    lr_height, lr_width = lr_image.shape[-2:]
    allowed = {(hr_height // scale, hr_width // scale), (math.ceil(hr_height / scale), math.ceil(hr_width / scale))}
    if (lr_height, lr_width) not in allowed:
        raise ValueError(
            f"The LR image is {lr_height}x{lr_width} but the HR image is {hr_height}x{hr_width}; at scale={scale}"
            f" the LR image must be {' or '.join(f'{h}x{w}' for h, w in sorted(allowed))}."
        )
    # Centre on the LR grid that the HR image covers fully (the same grid as without a stored LR image).
    top, left = center_crop_offsets(hr_height // scale, hr_width // scale, lr_size)
    low_res = lr_image[..., top : top + lr_size, left : left + lr_size]
    high_res = hr_image[..., top * scale : (top + lr_size) * scale, left * scale : (left + lr_size) * scale]
    return low_res.contiguous(), high_res.contiguous()


def random_dihedral(
    images: Iterable[torch.Tensor], generator: torch.Generator, flip: bool = True, rotate: bool = True
) -> List[torch.Tensor]:
    """Apply one random symmetry of the square to every `(..., H, W)` image alike: a horizontal flip with probability
    1/2, then a rotation by `90 k` degrees, `k` uniform in {0, 1, 2, 3} (the reference's training augmentation)."""
    images = list(images)
    do_flip = bool(torch.randint(0, 2, (), generator=generator)) if flip else False
    quarter_turns = int(torch.randint(0, 4, (), generator=generator)) if rotate else 0
    if do_flip:
        images = [image.flip(-1) for image in images]
    if quarter_turns:
        images = [torch.rot90(image, quarter_turns, dims=(-2, -1)) for image in images]
    return [image.contiguous() for image in images]


def sample_seed(seed: int, epoch: int, key: Union[str, bytes]) -> int:
    """A 63-bit seed that depends only on the run's seed, the epoch and an image's identity (its bytes or path)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{seed}:{epoch}:".encode())
    digest.update(key.encode() if isinstance(key, str) else key)
    return int.from_bytes(digest.digest(), "little") >> 1


def _check_scale(scale: int) -> None:
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}.")


# ----------------------------------------------------------------------------------------------------------------------
# Decoding and inspection of dataset rows
# ----------------------------------------------------------------------------------------------------------------------


def decode_image(value) -> PIL.Image.Image:
    """Decode one image cell (a `{"path", "bytes"}` dict of an `Image(decode=False)` column, a path, or a PIL image)
    with `datasets`' own decoder: local files, embedded bytes and remote Hub files; EXIF orientation applied."""
    if isinstance(value, PIL.Image.Image):
        return value
    if isinstance(value, str):
        value = {"path": value, "bytes": None}
    return _DECODER.decode_example(value)


def image_key(value) -> Union[str, bytes]:
    """An image cell's identity for seeding its augmentation: its bytes when embedded, else its path."""
    if isinstance(value, str):
        return value
    if isinstance(value, PIL.Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    if value.get("bytes") is not None:
        return value["bytes"]
    return value.get("path") or ""


def image_name(value) -> str:
    """A short human-readable name for log lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("path"):
        return value["path"]
    return "<image bytes>"


def image_to_tensor(image: PIL.Image.Image) -> torch.Tensor:
    """A PIL image of any mode as a float32 `(3, H, W)` RGB tensor in [0, 1] (`image_processing.to_rgb_tensors`)."""
    return to_rgb_tensors(image)[0]


@dataclass
class ImageCheck:
    """What `inspect_image` found: `problem` is "" for a usable image."""

    problem: str
    mode: str = ""
    height: int = 0
    width: int = 0
    detail: str = ""


def inspect_image(value, lr_size: int, scale: int) -> Tuple[ImageCheck, Optional[PIL.Image.Image]]:
    """Decode an image cell and check that it converts to RGB and holds an `lr_size` LR crop at `scale`.

    Returns the check and, when usable, the decoded image (to save a second decode).
    """
    try:
        image = decode_image(value)
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, ValueError, DecompressionBombError...)
        return ImageCheck(PROBLEM_UNREADABLE, detail=f"{type(error).__name__}: {error}"), None
    check = ImageCheck("", mode=image.mode, height=image.height, width=image.width)
    try:
        # Converting a 1-pixel crop checks the mode, except where the conversion depends on the whole image.
        image_to_tensor(image if image.mode in _CONVERT_WHOLE_MODES else image.crop((0, 0, 1, 1)))
    except (ValueError, TypeError, OSError) as error:
        check.problem, check.detail = PROBLEM_UNSUPPORTED, f"mode {image.mode}: {error}"
        return check, None
    if image.height // scale < lr_size or image.width // scale < lr_size:
        check.problem = PROBLEM_TOO_SMALL
        check.detail = f"{image.width}x{image.height} < {lr_size * scale}x{lr_size * scale}"
        return check, None
    return check, image


@dataclass
class DataReport:
    """Counts of the images seen, skipped (by reason) and converted to RGB (by original mode)."""

    total: int = 0
    skipped: Counter = field(default_factory=Counter)
    converted: Counter = field(default_factory=Counter)
    largest_side: int = 0  # the longest short side among decodable images: the biggest square crop they allow
    examples: Dict[str, List[str]] = field(default_factory=dict)  # a few skipped names per reason

    def add(self, check: ImageCheck, name: str) -> None:
        self.total += 1
        self.largest_side = max(self.largest_side, min(check.height, check.width))
        if check.problem:
            self.skipped[check.problem] += 1
            names = self.examples.setdefault(check.problem, [])
            if len(names) < 5:
                names.append(f"{name} ({check.detail})" if check.detail else name)
        elif check.mode != "RGB":
            self.converted[check.mode] += 1

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def num_usable(self) -> int:
        return self.total - self.num_skipped

    def summary(self) -> str:
        """One line: how many images are used, skipped (why) and converted."""
        text = f"{self.num_usable} of {self.total} images usable"
        if self.skipped:
            text += "; skipped " + ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))
        if self.converted:
            converted = ", ".join(f"{count} {mode}" for mode, count in sorted(self.converted.items()))
            text += f"; converted to RGB: {converted}"
        return text

    def no_usable_image_message(self, lr_size: int, scale: int) -> str:
        """The start-up error for a dataset without a usable image: empty, all too small for the crop, or unreadable."""
        if self.total == 0:
            return "the dataset has no images."
        crop = lr_size * scale
        if self.skipped.get(PROBLEM_TOO_SMALL):
            # Some images decode, and none of those holds the crop.
            largest_crop = self.largest_side // scale * scale
            return (
                f"the {crop}x{crop} HR crop is larger than every image: the largest crop these images hold is"
                f" {largest_crop}x{largest_crop} ({self.summary()})."
            )
        return f"no usable image ({self.summary()}); for example {self.examples}."


# ----------------------------------------------------------------------------------------------------------------------
# Loading, inspection and the training transform
# ----------------------------------------------------------------------------------------------------------------------


def load_image_dataset(
    dataset_name: Optional[str] = None,
    data_dir: Optional[str] = None,
    dataset_config_name: Optional[str] = None,
    split: str = "train",
    image_column: str = "image",
    streaming: bool = False,
    cache_dir: Optional[str] = None,
    token: Optional[str] = None,
) -> Union[datasets.Dataset, datasets.IterableDataset]:
    """Load one split of a Hub dataset (`dataset_name`) or a local image folder (`data_dir`, the `imagefolder` builder)
    with `datasets.load_dataset`, and keep only `image_column`, undecoded (`Image(decode=False)`), so that decoding
    errors surface in `inspect_image` rather than inside `datasets`."""
    if (dataset_name is None) == (data_dir is None):
        raise ValueError("Pass exactly one of `dataset_name` (a Hub dataset) or `data_dir` (a local image folder).")
    if dataset_name is not None:
        dataset = datasets.load_dataset(
            dataset_name, dataset_config_name, split=split, streaming=streaming, cache_dir=cache_dir, token=token
        )
        source = f"dataset {dataset_name!r} (split {split!r})"
    else:
        try:
            dataset = datasets.load_dataset(
                "imagefolder", data_dir=data_dir, split=split, streaming=streaming, cache_dir=cache_dir
            )
        except FileNotFoundError as error:  # raised by `datasets` for a folder without image files
            raise ValueError(f"no image files found in {data_dir} ({error}).") from None
        source = f"image folder {data_dir}"
    column_names = dataset.column_names
    if column_names is not None and image_column not in column_names:
        raise ValueError(f"{source} has no column {image_column!r}; its columns are {column_names}.")
    dataset = dataset.select_columns([image_column])
    return dataset.cast_column(image_column, datasets.Image(decode=False))


class _InspectBatch:
    """`datasets.map` function: one row of check results per image (see `inspect_dataset`)."""

    def __init__(self, lr_size: int, scale: int):
        self.lr_size = lr_size
        self.scale = scale

    def __call__(self, values: List) -> Dict[str, List]:
        checks = [inspect_image(value, self.lr_size, self.scale)[0] for value in values]
        return {
            _PROBLEM_COLUMN: [check.problem for check in checks],
            _MODE_COLUMN: [check.mode for check in checks],
            _HEIGHT_COLUMN: [check.height for check in checks],
            _WIDTH_COLUMN: [check.width for check in checks],
            _DETAIL_COLUMN: [check.detail for check in checks],
        }


def inspect_dataset(
    dataset: datasets.Dataset, image_column: str, lr_size: int, scale: int, num_proc: Optional[int] = None
) -> Tuple[datasets.Dataset, DataReport]:
    """Decode every image of a map-style dataset once, and keep the usable ones.

    The checks run as a `datasets.map` into a small separate table (cached by `datasets`, so a second run with the
    same data and crop is instant); the usable rows are then `select`ed (an index mapping, no copy of the images).
    Returns the usable dataset and the report of what was skipped or converted.
    """
    checks = dataset.map(
        _InspectBatch(lr_size, scale),
        batched=True,
        batch_size=16,
        input_columns=[image_column],
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc=f"Checking images (decodable, at least {lr_size * scale} pixels)",
    )
    report = DataReport()
    columns = [checks[name] for name in (_PROBLEM_COLUMN, _MODE_COLUMN, _HEIGHT_COLUMN, _WIDTH_COLUMN, _DETAIL_COLUMN)]
    keep = []
    for index, (problem, mode, height, width, detail) in enumerate(zip(*columns)):
        name = image_name(dataset[index][image_column]) if problem else ""
        report.add(ImageCheck(problem, mode, height, width, detail), name)
        if not problem:
            keep.append(index)
    return dataset.select(keep), report


def usable_images(
    dataset: Iterable[Dict[str, Any]], image_column: str, lr_size: int, scale: int, report: DataReport
) -> Iterator[Tuple[int, Any, PIL.Image.Image]]:
    """Read `dataset` in order and yield `(index, cell, image)` for each image `inspect_image` finds usable (it decodes,
    converts to RGB and holds an `lr_size` LR crop at `scale`). Every image read is counted in `report`, the unusable
    ones with their reason; images after the last one taken are not read."""
    for index, example in enumerate(dataset):
        value = example[image_column]
        check, image = inspect_image(value, lr_size, scale)
        report.add(check, image_name(value))
        if not check.problem:
            yield index, value, image


class PairedRandomCrop:
    """The training transform: image cells -> `{"lr": (3, r, r), "hr": (3, scale r, scale r)}` float tensors in [0, 1].

    Works on batches (a dict of lists), as `datasets.Dataset.set_transform` and `IterableDataset.map(batched=True)`
    call it. Each image gives one random aligned crop pair (`aligned_crop_pair`), flipped and rotated
    (`random_dihedral`), drawn from a generator seeded by `sample_seed(seed, epoch, image_key(cell))`; call
    `set_epoch` at the start of every epoch.

    Args:
        image_column (`str`): the column holding `Image(decode=False)` cells.
        lr_size (`int`): side of the LR crop (the HR crop is `scale * lr_size`).
        scale (`int`): the super-resolution factor.
        seed (`int`): the run's seed.
        random_flip (`bool`, defaults to `True`), random_rotation (`bool`, defaults to `True`): the augmentations.
        drop_unusable (`bool`, defaults to `False`): skip (and count in `report`) images that do not decode, convert
            or fit the crop; for streaming datasets, which cannot be inspected up front. With `False` such an image
            raises, as it should never reach the transform of an inspected dataset.

    Decoding a whole photo for every crop dominates the cost of a pair; `preload` decodes each image of a map-style
    dataset once and keeps it in memory (as many bytes as the decoded pixels), after which `pair` only crops. The pairs
    are the same either way: the crop is drawn from the same generator and cut from the same decoded pixels.
    """

    def __init__(
        self,
        image_column: str,
        lr_size: int,
        scale: int,
        seed: int,
        random_flip: bool = True,
        random_rotation: bool = True,
        drop_unusable: bool = False,
    ):
        _check_scale(scale)
        self.image_column = image_column
        self.lr_size = lr_size
        self.scale = scale
        self.seed = seed
        self.random_flip = random_flip
        self.random_rotation = random_rotation
        self.drop_unusable = drop_unusable
        self.epoch = 0
        self.report = DataReport()
        self.decoded_images = {}  # image_key -> decoded PIL image, filled by `preload`

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def preload(self, values: Iterable) -> None:
        """Decode the usable images among the cells `values` once and keep them for `pair`. Call it in the main
        process before the data loader starts: its worker processes then share the decoded pixels (fork)."""
        for value in values:
            check, image = inspect_image(value, self.lr_size, self.scale)
            if not check.problem:
                image.load()
                self.decoded_images[image_key(value)] = image

    def pair(self, value) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """The (lr, hr) pair of one image cell, or `None` if it is unusable and `drop_unusable` is set."""
        image = self.decoded_images.get(image_key(value)) if self.decoded_images else None
        if image is None:
            check, image = inspect_image(value, self.lr_size, self.scale)
            if self.drop_unusable:
                self.report.add(check, image_name(value))
            if check.problem:
                message = f"Skipping image {image_name(value)}: {check.problem} ({check.detail})"
                if not self.drop_unusable:
                    raise ValueError(message)
                logger.warning(message)
                return None
        generator = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, image_key(value)))
        lr_height, lr_width = image.height // self.scale, image.width // self.scale
        top = int(torch.randint(0, lr_height - self.lr_size + 1, (), generator=generator))
        left = int(torch.randint(0, lr_width - self.lr_size + 1, (), generator=generator))
        # Crop the decoded image to the crop's context window before converting it to a float tensor.
        win_top, win_left, win_bottom, win_right = _context_window(top, left, self.lr_size, lr_height, lr_width)
        box = (win_left * self.scale, win_top * self.scale, win_right * self.scale, win_bottom * self.scale)
        if image.mode in _CONVERT_WHOLE_MODES:
            window = image_to_tensor(image)[:, box[1] : box[3], box[0] : box[2]]
        else:
            window = image_to_tensor(image.crop(box))
        low_res, high_res = aligned_crop_pair(window, top - win_top, left - win_left, self.lr_size, self.scale)
        low_res, high_res = random_dihedral(
            (low_res, high_res), generator, flip=self.random_flip, rotate=self.random_rotation
        )
        return low_res, high_res

    def __call__(self, batch: Dict[str, List]) -> Dict[str, List[torch.Tensor]]:
        pairs = [self.pair(value) for value in batch[self.image_column]]
        pairs = [pair for pair in pairs if pair is not None]
        return {"lr": [pair[0] for pair in pairs], "hr": [pair[1] for pair in pairs]}


def prepare_train_dataset(
    dataset: Union[datasets.Dataset, datasets.IterableDataset],
    image_column: str,
    lr_size: int,
    scale: int,
    seed: int,
    random_flip: bool = True,
    random_rotation: bool = True,
    shuffle_buffer_size: int = 1000,
    num_proc: Optional[int] = None,
    cache_images: bool = False,
) -> Tuple[Union[datasets.Dataset, datasets.IterableDataset], PairedRandomCrop, DataReport]:
    """Turn a dataset from `load_image_dataset` into one that yields `{"lr", "hr"}` training pairs.

    A map-style dataset is inspected up front (`inspect_dataset`) and gets the transform with `set_transform`
    (shuffling is the data loader's job). A streaming dataset is shuffled with a `shuffle_buffer_size` buffer (its order
    then depends on `seed` and the epoch, see `IterableDataset.set_epoch`) and mapped with a transform that skips and
    counts unusable images as they come; it is checked at start-up to hold at least one usable image. With
    `cache_images`, every usable image of a map-style dataset is decoded once, up front (`PairedRandomCrop.preload`).

    Returns the dataset, the transform (call its `set_epoch` every epoch; for streaming data its `report` counts the
    images skipped so far in this process) and the start-up report.

    Raises:
        ValueError: when no image is usable (empty dataset, every image too small for the crop, or all unreadable).
    """
    if isinstance(dataset, datasets.IterableDataset):
        if cache_images:
            raise ValueError("cache_images needs a map-style dataset: a streaming dataset is never held in memory.")
        transform = PairedRandomCrop(
            image_column, lr_size, scale, seed, random_flip, random_rotation, drop_unusable=True
        )
        # Start-up check: read until the first usable image (or the end of the data).
        probe = PairedRandomCrop(image_column, lr_size, scale, seed, drop_unusable=True)
        for example in dataset:
            if probe.pair(example[image_column]) is not None:
                break
        else:
            raise ValueError(probe.report.no_usable_image_message(lr_size, scale))
        dataset = dataset.shuffle(seed=seed, buffer_size=shuffle_buffer_size)
        dataset = dataset.map(transform, batched=True, batch_size=1, remove_columns=[image_column])
        return dataset, transform, probe.report
    usable, report = inspect_dataset(dataset, image_column, lr_size, scale, num_proc=num_proc)
    if len(usable) == 0:
        raise ValueError(report.no_usable_image_message(lr_size, scale))
    transform = PairedRandomCrop(image_column, lr_size, scale, seed, random_flip, random_rotation)
    if cache_images:
        transform.preload(usable[image_column])
    usable.set_transform(transform, columns=[image_column])
    return usable, transform, report


def load_validation_pairs(
    dataset: Union[datasets.Dataset, datasets.IterableDataset],
    image_column: str,
    num_images: int,
    lr_size: int,
    scale: int,
) -> Tuple[torch.Tensor, torch.Tensor, List[str], DataReport]:
    """The first `num_images` usable images of `dataset` as centre-crop pairs (`center_crop_pair`, LR by `degrade`).

    Returns `lr` `(N, 3, r, r)`, `hr` `(N, 3, scale r, scale r)`, the image names and the report of images skipped
    on the way. `N` may be smaller than `num_images` if the dataset runs out.
    """
    report = DataReport()
    lows, highs, names = [], [], []
    images = usable_images(dataset, image_column, lr_size, scale, report)
    for _, value, image in itertools.islice(images, num_images):
        low_res, high_res = center_crop_pair(image_to_tensor(image), lr_size, scale)
        lows.append(low_res)
        highs.append(high_res)
        names.append(image_name(value))
    if not lows:
        raise ValueError(report.no_usable_image_message(lr_size, scale))
    if report.num_skipped:
        logger.warning(f"Validation images: {report.summary()}; for example {report.examples}.")
    return torch.stack(lows), torch.stack(highs), names, report

"""SR3Pipeline: image super-resolution by iterative refinement (Saharia et al., 2021)."""

import inspect
import json
import numbers
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
import diffusers
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils import logging, replace_example_docstring
from diffusers.utils.torch_utils import randn_tensor
from huggingface_hub import create_repo, snapshot_download

from ..image_processing import (
    ImageInput,
    denormalize,
    frequency_split,
    normalize,
    project_to_downscaled,
    to_rgb_tensors,
    upsample_bicubic,
)
from ..model_card import write_pipeline_model_card
from ..models.predictor_sr3 import SR3PredictorModel
from ..models.unet_sr3 import SR3UNet2DModel
from ..remote_code import REMOTE_CODE_FILENAME, pipeline_code
from ..schedulers.scheduling_sr3 import SR3Scheduler
from ..schedulers.scheduling_sr3_dpmsolver import SR3DPMSolverScheduler
from ..schedulers.scheduling_sr3_utils import model_output_from_original, noise_and_original_from_model_output


OUTPUT_TYPES = ("pil", "np", "pt", "latent")

# The diffusers schedulers shown to drive the SR3 UNet (README's table); any scheduler with `alphas_cumprod` works.
DIFFUSERS_SCHEDULERS = (
    "DDIMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler", "UniPCMultistepScheduler", "DDPMScheduler"
)
# diffusers' pipelines default to 50 steps; SR3's schedulers carry their own `num_inference_steps`.
DIFFUSERS_DEFAULT_NUM_INFERENCE_STEPS = 50


# `from_pretrained` reports each loaded component where `DiffusionPipeline.from_pretrained` does, on diffusers'
# pipeline-loading logger, so that diffusers' INFO logging shows SR3 loads too.
loading_logger = logging.get_logger("diffusers.pipelines.pipeline_utils")

# The small x4 model trained on real photos that ships inside the package (see its model card, `default/README.md`).
SHIPPED_MODEL = "sr3_diffusers/default"
SHIPPED_MODEL_PATH = Path(__file__).resolve().parents[1] / "default"

# The library name that `save_pretrained` gives this package's components in `model_index.json`, and the classes it
# resolves to. diffusers loads them from the code file `<component>/sr3_diffusers.py` of a repo with
# `trust_remote_code=True`; `SR3Pipeline.from_pretrained` loads them from these classes.
LIBRARY_NAME = "sr3_diffusers"
SR3_COMPONENT_CLASSES = {cls.__name__: cls for cls in (SR3UNet2DModel, SR3PredictorModel, SR3Scheduler, SR3DPMSolverScheduler)}


EXAMPLE_DOC_STRING = """
    Example:
        ```py
        >>> import torch
        >>> from PIL import Image
        >>> from sr3_diffusers import SR3Pipeline

        >>> pipe = SR3Pipeline.from_pretrained("path/or/hub-id-of-an-sr3-pipeline")
        >>> low_res = Image.open("photo.png")
        >>> upscaled = pipe(low_res, generator=torch.manual_seed(0)).images[0]
        >>> upscaled.save("photo_x4.png")
        ```
"""


class SR3Pipeline(DiffusionPipeline):
    r"""
    Pipeline for image super-resolution with SR3 ([Saharia et al., 2021](https://arxiv.org/abs/2104.07636)).

    The low-resolution image is upsampled x`scale` with bicubic interpolation, mapped to [-1, 1] and given to the UNet
    as a condition at every step while the scheduler refines pure noise into the high-resolution image.

    Two options go beyond SR3 (both off for the presets). With a `predictor`, the condition is the predictor's
    deterministic upscaling instead of bicubic (predict-and-refine, Whang et al., 2022); a predictor trained for
    perceptual quality can come with a `faithful_predictor` trained for fidelity alone, whose image `strength=0`
    returns. With `residual_scale` s, the diffusion runs on the residual: the UNet generates x_0 = (HR - condition) / s
    and the output is condition + s x_0 (SRDiff, Li et al., 2022), so the model only has to add what the condition
    lacks.

    This model inherits from [`DiffusionPipeline`]. Check the superclass documentation for the generic methods
    implemented for all pipelines (downloading, saving, running on a particular device, etc.).

    Args:
        unet ([`SR3UNet2DModel`]): The noise-prediction UNet, conditioned on the upsampled image.
        scheduler ([`SR3Scheduler`], [`SR3DPMSolverScheduler`] or a diffusers scheduler):
            The sampling schedule and update rule. Any diffusers scheduler with an `alphas_cumprod` training schedule
            works (e.g. `DDIMScheduler.from_config(pipe.scheduler.config)`, which takes over SR3's linear-beta
            training schedule): the UNet is given sqrt(alphas_cumprod[t]) as its noise level.
        predictor ([`SR3PredictorModel`], *optional*):
            A deterministic upscaler whose output replaces the bicubic condition; `None` (SR3) uses bicubic.
        faithful_predictor ([`SR3PredictorModel`], *optional*):
            A deterministic upscaler trained for fidelity (L1) beside a `predictor` trained for perceptual quality:
            `strength=0` returns its image, the pipeline's most faithful output. `None`: `strength=0` returns the
            condition.
        scale (`int`, defaults to 4):
            The upscaling factor the UNet was trained for; saved in `model_index.json`. Must match the UNet config's
            `scale` where it records one, and the predictor's.
        enforce_consistency (`bool`, defaults to `False`):
            The default of the call's `enforce_consistency` (see `__call__`); saved in `model_index.json`. Off in SR3.
        strength (`float`, defaults to 1.0):
            The default of the call's `strength` (see `__call__`); saved in `model_index.json`. 1.0 in SR3.
        residual_scale (`float`, *optional*):
            `None` (SR3): the diffusion generates the image. A positive s: it generates (image - condition) / s, s
            chosen so that this residual has roughly unit variance; saved in `model_index.json`.
        frequency_split_sigma (`float`, *optional*):
            `None` (default): the condition is the `predictor`'s image. A positive s, with both predictors: the
            condition is the `faithful_predictor`'s image below the cut-off of a Gaussian blur G_s of s pixels and the
            `predictor`'s above it, G_s * faithful + (predictor - G_s * predictor), so that the perceptual predictor
            only adds detail and the faithful one keeps the colours and shapes (see `prepare_condition`); saved in
            `model_index.json`.
    """

    model_cpu_offload_seq = "faithful_predictor->predictor->unet"
    _optional_components = ["predictor", "faithful_predictor"]
    # "latents" is the current sample x_t, under the name every diffusers pipeline gives it
    _callback_tensor_inputs = ["latents", "condition", "pred_original_sample"]

    def __init__(
        self,
        unet: SR3UNet2DModel,
        scheduler: SR3Scheduler,
        predictor: Optional[SR3PredictorModel] = None,
        faithful_predictor: Optional[SR3PredictorModel] = None,
        scale: int = 4,
        enforce_consistency: bool = False,
        strength: float = 1.0,
        residual_scale: Optional[float] = None,
        frequency_split_sigma: Optional[float] = None,
    ):
        super().__init__()
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"`scale` must be a positive integer upscaling factor, got {scale!r}.")
        # An edited model_index.json must not pair a UNet with another factor (the UNet cannot tell it otherwise).
        if unet.config.scale not in (None, scale):
            raise ValueError(
                f"`scale` is {scale} but the UNet was trained for x{unet.config.scale} (its config's `scale`); fix"
                " `scale` in model_index.json, or load the UNet trained for this factor."
            )
        for name, model in (("predictor", predictor), ("faithful_predictor", faithful_predictor)):
            if model is not None and model.config.scale != scale:
                raise ValueError(f"The {name} upscales x{model.config.scale}, but the pipeline's `scale` is {scale}.")
        if residual_scale is not None and (isinstance(residual_scale, bool) or not residual_scale > 0):
            raise ValueError(f"`residual_scale` must be a positive number or None, got {residual_scale!r}.")
        if frequency_split_sigma is not None:
            if isinstance(frequency_split_sigma, bool) or not frequency_split_sigma > 0:
                raise ValueError(f"`frequency_split_sigma` must be a positive number or None, got {frequency_split_sigma!r}.")
            if predictor is None or faithful_predictor is None:
                raise ValueError(
                    "`frequency_split_sigma` combines the `predictor` and the `faithful_predictor`, but the pipeline"
                    " lacks one of them; pass both, or `frequency_split_sigma=None`."
                )
        _check_strength(strength)
        _check_enforce_consistency(enforce_consistency)
        self.register_modules(
            unet=unet, scheduler=scheduler, predictor=predictor, faithful_predictor=faithful_predictor
        )
        self.register_to_config(
            scale=scale,
            enforce_consistency=bool(enforce_consistency),
            strength=float(strength),
            residual_scale=None if residual_scale is None else float(residual_scale),
            frequency_split_sigma=None if frequency_split_sigma is None else float(frequency_split_sigma),
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, os.PathLike], **kwargs) -> "SR3Pipeline":
        r"""
        Load a saved SR3 pipeline from a local folder, a Hub repo id, or `"sr3_diffusers/default"`: the small x4
        model that ships inside this package, loaded without network.

        A repo id is resolved to a local snapshot with `huggingface_hub.snapshot_download` (which honours
        `HF_HUB_OFFLINE`, `cache_dir`, `revision`, `token` and `local_files_only`). The components are then built from
        this package's classes (or diffusers' own, for a diffusers scheduler), never from the code files a saved repo
        carries for users without the package (see `save_pretrained`), so nothing from the repo is executed.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): A folder, a Hub repo id or `"sr3_diffusers/default"`.
            kwargs:
                Components to use instead of the saved ones (`unet=...`, `scheduler=...`), pipeline config values
                (`scale`, `enforce_consistency`, `strength`, `frequency_split_sigma`), and model loading options passed to each model's
                [`~ModelMixin.from_pretrained`] (`dtype`, `device_map`, `variant`, ...). As in
                [`~DiffusionPipeline.from_pretrained`], `dtype` may be a dict giving each model its own
                (`{"unet": torch.bfloat16, "default": torch.float16}`; `"default"`, else float32, for the others).
                Weights load from safetensors only; pass `use_safetensors=False` to allow pickled `.bin` weights you
                trust.
        """
        kwargs.setdefault("use_safetensors", True)
        dtype_key = next((key for key in ("dtype", "torch_dtype") if isinstance(kwargs.get(key), dict)), None)
        dtypes = kwargs.pop(dtype_key) if dtype_key else None
        folder = _local_folder(pretrained_model_name_or_path, kwargs)
        variant = kwargs.get("variant")
        if variant is not None and not any(Path(folder).glob(f"*/*.{variant}.*")):
            raise ValueError(
                f"You are trying to load the model files of the `variant={variant}`, but no such modeling files are "
                f"available in {folder}; leave `variant` out to load its default weights."
            )
        model_index = cls.load_config(folder)
        # An edited model_index.json may name another pipeline: refuse it rather than build this one from its parts.
        class_name = model_index.get("_class_name")
        class_name = class_name[-1] if isinstance(class_name, list) else class_name
        if class_name not in (None, cls.__name__, "SR3Pipeline"):
            raise ValueError(
                f"{Path(folder, 'model_index.json')} describes a {class_name}, not an SR3Pipeline; load it with that"
                " class, or fix `_class_name` in model_index.json."
            )
        expected_modules, optional_kwargs = cls._get_signature_keys(cls)
        passed_components = {name: kwargs.pop(name) for name in expected_modules if name in kwargs}
        init_kwargs = {name: kwargs.pop(name, model_index[name]) for name in optional_kwargs if name in model_index}
        init_kwargs.update({name: kwargs.pop(name) for name in optional_kwargs if name in kwargs})

        components = {}
        for name in expected_modules:
            library_name, class_name = model_index.get(name) or (None, None)
            if name in passed_components:
                components[name] = passed_components[name]
            elif class_name is None:
                components[name] = None  # an optional component saved as absent
            else:
                component_class = _component_class(library_name, class_name)
                if issubclass(component_class, ModelMixin):
                    model_kwargs = dict(kwargs)
                    if dtypes is not None:
                        model_kwargs[dtype_key] = dtypes.get(name, dtypes.get("default", torch.float32))
                    components[name] = component_class.from_pretrained(folder, subfolder=name, **model_kwargs)
                else:
                    components[name] = component_class.from_pretrained(folder, subfolder=name)
                loading_logger.info(f"Loaded {name} as {class_name} from `{name}` subfolder of {folder}.")
        pipeline = cls(**components, **init_kwargs)
        pipeline.register_to_config(_name_or_path=str(pretrained_model_name_or_path))
        return pipeline

    def save_pretrained(self, save_directory: Union[str, os.PathLike], push_to_hub: bool = False, **kwargs) -> None:
        r"""
        Save the pipeline as [`~DiffusionPipeline.save_pretrained`] does, so that it loads without this package too.

        `model_index.json` names this package's components `["sr3_diffusers", <class name>]` and the pipeline
        `["sr3_diffusers", "SR3Pipeline"]`, and a self-contained code file generated from the installed package
        (`remote_code.bundle_source`) is written where diffusers looks for such a library: `sr3_diffusers.py` at the
        root and in each of those components' folders. `DiffusionPipeline.from_pretrained(folder_or_repo,
        trust_remote_code=True)` then loads the pipeline where `sr3_diffusers` is not installed.

        With `push_to_hub=True` the folder is uploaded with `upload_folder`, keeping the `README.md` model card already
        in it (written by `train_sr3.py`, `sr3-evaluate --model_card` or the shipping script), or writing this package's
        card if there is none; diffusers' own `push_to_hub` would replace it by its blank template. `repo_id`,
        `token`, `private`, `commit_message` and `create_pr` go to the Hub calls; other keyword arguments
        (`safe_serialization`, `variant`, `max_shard_size`) to [`~DiffusionPipeline.save_pretrained`].
        """
        hub_kwargs = {name: kwargs.pop(name, None) for name in ("repo_id", "token", "private", "commit_message")}
        create_pr = kwargs.pop("create_pr", False)
        super().save_pretrained(save_directory, **kwargs)
        self._write_remote_code(save_directory)
        if push_to_hub:
            repo_id = hub_kwargs["repo_id"] or Path(save_directory).resolve().name
            repo_id = create_repo(repo_id, exist_ok=True, private=hub_kwargs["private"], token=hub_kwargs["token"]).repo_id
            if not os.path.isfile(os.path.join(save_directory, "README.md")):
                write_pipeline_model_card(self, repo_id, os.path.join(save_directory, "README.md"))
            self._upload_folder(
                save_directory, repo_id, token=hub_kwargs["token"], commit_message=hub_kwargs["commit_message"],
                create_pr=create_pr,
            )

    def push_to_hub(self, repo_id: str, commit_message: Optional[str] = None, private: Optional[bool] = None,
                    token: Optional[str] = None, create_pr: bool = False, safe_serialization: bool = True,
                    variant: Optional[str] = None) -> None:
        """Upload the pipeline to the Hub repo `repo_id` (created if needed) with its code files and this package's
        model card (see `save_pretrained`); the card of the folder the pipeline was loaded from is kept if it had one."""
        with tempfile.TemporaryDirectory() as save_directory:
            loaded_from = self.config.get("_name_or_path")
            loaded_from = str(SHIPPED_MODEL_PATH) if loaded_from == SHIPPED_MODEL else loaded_from
            if loaded_from and os.path.isfile(os.path.join(loaded_from, "README.md")):
                shutil.copy(os.path.join(loaded_from, "README.md"), os.path.join(save_directory, "README.md"))
            self.save_pretrained(
                save_directory, push_to_hub=True, repo_id=repo_id, commit_message=commit_message, private=private,
                token=token, create_pr=create_pr, safe_serialization=safe_serialization, variant=variant,
            )

    def _write_remote_code(self, save_directory: Union[str, os.PathLike]) -> None:
        """Name this package as the library of its components in `model_index.json`, and write the code files that
        diffusers loads for that library with `trust_remote_code=True` (see `save_pretrained`)."""
        index_path = Path(save_directory, self.config_name)
        model_index = json.loads(index_path.read_text())
        model_index["_class_name"] = [LIBRARY_NAME, type(self).__name__]
        code = pipeline_code(type(self))
        Path(save_directory, REMOTE_CODE_FILENAME).write_text(code)
        for name, entry in model_index.items():
            if isinstance(entry, list) and entry[1] in SR3_COMPONENT_CLASSES and name != "_class_name":
                model_index[name] = [LIBRARY_NAME, entry[1]]
                Path(save_directory, name, REMOTE_CODE_FILENAME).write_text(code)
        index_path.write_text(json.dumps(model_index, indent=2, sort_keys=True) + "\n")

    @property
    def num_timesteps(self) -> int:
        """The number of sampling steps of the current (or last) call: `round(strength * num_inference_steps)`."""
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        """Set `pipe._interrupt = True` from a `callback_on_step_end` to stop sampling after the current step."""
        return self._interrupt

    def check_inputs(
        self,
        output_type: str,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]],
        batch_size: int,
        callback_on_step_end_tensor_inputs: List[str],
        tile_size: Optional[int],
        tile_overlap: Optional[int],
        tile_batch_size: int,
    ) -> None:
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        # What diffusers' `randn_tensor` (and the schedulers' `step`) take: None, a generator, or a list of them.
        generators = generator if isinstance(generator, list) else [generator]
        if generator is not None and not all(isinstance(item, torch.Generator) for item in generators):
            given = type(generator).__name__ if not isinstance(generator, list) else f"a list holding {generators}"
            raise TypeError(
                f"`generator` must be a torch.Generator or a list of them (one per image), got {given}; for a seed,"
                " pass `generator=torch.Generator().manual_seed(seed)`."
            )
        if not (hasattr(self.scheduler, "get_noise_level") or hasattr(self.scheduler, "alphas_cumprod")):
            raise ValueError(
                f"{type(self.scheduler).__name__} cannot drive the SR3 UNet: it has no `alphas_cumprod` training "
                f"schedule to take the noise level sqrt(alphas_cumprod[t]) from. Use SR3Scheduler, SR3DPMSolverScheduler "
                f"or one of diffusers' {', '.join(DIFFUSERS_SCHEDULERS)} (`.from_config(pipe.scheduler.config)`)."
            )
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(
                f"Got a list of {len(generator)} generators for {batch_size} images; pass one generator, or one per image."
            )
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` may only name {self._callback_tensor_inputs}, got {unknown}."
            )
        if tile_size is not None:
            factor = self.unet.downsample_factor
            if not isinstance(tile_size, int) or tile_size < factor or tile_size % factor:
                raise ValueError(
                    f"`tile_size` must be a positive multiple of {factor} (the UNet's total downsampling), got {tile_size!r}."
                )
            if tile_overlap is not None and (not isinstance(tile_overlap, int) or not 0 <= tile_overlap < tile_size):
                raise ValueError(f"`tile_overlap` must be an integer in [0, tile_size={tile_size}), got {tile_overlap!r}.")
        elif tile_overlap is not None:
            raise ValueError(
                f"`tile_overlap={tile_overlap!r}` only applies to tiles: pass `tile_size` too, or drop it."
            )
        if not isinstance(tile_batch_size, int) or tile_batch_size < 1:
            raise ValueError(f"`tile_batch_size` must be a positive integer, got {tile_batch_size!r}.")

    def get_noise_level(self, timestep: Union[int, float, torch.Tensor]) -> torch.Tensor:
        """
        The UNet's noise level sqrt(gamma_t) at a step of the scheduler: from an SR3 scheduler's sampling schedule, or
        sqrt(alphas_cumprod[t]) of a diffusers scheduler (DDPM's alpha-bar is SR3's gamma), so that any scheduler built
        on a training schedule drives the UNet. A fractional timestep (Euler's) interpolates sigma = sqrt((1 - gamma) /
        gamma) linearly in t, as `EulerDiscreteScheduler` does, giving gamma = 1 / (1 + sigma^2).
        """
        if hasattr(self.scheduler, "get_noise_level"):
            return self.scheduler.get_noise_level(timestep)
        alphas_cumprod = self.scheduler.alphas_cumprod.double().cpu()
        timestep = float(timestep)
        sigmas = ((1.0 - alphas_cumprod) / alphas_cumprod).sqrt()
        index = min(int(timestep), len(sigmas) - 2)
        sigma = torch.lerp(sigmas[index], sigmas[index + 1], timestep - index)
        return (1.0 / (1.0 + sigma**2)).sqrt().float().to(self._execution_device)

    def noise_condition(self, condition: torch.Tensor, noise: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """The bicubic condition noised to the level of `timestep`, where sampling starts for `strength < 1`:
        x_t = sqrt(gamma_t) condition + sqrt(1 - gamma_t) z (Algorithm 1's forward process, the condition as x_0), or
        the diffusers scheduler's own `add_noise` (which matches its `step`, e.g. Euler's x_0 + sigma z)."""
        if hasattr(self.scheduler, "get_noise_level"):
            return self.scheduler.add_noise(condition, noise, self.scheduler.get_noise_level(timestep).square())
        return self.scheduler.add_noise(condition, noise, timestep.reshape(1))

    def prepare_condition(self, low_res_images: List[torch.Tensor], faithful: bool = False) -> torch.Tensor:
        """Upsample each [0, 1] low-resolution image x`scale` in [-1, 1], with bicubic (SPEC section 3) or the
        predictor (clamped to [-1, 1], as in training), or with `faithful` the faithful predictor, and pad the batch
        to a common size that the UNet accepts (a multiple of its total downsampling), repeating edge pixels.

        With `frequency_split_sigma` s (and not `faithful`), the image is the faithful predictor's F(x) below the
        Gaussian's cut-off and the predictor's P(x) above it: G_s * F(x) + P(x) - G_s * P(x), clamped to [-1, 1]."""
        scale = self.config.scale
        factor = self.unet.downsample_factor
        height = max(image.shape[1] for image in low_res_images) * scale
        width = max(image.shape[2] for image in low_res_images) * scale
        padded_height, padded_width = -(-height // factor) * factor, -(-width // factor) * factor
        split_sigma = None if faithful else self.config.frequency_split_sigma
        conditions = []
        for image in low_res_images:
            image = image[None].to(self._execution_device)
            if faithful:
                upsampled = self._predict(self.faithful_predictor, image)
            elif self.predictor is None:
                upsampled = normalize(upsample_bicubic(image, scale))
            elif split_sigma is None:
                upsampled = self._predict(self.predictor, image)
            else:
                faithful_image = self._predict(self.faithful_predictor, image)
                detailed_image = self._predict(self.predictor, image)
                upsampled = frequency_split(faithful_image, detailed_image, split_sigma).clamp(-1.0, 1.0)
            pad_bottom = padded_height - upsampled.shape[2]
            pad_right = padded_width - upsampled.shape[3]
            conditions.append(F.pad(upsampled, (0, pad_right, 0, pad_bottom), mode="replicate"))
        return torch.cat(conditions)

    @staticmethod
    def _predict(predictor: SR3PredictorModel, image: torch.Tensor) -> torch.Tensor:
        """A predictor's upscaling of a `(1, 3, h, w)` [0, 1] image, in [-1, 1] (clamped, as in training)."""
        return predictor(normalize(image).to(predictor.dtype)).sample.float().clamp(-1.0, 1.0)

    def to_image(self, sample: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """The image in [-1, 1] that a diffusion sample stands for: the sample itself (SR3), or condition + s sample
        with `residual_scale` s."""
        if self.config.residual_scale is None:
            return sample
        return condition.float() + self.config.residual_scale * sample

    def from_image(self, image: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_image`: (image - condition) / s with `residual_scale` s, else the image itself."""
        if self.config.residual_scale is None:
            return image
        return (image - condition.float()) / self.config.residual_scale

    def project_to_low_res(
        self,
        model_output: torch.Tensor,
        sample: torch.Tensor,
        noise_level: torch.Tensor,
        condition: torch.Tensor,
        low_res_images: List[torch.Tensor],
    ) -> torch.Tensor:
        """Make the predicted image agree with the low-resolution input, and return the matching model output.

        With gamma = noise_level^2, the predicted x_0 implied by the model output (DDPM, eq. (15) for epsilon
        prediction), as an image (`to_image`), is replaced by the closest image whose MATLAB-style downscaling is the
        input y (`project_to_downscaled`: x_0 + A^+ (y - A x_0), DDNM's range-space correction, Wang et al., 2023); the
        details the model added outside A's range stay. The model output is then re-derived from the projected x_0
        (`model_output_from_original`), so any scheduler can take its step from it. Only each image's own region of
        the padded canvas is touched.
        """
        scale = self.config.scale
        prediction_type = self.scheduler.config.prediction_type
        gamma = noise_level.double().square().item()
        _, pred_original_sample = noise_and_original_from_model_output(prediction_type, model_output, sample, gamma)
        pred_image = self.to_image(pred_original_sample, condition)
        for index, low_res in enumerate(low_res_images):
            rows, cols = slice(0, low_res.shape[1] * scale), slice(0, low_res.shape[2] * scale)
            region = pred_image[index, :, rows, cols]
            target = normalize(low_res.to(region.device))
            pred_image[index, :, rows, cols] = project_to_downscaled(region, target, scale)
        pred_original_sample = self.from_image(pred_image, condition)
        return model_output_from_original(prediction_type, pred_original_sample, sample, gamma)

    def predict_noise(
        self,
        sample: torch.Tensor,
        noise_level: torch.Tensor,
        condition: torch.Tensor,
        tile_size: Optional[int] = None,
        tile_overlap: Optional[int] = None,
        tile_batch_size: int = 1,
    ) -> torch.Tensor:
        """The UNet's prediction (the noise, or x_0 or v per the scheduler's `prediction_type`) for the whole canvas,
        in float32.

        With `tile_size`, the canvas is covered by overlapping `tile_size` windows (starting at multiples of the UNet's
        downsampling, so every tile sees the same pixel grid); the UNet runs on each window of the noisy sample with the
        matching window of the condition, and the predictions are blended with Gaussian weights centred on each tile.
        All tiles share the step's noise level and the canvas's one noise draw, so there are no seams between
        independently sampled tiles; memory grows with the tile size, not the image size.
        """
        height, width = sample.shape[-2:]
        if tile_size is None or (height <= tile_size and width <= tile_size):
            return self.unet(sample.to(self.unet.dtype), noise_level, condition).sample.float()

        factor = self.unet.downsample_factor
        tile_overlap = tile_size // 4 if tile_overlap is None else tile_overlap
        stride = max(factor, (tile_size - tile_overlap) // factor * factor)
        tile_height, tile_width = min(tile_size, height), min(tile_size, width)
        windows = [
            (top, left) for top in _tile_starts(height, tile_height, stride) for left in _tile_starts(width, tile_width, stride)
        ]
        blend = _gaussian_window(tile_height, tile_width, device=sample.device)
        noise_pred = torch.zeros_like(sample)
        weight = torch.zeros_like(sample[:1, :1])
        batch_size = sample.shape[0]
        for first in range(0, len(windows), tile_batch_size):
            chunk = windows[first : first + tile_batch_size]
            crops = [(slice(top, top + tile_height), slice(left, left + tile_width)) for top, left in chunk]
            tiles = torch.cat([sample[..., rows, cols] for rows, cols in crops]).to(self.unet.dtype)
            tile_conditions = torch.cat([condition[..., rows, cols] for rows, cols in crops])
            tile_noise_pred = self.unet(tiles, noise_level.repeat(len(chunk)), tile_conditions).sample.float()
            for index, (rows, cols) in enumerate(crops):
                noise_pred[..., rows, cols] += tile_noise_pred[index * batch_size : (index + 1) * batch_size] * blend
                weight[..., rows, cols] += blend
        return noise_pred / weight

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        image: ImageInput,
        num_inference_steps: Optional[int] = None,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Optional[
            Union[Callable[[DiffusionPipeline, int, int, Dict], Dict], PipelineCallback, MultiPipelineCallbacks]
        ] = None,
        callback_on_step_end_tensor_inputs: List[str] = ["latents"],
        tile_size: Optional[int] = None,
        tile_overlap: Optional[int] = None,
        tile_batch_size: int = 1,
        enforce_consistency: Optional[bool] = None,
        strength: Optional[float] = None,
    ) -> Union[ImagePipelineOutput, tuple]:
        r"""
        Upscale one image or a batch of images.

        Args:
            image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them):
                The low-resolution image(s). PIL images of any mode (grey, RGBA, 16-bit) are converted to RGB; numpy
                arrays are `(H, W)`, `(H, W, C)` or `(B, H, W, C)`, torch tensors `(C, H, W)` or `(B, C, H, W)`; integer
                values are rescaled by their dtype's range (uint8 by 255, uint16 by 65535, int8 by 127, ...), float
                values must lie in [0, 1]. Any size works: the input is padded to what the UNet accepts and the output
                cropped to exactly `scale` times the input size.
            num_inference_steps (`int`, *optional*):
                Denoising steps; defaults to the SR3 scheduler's configured `num_inference_steps` (100 for the
                presets), or 50 with one of diffusers' schedulers.
            generator (`torch.Generator` or `List[torch.Generator]`, *optional*):
                Makes sampling deterministic; pass one per image for per-image reproducibility. As everywhere in
                diffusers, a generator object, not a seed: `torch.Generator().manual_seed(0)`.
            output_type (`str`, defaults to `"pil"`):
                `"pil"` (list of `PIL.Image.Image`), `"np"` (`(B, H, W, 3)` float array in [0, 1]) or `"pt"`
                (`(B, 3, H, W)` tensor in [0, 1]); images of different sizes come back as a list for `"np"`/`"pt"`.
                `"latent"` returns the final sample tensor as it is (in [-1, 1], on the padded canvas).
            return_dict (`bool`, defaults to `True`): Return an [`ImagePipelineOutput`] instead of a tuple.
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*):
                Called after each step as `callback_on_step_end(pipe, step_index, timestep, callback_kwargs)`; it may
                return a dict that replaces tensors in `callback_kwargs` (e.g. `{"latents": ...}`).
            callback_on_step_end_tensor_inputs (`List[str]`, defaults to `["latents"]`):
                Which of `"latents"` (the current sample x_t, named as in diffusers' pipelines), `"condition"` and
                `"pred_original_sample"` (the step's predicted image in [-1, 1], a preview of the result) go into
                `callback_kwargs`.
            tile_size (`int`, *optional*):
                Run the UNet on overlapping `tile_size` x `tile_size` windows of the output canvas (a multiple of the
                UNet's total downsampling, e.g. 256) instead of the whole canvas at once, blending the noise predictions
                with Gaussian weights at every step: large images then fit in memory, without seams. `None` (default)
                runs the whole canvas.
            tile_overlap (`int`, *optional*): Overlap of neighbouring tiles in output pixels; defaults to `tile_size // 4`.
            tile_batch_size (`int`, defaults to 1): Tiles per UNet call (more is faster where memory allows).
            enforce_consistency (`bool`, *optional*):
                At every step, replace the predicted image by the closest one whose downscaling is exactly the input
                (see `project_to_low_res`), so that the output is consistent with the input while keeping the model's
                details. Not part of SR3, which only learns consistency; it helps models trained briefly. Defaults to
                the pipeline's `enforce_consistency` config (off for the presets).
            strength (`float`, *optional*):
                As in diffusers' image-to-image pipelines: 1.0 starts from pure noise (SR3); below 1 sampling starts
                from the condition (bicubic or the predictor's image) noised to the level of step
                `N - round(strength * N)` of the schedule and runs only the remaining `round(strength * N)` steps, so
                the output keeps more of the input's structure and costs fewer UNet calls; 0 runs no step and returns
                the most faithful output: the `faithful_predictor`'s image where there is one, else the condition
                (with a predictor: the predictor's own output). Defaults to the pipeline's `strength` config (1.0 for
                the presets).

        Examples:

        Returns:
            [`ImagePipelineOutput`] or `tuple`: the upscaled images.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        low_res_images = to_rgb_tensors(image)
        batch_size = len(low_res_images)
        self.check_inputs(
            output_type, generator, batch_size, callback_on_step_end_tensor_inputs, tile_size, tile_overlap, tile_batch_size
        )
        self._interrupt = False
        device = self._execution_device
        if enforce_consistency is None:
            enforce_consistency = self.config.enforce_consistency
        _check_enforce_consistency(enforce_consistency)
        strength = self.config.strength if strength is None else strength
        strength = _check_strength(strength)

        # 1. The condition: bicubic-upsampled low-resolution images in [-1, 1], padded for the UNet; for strength 0
        # with a faithful predictor, that predictor's images, which are then the output.
        faithful = strength == 0 and self.faithful_predictor is not None
        condition = self.prepare_condition(low_res_images, faithful=faithful).to(self.unet.dtype)

        # 2. x_T ~ N(0, I) (Algorithm 2, line 1). The sample is kept in float32 whatever the UNet's dtype, so that
        # a bfloat16/float16 UNet does not accumulate rounding error over the steps.
        noise = randn_tensor(condition.shape, generator=generator, device=device, dtype=torch.float32)
        sample = noise * self.scheduler.init_noise_sigma

        # 3. The sampling schedule; with strength < 1, only its last steps, starting from the noised condition
        # (`noise_condition`, the condition as x_0).
        if num_inference_steps is None and not hasattr(self.scheduler, "get_noise_level"):
            num_inference_steps = DIFFUSERS_DEFAULT_NUM_INFERENCE_STEPS
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        if strength < 1.0:
            num_steps = max(1, round(strength * len(timesteps))) if strength > 0 else 0
            begin_index = len(timesteps) - num_steps
            timesteps = timesteps[begin_index:]
            start = self.from_image(condition.float(), condition)
            if len(timesteps):
                if hasattr(self.scheduler, "set_begin_index"):
                    self.scheduler.set_begin_index(begin_index)
                sample = self.noise_condition(start, noise, timesteps[0])
            else:
                sample = start
        self._num_timesteps = len(timesteps)
        # diffusers' schedulers differ in whether `step` draws noise (UniPC takes no generator)
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}

        # 4. The refinement loop (Algorithm 2, lines 2-5).
        for step_index, timestep in enumerate(self.progress_bar(timesteps)):
            if self.interrupt:
                break
            noise_level = self.get_noise_level(timestep).expand(batch_size)
            model_input = self.scheduler.scale_model_input(sample, timestep)
            model_output = self.predict_noise(model_input, noise_level, condition, tile_size, tile_overlap, tile_batch_size)
            if enforce_consistency:
                model_output = self.project_to_low_res(model_output, model_input, noise_level[0], condition, low_res_images)
            step_output = self.scheduler.step(model_output, timestep, sample, **step_kwargs)
            sample, pred_original_sample = step_output.prev_sample, getattr(step_output, "pred_original_sample", None)

            if callback_on_step_end is not None:
                pred_image = None if pred_original_sample is None else self.to_image(pred_original_sample, condition)
                step_tensors = {"latents": sample, "condition": condition, "pred_original_sample": pred_image}
                callback_kwargs = {name: step_tensors[name] for name in callback_on_step_end_tensor_inputs}
                callback_outputs = callback_on_step_end(self, step_index, timestep, callback_kwargs)
                sample = callback_outputs.pop("latents", sample)

        # 5. Crop each image back to exactly `scale` times its input size, clamp to [0, 1] and convert; "latent" is
        # the final sample itself (the residual with `residual_scale`), on the padded canvas.
        if output_type == "latent":
            self.maybe_free_model_hooks()
            return (sample,) if not return_dict else ImagePipelineOutput(images=sample)
        scale = self.config.scale
        image = self.to_image(sample, condition)
        images = [
            denormalize(image[index, :, : low_res.shape[1] * scale, : low_res.shape[2] * scale]).cpu()
            for index, low_res in enumerate(low_res_images)
        ]
        images = self._to_output_type(images, output_type)

        self.maybe_free_model_hooks()

        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)

    def _to_output_type(self, images: List[torch.Tensor], output_type: str):
        """`(3, H, W)` [0, 1] tensors as PIL images, or as a stacked array/tensor when all have the same size."""
        same_size = len({tuple(image.shape) for image in images}) == 1
        if output_type == "pt":
            return torch.stack(images) if same_size else images
        arrays = [image.permute(1, 2, 0).float().numpy() for image in images]
        if output_type == "pil":
            return [self.numpy_to_pil(array)[0] for array in arrays]
        return torch.stack(images).permute(0, 2, 3, 1).float().numpy() if same_size else arrays


def _local_folder(pretrained_model_name_or_path: Union[str, os.PathLike], kwargs: dict) -> str:
    """The folder to load from: the shipped model, a local folder, or the snapshot of a Hub repo (downloading the
    configs, code-free: weights, JSON and the model card), taking the Hub options out of `kwargs`."""
    if str(pretrained_model_name_or_path) == SHIPPED_MODEL:
        return str(SHIPPED_MODEL_PATH)
    if os.path.isdir(pretrained_model_name_or_path):
        return str(pretrained_model_name_or_path)
    allow_patterns = ["*.json", "*.safetensors", "*.md"]
    if not kwargs["use_safetensors"]:
        allow_patterns.append("*.bin")
    return snapshot_download(
        str(pretrained_model_name_or_path),
        revision=kwargs.pop("revision", None),
        cache_dir=kwargs.pop("cache_dir", None),
        token=kwargs.pop("token", None),
        local_files_only=kwargs.pop("local_files_only", False),
        allow_patterns=allow_patterns,
    )


def _component_class(library_name: Optional[str], class_name: str) -> type:
    """The class of a component saved as `[library_name, class_name]`: one of this package's (whichever module path
    older saves recorded), or one of diffusers' own (e.g. a `DDIMScheduler` set on the pipeline)."""
    if library_name is not None and library_name.split(".")[0] == LIBRARY_NAME:
        if class_name not in SR3_COMPONENT_CLASSES:
            raise ValueError(f"`model_index.json` names {class_name!r} from {library_name}; this version of sr3_diffusers "
                             f"has {sorted(SR3_COMPONENT_CLASSES)}.")
        return SR3_COMPONENT_CLASSES[class_name]
    component_class = getattr(diffusers, class_name, None) if library_name == "diffusers" else None
    if not (isinstance(component_class, type) and issubclass(component_class, ConfigMixin)):
        raise ValueError(
            f"`model_index.json` names the component [{library_name!r}, {class_name!r}]; SR3Pipeline loads components "
            f"of sr3_diffusers ({sorted(SR3_COMPONENT_CLASSES)}) and diffusers' models and schedulers only."
        )
    return component_class


def _tile_starts(length: int, tile: int, stride: int) -> List[int]:
    """Start offsets of windows of size `tile` every `stride` pixels, the last one flush with the end."""
    return sorted(set(list(range(0, length - tile, stride)) + [length - tile]))


def _gaussian_window(height: int, width: int, device: torch.device) -> torch.Tensor:
    """A separable Gaussian blending weight peaking at the tile centre, sigma = a quarter of each side (never zero)."""
    rows = torch.arange(height, device=device, dtype=torch.float32) - (height - 1) / 2
    cols = torch.arange(width, device=device, dtype=torch.float32) - (width - 1) / 2
    rows = torch.exp(-0.5 * (rows / (height / 4)) ** 2)
    cols = torch.exp(-0.5 * (cols / (width / 4)) ** 2)
    return rows[:, None] * cols[None, :]


def _check_strength(strength: float) -> float:
    """`strength` as a Python float; any real number type (numpy's included) in [0, 1], never a bool or a string."""
    if isinstance(strength, (bool, np.bool_)) or not isinstance(strength, numbers.Real) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"`strength` must be a number in [0, 1], got {strength!r}.")
    return float(strength)


def _check_enforce_consistency(enforce_consistency: bool) -> None:
    """A bool (Python's or numpy's), never a truthy stand-in such as the string "no"."""
    if not isinstance(enforce_consistency, (bool, np.bool_)):
        raise TypeError(f"`enforce_consistency` must be True or False, got {enforce_consistency!r}.")

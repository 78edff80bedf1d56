"""diffusers' own common tests, run unmodified against our pipeline, schedulers and models.

The mixins live in diffusers' GitHub repository, not in its PyPI package, so this file runs them only where
`DIFFUSERS_TESTS_SOURCE` names the `tests/` folder of a diffusers checkout, and skips otherwise (as in CI):

    git clone https://github.com/huggingface/diffusers
    pip install transformers requests_mock parameterized   # what diffusers' test modules import
    DIFFUSERS_TESTS_SOURCE=diffusers/tests python -m pytest tests/test_diffusers_mixins.py

Both diffusers' test folder and ours are packages named `tests`, so theirs is imported as `diffusers_tests`. Our
deliberate departures from diffusers' defaults are marked `xfail(strict=True)` with the reason, so that a test that
starts passing is noticed; docs/diffusers_mixins.md lists the results.
"""

import importlib
import importlib.util
import os
import sys
import unittest
from pathlib import Path

import pytest
import torch


SOURCE = os.environ.get("DIFFUSERS_TESTS_SOURCE")
if not SOURCE:
    pytest.skip("DIFFUSERS_TESTS_SOURCE does not name diffusers' tests/ folder", allow_module_level=True)
if not Path(SOURCE, "pipelines", "test_pipelines_common.py").is_file():
    raise pytest.UsageError(f"DIFFUSERS_TESTS_SOURCE={SOURCE!r} is not the tests/ folder of a diffusers checkout.")


def _import_diffusers_tests(module_name: str):
    """Import `diffusers_tests.<module_name>` from the folder `SOURCE` (their `tests` package, renamed)."""
    if "diffusers_tests" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "diffusers_tests", Path(SOURCE, "__init__.py"), submodule_search_locations=[SOURCE]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules["diffusers_tests"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"diffusers_tests.{module_name}")


from sr3_diffusers import (  # noqa: E402
    SR3DPMSolverScheduler,
    SR3Pipeline,
    SR3PredictorModel,
    SR3Scheduler,
    SR3UNet2DModel,
)
from tests.testing_utils import TINY_UNET_CONFIG, randomise_weights  # noqa: E402


# The module, not its `SchedulerCommonTest`: a TestCase in this module's namespace would be collected and run itself.
scheduler_testing = _import_diffusers_tests("schedulers.test_schedulers")
PipelineTesterMixin = _import_diffusers_tests("pipelines.test_pipelines_common").PipelineTesterMixin
model_testing = _import_diffusers_tests("models.testing_utils")

# SR3's forward process is defined on a continuous noise level gamma (Section 2.4 of the paper), sampled between the
# training schedule's levels, so `add_noise` takes gamma (or its square root) rather than a timestep index.
CONTINUOUS_GAMMA = "add_noise takes SR3's continuous noise level sqrt(gamma), not a timestep index (SR3 Section 2.4)"
# A pickle runs code when it is loaded, so `from_pretrained` reads pickled weights only when asked to.
SAFETENSORS_ONLY = (
    "SR3Pipeline.from_pretrained loads safetensors only (pickled .bin weights with use_safetensors=False): this test "
    "saves .bin weights and loads them without it"
)


class SR3SchedulerMixinTest(scheduler_testing.SchedulerCommonTest):
    scheduler_classes = (SR3Scheduler,)
    forward_default_kwargs = (("num_inference_steps", 10),)

    def get_scheduler_config(self, **kwargs):
        # SR3's sampling schedule is respaced to fewer steps only, so it is configured with the most any test asks for
        return {"num_train_timesteps": 1000, "num_inference_steps": 100, **kwargs}

    @pytest.mark.xfail(reason=CONTINUOUS_GAMMA, raises=ValueError, strict=True)
    def test_add_noise_device(self):
        super().test_add_noise_device()


class SR3DPMSolverSchedulerMixinTest(SR3SchedulerMixinTest):
    scheduler_classes = (SR3DPMSolverScheduler,)

    def get_scheduler_config(self, **kwargs):
        return {"num_train_timesteps": 1000, "num_inference_steps": 10, **kwargs}


def _saves_pickled_weights(test):
    """Mark a pipeline test that saves with `safe_serialization=False` and loads what it saved."""
    return pytest.mark.xfail(reason=SAFETENSORS_ONLY, raises=OSError, strict=True)(test)


class SR3PipelineMixinTest(PipelineTesterMixin, unittest.TestCase):
    pipeline_class = SR3Pipeline
    params = frozenset(["image"])
    batch_params = frozenset(["image"])
    # SR3 has no prompt, no latents and no batch of samples per input image
    required_optional_params = frozenset(["num_inference_steps", "generator", "output_type", "return_dict"])
    callback_cfg_params = frozenset()
    test_attention_slicing = False
    test_xformers_attention = False

    def get_dummy_components(self):
        torch.manual_seed(0)
        unet = randomise_weights(SR3UNet2DModel(**TINY_UNET_CONFIG)).eval()
        predictor = SR3PredictorModel(num_channels=8, num_blocks=1, scale=4)
        faithful_predictor = SR3PredictorModel(num_channels=8, num_blocks=1, scale=4)
        return {
            "unet": unet,
            "scheduler": SR3Scheduler(num_inference_steps=4),
            "predictor": predictor,
            "faithful_predictor": faithful_predictor,
        }

    def get_dummy_inputs(self, device, seed=0):
        generator = torch.Generator(device="cpu").manual_seed(seed)
        image = torch.rand(1, 3, 8, 8, generator=generator)
        return {"image": image, "generator": generator, "num_inference_steps": 2, "output_type": "np"}

    @_saves_pickled_weights
    def test_save_load_local(self):
        super().test_save_load_local()

    @_saves_pickled_weights
    def test_save_load_optional_components(self):
        super().test_save_load_optional_components()

    @_saves_pickled_weights
    def test_loading_with_variants(self):
        super().test_loading_with_variants()

    @_saves_pickled_weights
    def test_dtype_dict(self):
        super().test_dtype_dict()

    @_saves_pickled_weights
    def test_dtype_alias(self):
        super().test_dtype_alias()


class SR3UNetTesterConfig(model_testing.BaseModelTesterConfig):
    @property
    def model_class(self):
        return SR3UNet2DModel

    @property
    def main_input_name(self):
        return "sample"

    @property
    def output_shape(self):
        return (3, 16, 16)

    def get_init_dict(self):
        return dict(TINY_UNET_CONFIG)

    def get_dummy_inputs(self):
        generator = torch.Generator().manual_seed(0)
        return {
            "sample": torch.randn(2, 3, 16, 16, generator=generator),
            "noise_level": torch.tensor([0.3, 0.7]),
            "condition": torch.randn(2, 3, 16, 16, generator=generator),
        }


class TestSR3UNetWithDiffusersModelTester(SR3UNetTesterConfig, model_testing.ModelTesterMixin):
    pass


class SR3PredictorTesterConfig(model_testing.BaseModelTesterConfig):
    @property
    def model_class(self):
        return SR3PredictorModel

    @property
    def main_input_name(self):
        return "low_res"

    @property
    def output_shape(self):
        return (3, 32, 32)

    def get_init_dict(self):
        return {"num_channels": 8, "num_blocks": 1, "scale": 4}

    def get_dummy_inputs(self):
        return {"low_res": torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1}


class TestSR3PredictorWithDiffusersModelTester(SR3PredictorTesterConfig, model_testing.ModelTesterMixin):
    pass

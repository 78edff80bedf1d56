"""Loading saved SR3 pipelines the ways the Hugging Face ecosystem does: our class, diffusers' generic loaders with the
package installed, and remote code where the package is not installed, from an offline Hub cache."""

import ast
import json
import os
import subprocess
import sys

import pytest
import torch
from diffusers import AutoModel
from huggingface_hub import ModelCard

import sr3_diffusers
from sr3_diffusers import SHIPPED_MODEL, SR3Pipeline, SR3Scheduler, SR3UNet2DModel
from sr3_diffusers.model_card import INSTALL_COMMAND
from sr3_diffusers.pipelines.pipeline_sr3 import SHIPPED_MODEL_PATH
from sr3_diffusers.remote_code import INSTALLED_PACKAGE_CODE, REMOTE_CODE_FILENAME, bundle_source, bundled_modules
from tests.testing_utils import FakeHub, write_hub_cache


REPO_ID = "sr3-org/sr3-default"

# Each route writes the upscaled test image to argv[1]. Without the package, `import sr3_diffusers` must fail:
# `sys.modules[name] = None` makes every import of it raise ImportError, whatever is installed.
ROUTES = {
    "our class": """
from sr3_diffusers import SR3Pipeline
pipe = SR3Pipeline.from_pretrained(REPO_ID)
assert type(pipe).__module__ == "sr3_diffusers.pipelines.pipeline_sr3"
""",
    "installed, generic": """
import sr3_diffusers
from diffusers import AutoModel, DiffusionPipeline
from huggingface_hub import snapshot_download
folder = snapshot_download(REPO_ID)
assert type(AutoModel.from_pretrained(folder, subfolder="unet")) is sr3_diffusers.SR3UNet2DModel
pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
assert type(pipe).__name__ == "SR3Pipeline"
""",
    "remote code, no package": """
sys.modules["sr3_diffusers"] = None
from diffusers import DiffusionPipeline
from huggingface_hub import snapshot_download
pipe = DiffusionPipeline.from_pretrained(snapshot_download(REPO_ID), trust_remote_code=True)
assert type(pipe).__module__.startswith("diffusers_modules") and type(pipe).__name__ == "SR3Pipeline"
assert type(pipe.unet).__name__ == "SR3UNet2DModel" and type(pipe.scheduler).__name__ == "SR3DPMSolverScheduler"
try:
    import sr3_diffusers
except ImportError:
    pass
else:
    raise AssertionError("sr3_diffusers was importable")
""",
}

RUN_ROUTE = """
import sys, torch
REPO_ID = {repo_id!r}
{route}
pipe.set_progress_bar_config(disable=True)
low_res = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(0))
images = pipe(low_res, generator=torch.Generator().manual_seed(0), output_type="pt").images
torch.save(images, sys.argv[1])
"""


def run_offline(code, cache_dir, output, cwd):
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache_dir), HF_HOME=str(cache_dir.parent / "home"),
        CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
    )
    return subprocess.run([sys.executable, "-c", code, str(output)], env=env, cwd=cwd, capture_output=True, text=True)


def test_saved_folder_names_the_library_and_carries_the_generated_code(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == ["sr3_diffusers", "SR3Pipeline"]
    assert index["unet"] == ["sr3_diffusers", "SR3UNet2DModel"]
    assert index["scheduler"] == ["sr3_diffusers", "SR3Scheduler"]
    expected = bundle_source("sr3_diffusers.pipelines.pipeline_sr3")
    for folder in (tmp_path, tmp_path / "unet", tmp_path / "scheduler"):
        assert (folder / REMOTE_CODE_FILENAME).read_text() == expected


def test_the_code_file_is_self_contained():
    source = bundle_source("sr3_diffusers.pipelines.pipeline_sr3")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("sr3_diffusers"), ast.unparse(node)
        if isinstance(node, ast.Import):
            assert not any(alias.name.startswith("sr3_diffusers") for alias in node.names)
    # every package module the pipeline imports is in it, after the modules it imports at module level
    modules = bundled_modules("sr3_diffusers.pipelines.pipeline_sr3")
    assert modules[-1] == "sr3_diffusers.pipelines.pipeline_sr3"
    assert set(modules) >= {
        "sr3_diffusers.image_processing",
        "sr3_diffusers.models.unet_sr3",
        "sr3_diffusers.schedulers.scheduling_sr3",
        "sr3_diffusers.schedulers.scheduling_sr3_dpmsolver",
    }
    assert modules.index("sr3_diffusers.schedulers.scheduling_sr3") < modules.index(
        "sr3_diffusers.schedulers.scheduling_sr3_dpmsolver"
    )
    assert "sr3_diffusers.cli" not in modules and "sr3_diffusers.evaluation" not in modules


def test_model_classes_load_with_diffusers_auto_model_and_our_class(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    for unet in (AutoModel.from_pretrained(str(tmp_path), subfolder="unet"),
                 SR3UNet2DModel.from_pretrained(tmp_path, subfolder="unet")):
        assert type(unet) is SR3UNet2DModel
        for name, parameter in tiny_pipeline.unet.state_dict().items():
            assert torch.equal(unet.state_dict()[name], parameter)


def test_three_loading_routes_give_identical_images_from_an_offline_hub_cache(tmp_path):
    SR3Pipeline.from_pretrained(SHIPPED_MODEL).save_pretrained(tmp_path / "saved")
    write_hub_cache(tmp_path / "saved", tmp_path / "hub", REPO_ID, "c" * 40)
    images = {}
    for name, route in ROUTES.items():
        output = tmp_path / f"{name}.pt"
        result = run_offline(RUN_ROUTE.format(repo_id=REPO_ID, route=route), tmp_path / "hub", output, cwd=tmp_path)
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
        images[name] = torch.load(output)
    reference = images.pop("our class")
    assert reference.shape == (1, 3, 48, 48)
    for name, image in images.items():
        assert torch.equal(image, reference), name


def test_the_shipped_folder_loads_with_the_generic_loader_as_this_package_s_classes(tmp_path):
    # The folder inside the package has no bundle: its code file imports the installed package, and its components
    # (no code files of their own) are found by importing the library model_index.json names.
    assert (SHIPPED_MODEL_PATH / REMOTE_CODE_FILENAME).read_text() == INSTALLED_PACKAGE_CODE
    assert not list(SHIPPED_MODEL_PATH.glob(f"*/{REMOTE_CODE_FILENAME}"))
    routes = {
        "our class": "from sr3_diffusers import SR3Pipeline\npipe = SR3Pipeline.from_pretrained(REPO_ID)",
        "generic": f"""
import sr3_diffusers
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained({str(SHIPPED_MODEL_PATH)!r}, trust_remote_code=True)
assert type(pipe) is sr3_diffusers.SR3Pipeline and type(pipe.unet) is sr3_diffusers.SR3UNet2DModel
assert type(pipe.predictor) is sr3_diffusers.SR3PredictorModel
assert type(pipe.scheduler) is sr3_diffusers.SR3DPMSolverScheduler
""",
    }
    images = {}
    for name, route in routes.items():
        output = tmp_path / f"{name}.pt"
        code = RUN_ROUTE.format(repo_id=SHIPPED_MODEL, route=route)
        result = run_offline(code, tmp_path / "hub", output, cwd=tmp_path)
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
        images[name] = torch.load(output)
    assert torch.equal(images["generic"], images["our class"])


def test_saves_that_name_module_paths_still_load(tiny_pipeline, tmp_path):
    # Saves made before the library naming name modules: ["sr3_diffusers.models.unet_sr3", "SR3UNet2DModel"].
    tiny_pipeline.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    index.update(_class_name="SR3Pipeline", unet=["sr3_diffusers.models.unet_sr3", "SR3UNet2DModel"],
                 scheduler=["sr3_diffusers.schedulers.scheduling_sr3", "SR3Scheduler"])
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    for path in tmp_path.rglob(REMOTE_CODE_FILENAME):
        path.unlink()
    loaded = SR3Pipeline.from_pretrained(tmp_path)
    assert type(loaded.unet) is SR3UNet2DModel and type(loaded.scheduler) is SR3Scheduler
    assert loaded.scheduler.config.num_inference_steps == tiny_pipeline.scheduler.config.num_inference_steps == 4


def test_an_unknown_component_class_is_a_clear_error(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    (tmp_path / "model_index.json").write_text(json.dumps({**index, "unet": ["sr3_diffusers", "SR3Transformer"]}))
    with pytest.raises(ValueError, match="names 'SR3Transformer' from sr3_diffusers"):
        SR3Pipeline.from_pretrained(tmp_path)


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub = FakeHub()
    huggingface_hub.set_client_factory(hub.client)
    yield hub
    huggingface_hub.set_client_factory(huggingface_hub.utils._http.default_client_factory)


def test_push_to_hub_uploads_the_code_files_and_our_model_card(tiny_pipeline, fake_hub):
    tiny_pipeline.push_to_hub("sr3-tiny", token="hf_test")
    [(repo_id, _, files)] = fake_hub.commits
    assert repo_id == "someone/sr3-tiny"
    assert {"model_index.json", "unet/diffusion_pytorch_model.safetensors", "unet/config.json",
            "scheduler/scheduler_config.json", "sr3_diffusers.py", "unet/sr3_diffusers.py",
            "scheduler/sr3_diffusers.py", "README.md"} == set(files)
    assert files["sr3_diffusers.py"].decode() == bundle_source("sr3_diffusers.pipelines.pipeline_sr3")
    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "diffusers" and card.data.pipeline_tag == "image-to-image"
    assert 'DiffusionPipeline.from_pretrained("someone/sr3-tiny", trust_remote_code=True)' in card.text
    assert INSTALL_COMMAND in card.text


def test_save_pretrained_with_push_to_hub_keeps_the_card_in_the_folder(tiny_pipeline, fake_hub, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "README.md").write_text("---\nlicense: mit\nlibrary_name: diffusers\n---\n\n# My own card\n")
    tiny_pipeline.save_pretrained(tmp_path / "out", push_to_hub=True, repo_id="me/sr3", token="hf_test")
    [(_, _, files)] = fake_hub.commits
    assert files["README.md"] == (tmp_path / "out" / "README.md").read_bytes()
    assert b"# My own card" in files["README.md"]
    assert ("POST", "/api/repos/create") in fake_hub.requests


def test_push_to_hub_of_a_loaded_pipeline_keeps_the_card_it_was_loaded_with(fake_hub):
    SR3Pipeline.from_pretrained(SHIPPED_MODEL).push_to_hub("sr3-default", token="hf_test")
    [(_, _, files)] = fake_hub.commits
    shipped_card = os.path.join(os.path.dirname(sr3_diffusers.__file__), "default", "README.md")
    assert files["README.md"] == open(shipped_card, "rb").read()

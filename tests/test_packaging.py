"""What `pip install sr3-diffusers` gives: the licence, the console scripts, one-line errors for missing extras, and
metric modules that load by path from any folder."""

import configparser
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import evaluate
import numpy as np
import pytest

import train_sr3
from sr3_diffusers.cli import train_main
from sr3_diffusers.metrics import METRICS, metric_path


REPO_ROOT = Path(__file__).resolve().parent.parent


def test_the_licence_file_is_packaged():
    setup = configparser.ConfigParser()
    setup.read(REPO_ROOT / "setup.cfg")
    assert setup["metadata"]["license_files"] == "LICENSE"
    assert "Apache License" in (REPO_ROOT / "LICENSE").read_text() and setup["metadata"]["license"] == "Apache-2.0"


def test_console_scripts_are_installed():
    scripts = {entry.name: entry.value for entry in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts["sr3-train"] == "sr3_diffusers.cli:train_main"
    assert scripts["sr3-evaluate"] == "sr3_diffusers.cli:evaluate_main"
    assert scripts["sr3-upscale"] == "sr3_diffusers.cli:upscale_main"


def test_sr3_train_runs_the_top_level_training_script(monkeypatch):
    calls = []
    monkeypatch.setattr(train_sr3, "main", calls.append)
    monkeypatch.setattr(sys, "argv", ["sr3-train", "--train_data_dir", str(REPO_ROOT / "docs"), "--max_train_steps", "3"])
    train_main()
    assert Path(train_sr3.__file__).resolve() == REPO_ROOT / "train_sr3.py"
    assert calls[0].max_train_steps == 3 and calls[0].train_data_dir == str(REPO_ROOT / "docs")


@pytest.mark.parametrize(
    "command, missing, extra",
    [("evaluate_main", "datasets", "eval"), ("evaluate_main", "evaluate", "eval"), ("train_main", "datasets", "train")],
)
def test_a_missing_optional_dependency_is_one_line_naming_the_extra(tmp_path, command, missing, extra):
    code = f"import sys; sys.modules[{missing!r}] = None; from sr3_diffusers import cli; cli.{command}()"
    result = subprocess.run([sys.executable, "-c", code, "--help"], cwd=tmp_path, capture_output=True, text=True,
                            env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"sr3-{command.split('_')[0]}: error: it needs `{missing}`, which is not installed: "
        f"pip install 'sr3-diffusers[{extra}]'"
    ]


def test_metric_modules_load_by_path_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert all(Path(metric_path(name), f"{name}.py").is_file() for name in METRICS)
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    result = evaluate.load(metric_path("psnr")).compute(predictions=[image // 2], references=[image])
    assert 0 < result["psnr"] < 20
    with pytest.raises(ValueError, match="Unknown SR3 metric 'niqe'"):
        metric_path("niqe")

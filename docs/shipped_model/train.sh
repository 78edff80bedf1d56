#!/usr/bin/env bash
# Stage 2 of the shipped model (recorded in its model card): the SR3 UNet refining the predictor's residual.
# Run docs/shipped_model/train_predictor.sh first. Both resume from their latest checkpoint when rerun.
cd "$(dirname "$0")/../.."
exec python train_sr3.py --train_data_dir photos/train --validation_data_dir photos/heldout --num_validation_images 4 \
  --preset sr3-64-256 --unet_config docs/shipped_model/unet_config.json \
  --predictor_model_name_or_path runs/predictor --residual_scale 0.1 --prediction_type v_prediction \
  --resolution 128 --train_batch_size 6 --max_train_steps 2500 --learning_rate 2e-4 --lr_min 1e-6 --loss l1 \
  --ema_decay 0.999 --ema_warmup --cache_images --output_dir runs/refine --checkpointing_steps 250 \
  --checkpoints_total_limit 2 --validation_steps 1000 --validation_inference_steps 20 --report_to tensorboard --seed 0 \
  --resume_from_checkpoint latest "$@"

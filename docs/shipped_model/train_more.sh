#!/usr/bin/env bash
# Stage 3 of the shipped model (recorded in its model card): the stage-2 UNet trained further, started from the
# weights committed in sr3_diffusers/default (a fresh optimizer and cosine schedule), the predictor frozen as before.
# Resumes from its latest checkpoint when rerun.
cd "$(dirname "$0")/../.."
exec python train_sr3.py --train_data_dir photos/train --validation_data_dir photos/heldout --num_validation_images 4 \
  --preset sr3-64-256 --pretrained_model_name_or_path sr3_diffusers/default \
  --predictor_model_name_or_path docs/shipped_model/l1_predictor --residual_scale 0.1 --prediction_type v_prediction \
  --resolution 128 --train_batch_size 6 --max_train_steps 1200 --learning_rate 1e-4 --lr_min 1e-6 --loss l1 \
  --ema_decay 0.999 --ema_warmup --cache_images --output_dir runs/refine_more --checkpointing_steps 200 \
  --checkpoints_total_limit 2 --validation_steps 1200 --validation_inference_steps 20 --report_to tensorboard \
  --seed 1 --resume_from_checkpoint latest "$@"

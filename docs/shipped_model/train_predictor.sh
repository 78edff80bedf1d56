#!/usr/bin/env bash
# Stage 1 of the shipped model (recorded in its model card): the deterministic predictor, L1 on the HR image.
cd "$(dirname "$0")/../.."
exec python train_sr3.py --train_data_dir photos/train --validation_data_dir photos/heldout --num_validation_images 8 \
  --train_component predictor --predictor_config '{"num_channels": 64, "num_blocks": 12}' \
  --resolution 128 --train_batch_size 16 --max_train_steps 4000 --learning_rate 5e-4 --lr_min 1e-6 --loss l1 \
  --ema_decay 0.999 --ema_warmup --cache_images --output_dir runs/predictor --checkpointing_steps 500 \
  --checkpoints_total_limit 2 --validation_steps 500 --report_to tensorboard --seed 0 --resume_from_checkpoint latest "$@"

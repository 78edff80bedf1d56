#!/usr/bin/env bash
# The shipped model's training command (recorded in its model card).
cd "$(dirname "$0")/../.."
exec python train_sr3.py --train_data_dir photos/train --validation_data_dir photos/heldout --num_validation_images 4 \
  --preset sr3-64-256 --unet_config docs/shipped_model/unet_config.json --resolution 128 --train_batch_size 6 \
  --max_train_steps 5000 --learning_rate 2e-4 --lr_min 1e-6 --loss l1 --ema_decay 0.999 --ema_warmup \
  --output_dir runs/shipped --checkpointing_steps 500 --checkpoints_total_limit 3 --validation_steps 2000 \
  --report_to tensorboard --dataloader_num_workers 1 --seed 0 "$@"

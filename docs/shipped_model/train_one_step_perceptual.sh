#!/usr/bin/env bash
# Experiment of docs/recipe.md section 8: train_perceptual_refine.sh (the shipped UNet trained further, the L1
# predictor frozen as its condition) with the LPIPS-VGG term scored where one sampling step from pure noise reads the
# image: at the first level of the one-step schedule, gamma = 0.006 (--perceptual_gamma), weight 10 (the measured
# final run; the w = 3 row added --perceptual_loss_weight 3 --output_dir runs/refine_one_step_w3 --seed 6). The L1
# term on v keeps its random levels, so multi-step sampling stays trained. Needs the VGG weights once (see
# train_perceptual_refine.sh). Resumes from its latest checkpoint when rerun. Measured as:
#   python benchmarks/quality.py --model runs/refine_one_step_w10 --settings "dpmsolver++:1,consistency=1" \
#     dpmsolver++:1 "dpmsolver++:4,consistency=1" "dpmsolver++:4,strength=0"
cd "$(dirname "$0")"
exec bash train_perceptual_refine.sh --perceptual_loss_weight 10 --perceptual_gamma 0.006 --learning_rate 2e-4 \
  --output_dir runs/refine_one_step_w10 --max_train_steps 800 --checkpointing_steps 200 --checkpoints_total_limit 4 \
  --validation_steps 800 --validation_inference_steps 1 --seed 7 "$@"

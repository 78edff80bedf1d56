#!/usr/bin/env bash
# Stage 3 of the shipped model (recorded in its model card): the L1 predictor of train_predictor.sh (runs/predictor)
# trained further with the same L1 loss, the learning rate restarted at 3e-4 on a cosine of 8000 steps. The shipped
# faithful_predictor is the run's end, step 8000 (docs/recipe.md sections 13 and 14: every 1000 steps of L1 gained
# PSNR, and the perceptual predictor trained from it does better too); train_adversarial_predictor.sh starts from it
# (docs/shipped_model/l1_predictor links to the shipped faithful_predictor). Resumes from its latest checkpoint.
# runs/predictor held the faithful_predictor shipped before it (commit 5593c22, sr3_diffusers/default/faithful_predictor);
# to train the shipped one further, pass --pretrained_model_name_or_path docs/shipped_model/l1_predictor.
cd "$(dirname "$0")"
exec bash train_predictor.sh --pretrained_model_name_or_path runs/predictor --learning_rate 3e-4 \
  --max_train_steps 8000 --checkpointing_steps 2000 --checkpoints_total_limit 4 --validation_steps 100000 \
  --output_dir runs/predictor_more --seed 22 "$@"

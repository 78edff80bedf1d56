#!/usr/bin/env bash
# The shipped model's data: photos/train and photos/heldout (links into ../shared/data/photos-train, named
# <set>_<file>); the photos listed in heldout_photos.txt are never trained on. Rerun to rebuild both folders.
set -euo pipefail
cd "$(dirname "$0")/../.."
source_dir=${1:-../shared/data/photos-train}
rm -rf photos && mkdir -p photos/train photos/heldout
for path in "$source_dir"/*/*; do
  relative=${path#"$source_dir"/}
  case "$relative" in *.csv) continue ;; esac
  if grep -qxF "$relative" docs/shipped_model/heldout_photos.txt; then split=heldout; else split=train; fi
  ln -s "$(realpath "$path")" "photos/$split/${relative//\//_}"
done
echo "photos/train: $(ls photos/train | wc -l) photos, photos/heldout: $(ls photos/heldout | wc -l)"

#!/usr/bin/env bash
# Run every experiment at one scale from a base commit and from this checkout, then compare
# their result.json numbers (tools/compare_results.py).  Shows a refactoring changes nothing.
#
#   tools/bit_identity.sh BASE_REF [SCALE] [NAME ...]     (SCALE: tiny | small, default tiny)
#
# Outputs go to ${BIT_OUT:-runs/bit-identity}/<scale>/{base,head}/<name>/ (runs/ is ignored by
# git); the base checkout is a temporary git worktree, removed at the end.  Uses the venv of this checkout.
set -euo pipefail
base_ref=${1:?usage: tools/bit_identity.sh BASE_REF [SCALE] [NAME ...]}
scale=${2:-tiny}
shift $(( $# >= 2 ? 2 : 1 ))
root=$(git rev-parse --show-toplevel)
py="$root/.venv/bin/python"
out=${BIT_OUT:-$root/runs/bit-identity}/$scale
mkdir -p "$out"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  mapfile -t names < <(PYTHONPATH="$root/src" "$py" -c \
    'from netprism.experiments import load_experiments; print("\n".join(load_experiments()))')
fi
tmp=$(mktemp -d)
tree="$tmp/base"
git -C "$root" worktree add --detach --quiet "$tree" "$base_ref"
trap 'git -C "$root" worktree remove --force "$tree"; rm -rf "$tmp"' EXIT
for side in base head; do
  src="$root/src"; [ "$side" = base ] && src="$tree/src"
  for name in "${names[@]}"; do
    echo "[$side] $name ($scale)"
    PYTHONPATH="$src" "$py" -m netprism run "$name" --scale "$scale" \
      --out "$out/$side/$name" --overwrite > "$out/$side-$name.log" 2>&1 \
      || { echo "  failed: see $out/$side-$name.log"; }
  done
done
"$py" "$root/tools/compare_results.py" "$out/base" "$out/head" "${names[@]}"

#!/usr/bin/env bash
# Interleaved before/after comparison of flow_overhead between two checkouts of Headwater, each
# with its own .venv (`make install` in each). On a shared 2-core machine the figures drift by
# tens of percent between runs, so a single before run and a single after run prove little;
# alternating the two N times shows whether a difference outlives the noise.
#
#   bench/compare_trees.sh OLD_CHECKOUT NEW_CHECKOUT [N]
#   (e.g. git worktree add /tmp/old <commit> && (cd /tmp/old && make install))
set -euo pipefail
old=${1:?usage: bench/compare_trees.sh OLD_CHECKOUT NEW_CHECKOUT [N]}
new=${2:?usage: bench/compare_trees.sh OLD_CHECKOUT NEW_CHECKOUT [N]}
rounds=${3:-4}
for _ in $(seq 1 "$rounds"); do
  for tree in "$old" "$new"; do
    (cd "$tree" && .venv/bin/python -m bench --skip-prefect --only flow_overhead >/dev/null 2>&1 \
      && .venv/bin/python - "$tree" <<'PY'
import json, sys
sections = json.load(open("bench/results/latest.json"))["sections"]
runs = sections[0]["measurements"]
cells = [
    f"{name.split()[-1]}: p50 {m['figures']['p50']:.2f} ms, cpu {m['figures']['cpu']:.2f} ms"
    for name, m in runs.items()
    if name.startswith("Headwater")
]
print(sys.argv[1], *cells, sep=" | ")
PY
    )
  done
done

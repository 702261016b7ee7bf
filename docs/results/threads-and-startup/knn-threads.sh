#!/usr/bin/env bash
set -u
bin=/work/main/target/release/sfess-agent
out=$1
: > "$out"
one() {
  local label=$1; shift
  rm -rf /tmp/tb-run
  "$bin" "$@" train --env knn-mnist --steps 800 --eval-every 100000 --out /tmp/tb-run --quiet --no-figures >/dev/null 2>&1
  echo "$label $(python3 -c 'import json;print(json.load(open("/tmp/tb-run/summary.json"))["seconds_per_step"])')" >> "$out"
}
sh -c 'while :; do :; done' & hog=$!
for round in 1 2 3; do one "hog default"; one "hog threads1" --threads 1; one "hog threads2" --threads 2; done
kill $hog
for round in 1 2; do one "quiet default"; one "quiet threads2" --threads 2; done
/work/main/target/release/sfess-agent bench startup --repeats 11 >> "$out" 2>/dev/null
echo done >> "$out"

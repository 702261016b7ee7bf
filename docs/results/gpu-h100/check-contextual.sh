#!/usr/bin/env bash
set -u
TL=$(/opt/torch/.venv/bin/python -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")')
export LD_LIBRARY_PATH="$TL:$PWD/.gpu/lib"
B=.gpu/sfess-agent
PY=/opt/torch/.venv/bin/python
$B --device cuda train --env cmd --reward-cmd "$PY examples/contextual_score.py" --n 20 --k 3 --context-dim 4 \
  --policy mlp --batch-size 32 --samples 16 --steps 1000 --eval-every 500 --out /tmp/runs/ctx --quiet --json 2>&1
echo "rc=$?"

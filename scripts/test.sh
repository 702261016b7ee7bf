#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs libtorch if it is missing (once, into a
# per-user cache) and Slurm's packages if they are missing, then checks formatting and lints (every feature, the Gymnasium adapter
# included), runs every test and doctest, builds and tests the Python package, runs each example briefly, has TensorBoard read
# a run's event file, and builds the book.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh
# Where cargo builds (the binaries below run from it).
target_dir="${CARGO_TARGET_DIR:-$root/target}"
# Slurm's packages, for the tests that run sweeps on a real single-node cluster (tests/slurm.rs).
scripts/slurm-cluster.sh install
cargo fmt --all --check
cargo fmt --manifest-path python/Cargo.toml --check
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
cargo test --workspace --all-features

# The Python package, installed as the README installs it (`pip install ./python`, into the
# environment holding PyTorch 2.11.0: scripts/env.sh's), its build kept in target/python
# between runs; its lints, then its tests (pytest), which also run the README's Python quick
# start and the `sfess-agent` binary built above.
echo "== Python package"
CARGO_TARGET_DIR="$root/target/python" cargo clippy --manifest-path python/Cargo.toml --quiet -- -D warnings
python -m pip install --quiet --disable-pip-version-check "pytest==8.3.4"
CARGO_TARGET_DIR="$root/target/python" python -m pip install --quiet --disable-pip-version-check ./python
SFESS_AGENT_BIN="$target_dir/debug/sfess-agent" python -m pytest -q -p no:cacheprovider python/tests

# The examples, briefly (the README and the book run them in full).
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
echo "== examples"
cargo build --quiet --bin sfess-agent --bin sfess-agent-engine
cargo run --quiet --example custom_reward -- 100
cargo run --quiet --example sensor_placement -- 50
cargo run --quiet -p sfess-envs --features gymnasium --example gymnasium_driver
"$target_dir/debug/sfess-agent" train --env cmd --reward-cmd 'python3 examples/score.py' \
    --n 100 --k 10 --steps 20 --eval-every 10 --out "$scratch/cmd" --json
"$target_dir/debug/sfess-agent" train --env cmd --reward-cmd 'python3 examples/contextual_score.py' \
    --n 20 --k 3 --context-dim 4 --policy mlp --batch-size 32 --steps 20 --eval-every 10 --out "$scratch/ctx" --json

# TensorBoard itself reads a run's event file back to the run's records (the tests decode it
# with a reader of their own; this is the program users watch runs with). Installed once from
# PyPI into a per-user cache, beside libtorch's.
echo "== TensorBoard"
tensorboard_venv="${XDG_CACHE_HOME:-$HOME/.cache}/sfess-agent/tensorboard-2.21.0"
if [ ! -f "$tensorboard_venv/.complete" ]; then
    rm -rf "$tensorboard_venv"
    python3 -m venv "$tensorboard_venv"
    "$tensorboard_venv/bin/python" -m pip install --quiet --disable-pip-version-check "tensorboard==2.21.0"
    touch "$tensorboard_venv/.complete"
fi
"$target_dir/debug/sfess-agent" train --env max-coverage --steps 300 --eval-every 100 \
    --out "$scratch/tensorboard" --quiet --no-figures
# Extended past its end: the event file drops what only the first end wrote (its test), and no
# step is recorded twice.
"$target_dir/debug/sfess-agent" train --resume "$scratch/tensorboard" --steps 450 --quiet
"$tensorboard_venv/bin/python" scripts/check-tensorboard.py "$scratch/tensorboard"

# The book builds (mdBook, installed once from crates.io into a per-user cache); its samples are
# tested above (tests/book.rs and the doctests).
echo "== book"
mdbook_root="${XDG_CACHE_HOME:-$HOME/.cache}/sfess-agent/mdbook-0.5.4"
if [ ! -x "$mdbook_root/bin/mdbook" ]; then
    cargo install --quiet --locked --version 0.5.4 --root "$mdbook_root" mdbook
fi
"$mdbook_root/bin/mdbook" build docs/book --dest-dir "$scratch/book"

# The release binary as the README's quick start builds it (./sfess-agent): `sfess-agent` itself
# needs no libtorch library (it answers --help, envs, estimators and sweep status itself, and
# starts sfess-agent-engine for the rest: src/cli/front.rs), which only link-time optimisation
# of the release build shows.
echo "== release binary"
./sfess-agent --version
if readelf -d "$target_dir/release/sfess-agent" | grep -q 'NEEDED.*torch'; then
    echo "target/release/sfess-agent links libtorch: something in src/cli/front.rs reaches tensor code" >&2
    exit 1
fi
./sfess-agent envs max-coverage

# A crate of your own (examples/own-crate, outside the workspace), built as a user builds it:
# on its own, in a target folder of its own, and run without LD_LIBRARY_PATH (its build.rs,
# sfess-link, writes libtorch's folder into the binary). Release: no debug info, so this second
# build of tch and sfess-agent stays small on CI's disk.
echo "== own crate"
CARGO_TARGET_DIR="$root/target/own-crate" cargo build --release --quiet --manifest-path examples/own-crate/Cargo.toml
env -u LD_LIBRARY_PATH "$root/target/own-crate/release/own-crate" 100

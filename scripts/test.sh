#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs libtorch if it is missing (once, into a
# per-user cache), then checks formatting and lints and runs every test and doctest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace

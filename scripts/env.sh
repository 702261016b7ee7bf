# shellcheck shell=bash
# Source this file to get a shell that can build sfess-agent against libtorch:
#
#     source scripts/env.sh
#
# On first use it installs PyTorch (which ships libtorch) from PyPI into a per-user
# cache keyed by the torch version, so every clone on this machine shares one copy:
#     ${SFESS_TORCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sfess-agent/torch-$SFESS_TORCH_VERSION}
# `tch` 0.24 builds against exactly PyTorch 2.11.0; do not change one without the other.
# It then exports what `torch-sys`'s build script reads (LIBTORCH_USE_PYTORCH=1 and that
# environment's python first on PATH).

SFESS_TORCH_VERSION=2.11.0
SFESS_TORCH_CACHE=${SFESS_TORCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sfess-agent/torch-$SFESS_TORCH_VERSION}

sfess_install_torch() {
    local venv="$SFESS_TORCH_CACHE/venv"
    if [ -f "$SFESS_TORCH_CACHE/.complete" ]; then
        return 0
    fi
    echo "sfess-agent: installing PyTorch $SFESS_TORCH_VERSION (libtorch for tch) into $SFESS_TORCH_CACHE, once" >&2
    rm -rf "$SFESS_TORCH_CACHE.partial"
    mkdir -p "$(dirname "$SFESS_TORCH_CACHE")"
    # Build in a side folder and move it into place only when complete, so that an
    # interrupted install never leaves a half-installed cache behind.
    python3 -m venv "$SFESS_TORCH_CACHE.partial/venv" || return 1
    "$SFESS_TORCH_CACHE.partial/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "torch==$SFESS_TORCH_VERSION" || return 1
    rm -rf "$SFESS_TORCH_CACHE"
    mv "$SFESS_TORCH_CACHE.partial" "$SFESS_TORCH_CACHE" || return 1
    # A venv's scripts name their interpreter by absolute path: recreate them in place.
    python3 -m venv --upgrade "$venv" >/dev/null || return 1
    touch "$SFESS_TORCH_CACHE/.complete"
    echo "sfess-agent: PyTorch $SFESS_TORCH_VERSION installed" >&2
}

sfess_install_torch || { echo "sfess-agent: could not install PyTorch $SFESS_TORCH_VERSION from PyPI" >&2; return 1 2>/dev/null || exit 1; }
export PATH="$SFESS_TORCH_CACHE/venv/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
unset LIBTORCH

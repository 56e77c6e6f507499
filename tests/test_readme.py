"""The README's Python example runs and prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_readme_python_block_prints_what_it_says(tmp_path: Path) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    expected = [m.group(1) for m in re.finditer(r"print\(.*\)  # (\S+(?: \S+)*)", block)]
    out = io.StringIO()
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), {})
    finally:
        os.chdir(cwd)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(expected) == 4
    for line, comment in zip(lines, expected, strict=True):
        assert comment.startswith(line), (line, comment)

"""Running the ``penchant`` command in a real subprocess, and what its errors must look like."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def penchant(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "penchant", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 2, no traceback, one ``error: ...`` line on stderr containing every fragment."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def files_naming(run_dir: Path, value: str) -> list[str]:
    """The files of a run directory with ``value`` in any cell of a Parquet table or entry of a NumPy
    archive (compressed files do not show it in their raw bytes)."""
    import numpy as np
    import pandas as pd

    found = []
    for path in sorted(run_dir.rglob("*")):
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            if any(value in set(frame[c].astype(str)) for c in frame.columns):
                found.append(str(path.relative_to(run_dir)))
        elif path.suffix == ".npz":
            with np.load(path) as saved:
                if any(
                    value in set(saved[k].astype(str).ravel())
                    for k in saved.files
                    if saved[k].dtype.kind in "US"
                ):
                    found.append(str(path.relative_to(run_dir)))
    return found

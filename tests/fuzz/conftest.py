"""The fuzz tests share their checks with the atheris targets in fuzz/ (fuzz/fuzz_harness.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # `import mutations` under --import-mode=importlib
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))  # `import fuzz_harness`

"""Generated documentation stays current: docs/bad_inputs.md is what its generator writes now."""
import difflib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "PYTHONPATH=. python tests/list_bad_inputs.py docs/bad_inputs.md"


def test_bad_inputs_md_is_current():
    """tests/list_bad_inputs.py runs every case of tests/test_bad_input.py (about a second)
    in its own process, so that its temporary files never meet this session's."""
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "list_bad_inputs.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8",
                          timeout=300)
    committed = (ROOT / "docs" / "bad_inputs.md").read_text(encoding="utf-8")
    if proc.stdout != committed:
        diff = list(difflib.unified_diff(committed.splitlines(), proc.stdout.splitlines(),
                                         "docs/bad_inputs.md", "generated now", lineterm="",
                                         n=0))
        shown = "\n".join(diff[:30]) + (f"\n... ({len(diff) - 30} more lines)"
                                         if len(diff) > 30 else "")
        errors = proc.stderr.strip().splitlines()[-5:] if proc.returncode else []
        pytest.fail("\n".join([f"docs/bad_inputs.md is stale: regenerate it from the repository "
                               f"root with `{REGENERATE}` and commit it", shown, *errors]),
                    pytrace=False)

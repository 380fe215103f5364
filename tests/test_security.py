"""Nothing in the package evaluates strings or unpickles user data, and remote code stays off by default."""

import re
from pathlib import Path

from maestro_lit.settings import ModelSettings

SOURCE = Path(__file__).resolve().parents[1] / "src" / "maestro_lit"


def _code_lines():
    for path in SOURCE.rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            yield f"{path.relative_to(SOURCE)}:{number}", code


def test_no_eval_exec_or_pickle_in_the_package():
    offenders = [
        where
        for where, code in _code_lines()
        if re.search(r"(?<![\w.])(eval|exec)\(|\bpickle\b|weights_only\s*=\s*False", code)
    ]
    assert not offenders, offenders


def test_remote_code_is_off_unless_asked():
    assert ModelSettings().trust_remote_code is False
    offenders = [where for where, code in _code_lines() if re.search(r"trust_remote_code\s*=\s*True", code)]
    assert not offenders, offenders

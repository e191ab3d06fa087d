"""The README's Python examples run as written (docs that stay true)."""
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


# optional frameworks an example may import: it is skipped where they are not installed
OPTIONAL = ("torch", "jax")


@pytest.mark.kernel
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    for name in OPTIONAL:
        if re.search(rf"^\s*(import|from)\s[^\n#]*\b{name}\b", BLOCKS[index], flags=re.M):
            pytest.importorskip(name)
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})
    assert capsys.readouterr().out.strip()      # every example prints what it shows

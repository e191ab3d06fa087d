"""The README's main job: ``fastsampled demo`` (small sizes here)."""
import io
import subprocess
import sys

import pytest

from fastsampled.cli import demo, main


def test_demo_prints_its_figures():
    out = io.StringIO()
    res = demo(num_classes=5000, dim=16, batch=64, num_sampled=8, repeat=3, out=out)
    text = out.getvalue()
    for what in ("fixed_unigram sampler", "alias draws", "log-uniform draws",
                 "sampled softmax loss + gradients", "NCE loss + gradients", "full-softmax"):
        assert what in text
    assert res["step_s"] > 0 and res["full_s"] > 0 and res["build_s"] > 0


@pytest.mark.parametrize("argv", [["demo", "--classes", "0"], ["demo", "--num-sampled", "9",
                                                                "--classes", "8"], []])
def test_demo_rejects_bad_arguments(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_module_entry_point_help():
    r = subprocess.run([sys.executable, "-m", "fastsampled", "demo", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--classes" in r.stdout

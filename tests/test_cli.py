"""The README's main job: ``fastsampled demo`` (small sizes here)."""
import io
import subprocess
import sys

import pytest

from fastsampled.cli import demo, main


@pytest.mark.kernel
@pytest.mark.parametrize("on_disk", [False, True])
def test_demo_trains_and_prints_its_figures(tmp_path, on_disk):
    out = io.StringIO()
    res = demo(num_classes=2000, dim=16, batch=128, num_sampled=16, steps=150,
               path=str(tmp_path / "head") if on_disk else None, optimizer="adam", lr=0.05,
               eval_examples=200, out=out)
    text = out.getvalue()
    for what in ("steps/s", "held-out", "precision@1", "chance", "full-softmax step"):
        assert what in text
    assert res["loss_last"] < res["loss_first"]
    assert res["p1_after"] > max(res["p1_before"], 2 * res["chance"])
    assert res["full_step_s"] > 0
    if on_disk:
        assert (tmp_path / "head" / "head.json").exists()


@pytest.mark.parametrize("argv", [["demo", "--classes", "0"], ["demo", "--num-sampled", "9",
                                                                "--classes", "8"],
                                  ["demo", "--optimizer", "rmsprop"], []])
def test_demo_rejects_bad_arguments(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_module_entry_point_help():
    r = subprocess.run([sys.executable, "-m", "fastsampled", "demo", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--classes" in r.stdout and "--path" in r.stdout

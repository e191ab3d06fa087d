"""A head killed at any instant reopens at exactly its last checkpoint.

``crash_driver.py`` kills memory-mapped heads (SGD, Adagrad, lazy Adam; 1 and 3 shards)
with SIGKILL before every open / ftruncate / fsync / fdatasync / rename / replace / unlink of
the first step (which creates the journals), of a checkpoint and of the step after it, and
at random moments of training, then reopens each and compares weights, biases,
optimizer slots, step counters and the sampler's stream with a run that was never killed --
at the checkpoint it reopened at, and again after training on to the end.
"""
import json
import os
import subprocess
import sys

import pytest

DRIVER = os.path.join(os.path.dirname(__file__), "crash_driver.py")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")
def test_kill_at_every_commit_point_and_at_random(tmp_path):
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    proc = subprocess.run([sys.executable, DRIVER, "--root", str(tmp_path),
                           "--optimizers", "sgd,adagrad,adam", "--shards", "1,3",
                           "--random-kills", "6", "--seed", "7"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    failed = [r for r in results if not r["ok"]]
    assert not failed, json.dumps(failed[:10], indent=1)
    labels = [r["label"] for r in results]
    # every configuration was killed inside its checkpoint and at random moments
    for opt in ("sgd", "adagrad", "adam"):
        for shards in (1, 3):
            prefix = f"{opt}/{shards} shard(s):"
            assert sum(lab.startswith(prefix + " kill at file operation") for lab in labels) >= 10
            assert sum(lab.startswith(prefix + " random kill") for lab in labels) == 6
    # both sides of the commit point were hit: some reopen before it, some after
    steps = {r.get("step") for r in results if "file operation" in r["label"]}
    assert {0, 4, 8} <= steps


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")
def test_kill_with_the_power_cut_durability_too(tmp_path):
    """The same kills with durability="power" (every journal block msync-ed before its rows
    change): the process-kill guarantee holds in that mode as well."""
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    proc = subprocess.run([sys.executable, DRIVER, "--root", str(tmp_path),
                           "--optimizers", "adam", "--shards", "3", "--random-kills", "4",
                           "--seed", "11", "--durability", "power"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    failed = [r for r in results if not r["ok"]]
    assert not failed, json.dumps(failed[:10], indent=1)
    assert len(results) >= 20

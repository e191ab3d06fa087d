"""One progress convention (fastsampled._progress): a tqdm bar only on a terminal, otherwise
plain lines every 10 % or every few seconds, and nothing for a short job."""
import io
import logging

from fastsampled import _progress
from fastsampled._progress import Progress


def test_plain_lines_every_tenth_when_not_a_terminal():
    out = io.StringIO()
    with Progress(1000, "training", unit="step", out=out, min_s=0) as p:
        for _ in range(100):
            p.update(10, loss="1.0")
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "  training: 100/1000 loss=1.0" and lines[-1].startswith("  training: 1000/")


def test_short_jobs_say_nothing_and_lines_go_to_a_logger(caplog):
    out = io.StringIO()
    with Progress(10, "quick", out=out) as p:         # finishes before MIN_S
        p.update(10)
    assert out.getvalue() == ""
    logger = logging.getLogger("fastsampled.test")
    with caplog.at_level(logging.INFO, logger="fastsampled.test"):
        with Progress(4, "logged", logger=logger, min_s=0) as p:
            for _ in range(4):
                p.update()
    assert [r.getMessage() for r in caplog.records][-1] == "logged: 4/4"


def test_slow_jobs_report_every_few_seconds(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: now[0])
    out = io.StringIO()
    p = Progress(10**6, "slow", out=out, min_s=0)
    for _ in range(3):
        now[0] += _progress.EVERY_S
        p.update(1)                 # far below 10 %, but EVERY_S have passed each time
    assert len(out.getvalue().splitlines()) == 3


def test_lines_written_beside_the_progress_go_to_their_stream():
    out, lines = io.StringIO(), io.StringIO()
    with Progress(4, "job", out=out, min_s=0) as p:
        assert not p.interactive                # no terminal here: plain lines
        p.update(2)
        p.write("a result", lines)
        p.update(2)
    assert lines.getvalue() == "a result\n"
    assert out.getvalue().splitlines() == ["  job: 2/4", "  job: 4/4"]

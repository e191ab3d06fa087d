"""Progress of long jobs, one convention everywhere (private).

On a terminal (stderr is a TTY) and with tqdm installed, a tqdm bar on stderr; otherwise --
logs, pipes, notebooks without a terminal -- a plain line every 10 % of the work or every
``EVERY_S`` seconds, whichever comes first, sent to a ``logging`` logger (INFO) or printed to
a stream. Jobs shorter than ``MIN_S`` say nothing. Training loops, the word2vec vocabulary
scan, the creation of a large store and ``fastsampled bench`` use it; lines a job prints
meanwhile go through :meth:`Progress.write`, which keeps the bar intact.
"""
import sys
import time

__all__ = ["Progress"]

EVERY_S = 5.0     # plain lines: at least this often while the job runs
MIN_S = 2.0       # and only once it has run this long (short jobs stay quiet)


class Progress:
    """Report ``update(n)`` calls of a job of ``total`` units.

    Parameters
    ----------
    total : int
        Units of work (steps, bytes, rows).
    desc : str
        What the job is, first on every line.
    unit : str
        Name of a unit, for the bar.
    logger : logging.Logger, optional
        Where plain lines go (INFO); default: printed to ``out``.
    out : file, optional
        Stream of the plain lines when there is no logger (default ``sys.stdout``).
    min_s : float
        Plain lines start only after the job has run this long.
    """

    def __init__(self, total, desc, unit="it", logger=None, out=None, min_s=MIN_S):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.logger, self.out, self.min_s = logger, out, min_s
        self.n = 0
        self._start = self._last = time.perf_counter()
        self._last_n = 0
        self._bar = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm      # optional: the bench extra installs it
                self._bar = tqdm(total=self.total, desc=desc, file=sys.stderr, unit=unit,
                                 unit_scale=unit == "B", leave=False)
            except ImportError:
                pass

    def update(self, n=1, **fields):
        """``n`` more units done; ``fields`` (name=value) are shown beside the count."""
        self.n += n
        if self._bar is not None:
            if fields:
                self._bar.set_postfix(fields, refresh=False)
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._start < self.min_s:     # short jobs stay quiet, to the end
            return
        if (self.n - self._last_n >= max(1, self.total // 10) or self.n >= self.total
                or now - self._last >= EVERY_S):
            self._last, self._last_n = now, self.n
            info = "".join(f" {k}={v}" for k, v in fields.items())
            line = f"{self.desc}: {self.n}/{self.total}{info}"
            if self.logger is not None:
                self.logger.info("%s", line)
            else:
                print("  " + line, file=self.out or sys.stdout, flush=True)

    @property
    def interactive(self):
        """True while a bar is shown (a terminal with tqdm), False for plain lines."""
        return self._bar is not None

    def write(self, msg, file=None):
        """Print the line ``msg`` to ``file`` (default ``sys.stdout``) without breaking the
        bar: it is cleared first and drawn again below the line."""
        file = sys.stdout if file is None else file
        if self._bar is not None:
            type(self._bar).write(msg, file=file)
        else:
            print(msg, file=file)
        file.flush()

    def close(self):
        """End the bar (plain lines need nothing)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

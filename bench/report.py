"""Tables and plots of a folder of benchmark results (the JSON files the bench scripts write).

    python bench/report.py DIR [--show | --keep-plots]

For every ``DIR/<name>.json`` it writes ``DIR/<name>.md`` (the rows as a markdown table, the
notes and the machine) and, when matplotlib is installed, ``DIR/<name>.png``; then
``DIR/README.md``, one page with every plot and table and the machine they were measured on.
Without matplotlib the tables are still written and a note says why there are no plots.
``--show`` also opens the plots in a window (when matplotlib has a screen to draw on).
``--keep-plots`` draws nothing and links the ``<name>.png`` files already in ``DIR``: for
rewriting the pages after a change to their text, when the plotted figures did not change.

Known results get their own figure: ``scaling`` (step time against the number of classes),
``samplers`` (alias build rate against V, draw rates), ``head`` (train step, memory and the
optimizers, as bars per V), ``word2vec`` (words/s and quality, fastsampled beside gensim),
``memory`` (peak and anonymous RSS against V), ``losses`` (the step variants), ``torch`` (the
training step against V, and the parts of a step timed interleaved). Any other result file
whose rows have ``V`` and ``median_ms`` is plotted as median time against V, one line per
``impl``/``case`` (one bar per row when no series has two points). Each figure's title names
what was measured and the machine, a caption under it says what a point or bar is, bars start
at 0 and carry their values, and a log axis (plain tick labels) is used only for points and
lines spanning more than a factor of 30.
"""
import argparse
import glob
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROW_NOTES, _fmt  # noqa: E402

ORDER = ["scaling", "losses", "samplers", "head", "word2vec", "torch", "memory"]
BUSY = 0.25           # others_cpu above which a point is drawn hollow (disturbed)
SKIP_COLUMNS = {"load1", "attempts", "blocks", "mem", "B", "S", "D", "reps",
                "p10_ms", "p90_ms", "method", "n"}
ROW_NOTES = list(ROW_NOTES)   # per-row text ("skipped", "error"): shown where a row has one
COLUMNS = {
    "samplers": ["case", "V", "n", "median_ms", "value", "unit", "vs_TF", "others_cpu",
                 "disturbed"] + ROW_NOTES,
    "losses": ["case", "V", "B", "S", "dtype", "median_ms", "GFLOP/s", "numpy_ref_ms",
               "vs_TF", "others_cpu", "disturbed"] + ROW_NOTES,
    "head": ["case", "V", "D", "opt", "median_ms", "value", "unit", "peak_rss_GB", "anon_GB",
             "vs_TF", "others_cpu", "disturbed"] + ROW_NOTES,
    "scaling": ["impl", "V", "median_ms", "p10_ms", "p90_ms", "reps", "vs_fastsampled",
                "others_cpu"] + ROW_NOTES,
    "memory": ["impl", "V", "peak_rss_GB", "anon_GB", "runtime_GB", "weights_GB", "step_ms",
               "others_cpu"] + ROW_NOTES,
    "word2vec": ["tool", "arch", "version", "alpha", "effective_kwps", "raw_kwps", "train_s",
                 "peak_rss_GiB", "analogy", "wordsim353", "speed_ratio", "analogy_diff",
                 "wordsim_diff", "peak_rss_ratio"] + ROW_NOTES,
}
TEXT_COLUMNS = {"case", "impl", "tool", "arch", "unit", "disturbed"} | set(ROW_NOTES)


def load_results(folder):
    """The result documents of ``folder``, ordered as the suites run.

    Parameters
    ----------
    folder : str
        A folder holding ``<name>.json`` files written by ``_common.write_results``.

    Returns
    -------
    list of dict
        Each document (``benchmark``, ``timestamp``, ``meta``, ``machine``, ``rows``), in
        :data:`ORDER`, unknown names last; files that are not result documents are skipped.
    """
    docs = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("rows"), list):
            doc.setdefault("benchmark", os.path.splitext(os.path.basename(path))[0])
            docs.append(doc)
    rank = {n: i for i, n in enumerate(ORDER)}
    return sorted(docs, key=lambda d: (rank.get(d["benchmark"], len(ORDER)), d["benchmark"]))


# --------------------------------------------------------------------------- markdown

def fmt(v):
    """A cell: the text tables' number format, powers of ten as ``10^k``, ``-`` for None."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**4 \
            and v % 10**int(math.log10(abs(v))) == 0:
        return f"10^{int(math.log10(abs(v)))}"
    return _fmt(v).replace("|", "/")


def columns_of(doc):
    """The table's columns: the suite's usual ones that some row fills, else every scalar
    field that some row fills."""
    rows = doc["rows"]
    seen = []
    for r in rows:
        for k, v in r.items():
            if k not in seen and v is not None and not isinstance(v, (dict, list)):
                seen.append(k)
    preferred = COLUMNS.get(doc["benchmark"])
    if preferred:
        return [c for c in preferred if c in seen]
    return [c for c in seen if c not in SKIP_COLUMNS]


def markdown_table(doc):
    """The rows of one result document as a markdown table (str)."""
    cols = columns_of(doc)
    lines = ["| " + " | ".join(cols) + " |",
             "|" + "|".join("---" if c in TEXT_COLUMNS else "---:" for c in cols) + "|"]
    for r in doc["rows"]:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def machine_line(m):
    """One line naming the machine and software a result was measured on."""
    simd = m.get("cpu_flags_simd") or []
    widest = ("AVX-512" if any(f.startswith("avx512") for f in simd)
              else "AVX2" if "avx2" in simd else "no AVX2")
    return (f"{m.get('cpu_model')} ({m.get('cpu_family_model')}, {widest}), "
            f"{m.get('usable_cpus')} cores, {m.get('mem_total_gib')} GiB; python "
            f"{m.get('python')}, numpy {m.get('numpy')}, numba {m.get('numba')} "
            f"({m.get('numba_num_threads')} threads, {m.get('numba_threading_layer')}), "
            f"fastsampled {m.get('fastsampled')}; {m.get('platform')}")


def suite_markdown(doc, png=None):
    """The ``<name>.md`` page of one result document."""
    meta = doc.get("meta") or {}
    out = [f"## {doc['benchmark']}", "",
           f"Measured {doc.get('timestamp')} on {machine_line(doc.get('machine') or {})}"
           + (" (`--quick`)" if meta.get("quick") else "") + ".", ""]
    if png:
        out += [f"![{doc['benchmark']}]({png})", ""]
    out += [markdown_table(doc), ""]
    notes = meta.get("notes") or []
    if notes:
        out += ["Notes:", ""] + [f"* {n}" for n in notes] + [""]
    return "\n".join(out)


# --------------------------------------------------------------------------- plots
#
# Every figure says in its title what was measured and on which machine, labels each axis with
# its unit, and has a caption under the axes saying what a point or a bar is. Bars start at 0
# on a linear axis and carry their values. A log axis is used only for points and lines whose
# values span more than a factor of LOG_RANGE, with plain numbers as its tick labels. Legends
# stand outside the data and name only what is drawn.

LOG_RANGE = 30
FS_COLOR, PEER_COLOR, THIRD_COLOR, BODY_COLOR = "tab:blue", "tab:orange", "tab:red", "0.55"


def _num(r, key):
    v = r.get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None


def _disturbed(r):
    return (_num(r, "others_cpu") or 0.0) > BUSY


def _plain(v):
    """A value label, three significant digits in plain notation: ``1,546``, ``13.0``,
    ``0.795``, ``0.0891``."""
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:#.3g}"


def _tick(v, _pos=None):
    """A tick label in plain digits: ``0.01``, ``2.5``, ``1,000``."""
    return f"{v:,.6g}"


def _v_text(v):
    """A number of classes: ``10k``, ``100k``, ``1M``, ``10M``."""
    for div, suffix in ((10**6, "M"), (10**3, "k")):
        if abs(v) >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def _machine_short(doc):
    """The second title line: the machine, the date and the mode of a result document."""
    m = doc.get("machine") or {}
    parts = [str(m.get("cpu_model") or "unknown CPU")]
    if m.get("usable_cpus"):
        parts.append(f"{m['usable_cpus']} cores")
    if m.get("mem_total_gib"):
        parts.append(f"{m['mem_total_gib']} GiB RAM")
    text = "measured on " + ", ".join(parts)
    if doc.get("timestamp"):
        text += f", {str(doc['timestamp'])[:10]}"
    meta = doc.get("meta") or {}
    if meta.get("quick") or any(str(n).startswith("--quick") for n in meta.get("notes") or []):
        text += " (--quick run)"
    return text


def _sizes(doc, *keys):
    """``B=1024, D=128, S=64`` from the document's meta, else from its first row that has them."""
    meta = doc.get("meta") or {}
    out = []
    for k in keys:
        v = meta.get(k)
        if not isinstance(v, int):
            v = next((r[k] for r in doc["rows"] if isinstance(r.get(k), int)), None)
        if v is not None:
            out.append(f"{k}={v}")
    return ", ".join(out)


def _palette(names, fixed=None):
    """A colour per series name: ``fixed`` first (by substring), then matplotlib's cycle."""
    cycle = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
             "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]
    out, free = {}, list(cycle)
    for n in names:
        for sub, color in (fixed or {}).items():
            if sub in str(n):
                out[n] = color
                if color in free:
                    free.remove(color)
                break
    for n in names:
        if n not in out:
            out[n] = free.pop(0) if free else "black"
    return out


def _names(rows, key):
    seen = []
    for r in rows:
        if r.get(key) not in seen:
            seen.append(r.get(key))
    return seen


def _v_axis(ax, vs):
    """x: the number of classes on a log axis, one labelled tick at each measured V."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    vs = sorted(set(vs))
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(vs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _v_text(v)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(vs[0] / 1.6, vs[-1] * 1.6)
    ax.set_xlabel("number of classes V (log scale)")


def _value_axis(ax, which, values, label, unit, room=1.15, bars=False):
    """The value axis: linear from 0, or, for points and lines (not ``bars``), log with plain
    tick labels when the values span more than LOG_RANGE. Returns True when it is a log axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    vals = [v for v in values if v is not None and v > 0]
    log = not bars and bool(vals) and max(vals) / min(vals) > LOG_RANGE
    axis = ax.yaxis if which == "y" else ax.xaxis
    if log:
        (ax.set_yscale if which == "y" else ax.set_xscale)("log")
        decades = math.log10(max(vals) / min(vals))
        axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if decades > 2.5
                                          else (1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(_tick))
        axis.set_minor_formatter(NullFormatter())
        unit = f"{unit}, log scale"
    else:
        axis.set_major_formatter(FuncFormatter(_tick))
        top = max(vals) * room if vals else 1.0
        (ax.set_ylim if which == "y" else ax.set_xlim)(0, top)
    (ax.set_ylabel if which == "y" else ax.set_xlabel)(f"{label} ({unit})")
    ax.grid(True, axis=which, which="major", alpha=0.3)
    return log


def _lines(ax, rows, y, key, colors, style="-o"):
    """One line per ``rows[key]``, ``y`` against V, unlabelled (the legend is built apart).
    A point timed while other processes used the CPUs is drawn hollow; returns whether any was."""
    groups = {}
    for r in rows:
        if _num(r, "V") is not None and _num(r, y) is not None:
            groups.setdefault(r.get(key), []).append(r)
    hollow = False
    for name, rs in groups.items():
        rs.sort(key=lambda r: r["V"])
        ax.plot([r["V"] for r in rs], [r[y] for r in rs], style, color=colors[name],
                label="_nolegend_")
        bad = [r for r in rs if _disturbed(r)]
        if bad:
            hollow = True
            ax.plot([r["V"] for r in bad], [r[y] for r in bad], "o", mfc="white",
                    mec=colors[name], ms=9, zorder=3, label="_nolegend_")
    return hollow


def _line_entry(color, style="-o", **kw):
    from matplotlib.lines import Line2D
    marker = style.lstrip("-:.") or None
    ls = style[:len(style) - len(marker)] if marker else style
    return Line2D([], [], color=color, ls=ls or "none", marker=marker, **kw)


def _patch_entry(color, **kw):
    from matplotlib.patches import Patch
    return Patch(facecolor=color, edgecolor=color, **kw)


def _legend(ax, entries, hollow=False, bars=False, where="right", ncol=1):
    """A legend outside the axes (``right`` of them or ``below``) naming only what is drawn;
    ``hollow``/``bars``: add what a hollow point or a white bar means."""
    entries = list(entries)
    if hollow:
        from matplotlib.patches import Patch
        from matplotlib.lines import Line2D
        handle = (Patch(facecolor="white", edgecolor="0.3") if bars else
                  Line2D([], [], ls="none", marker="o", mfc="white", mec="0.3", ms=8))
        entries.append((handle, f"{'white bar' if bars else 'hollow point'}: other processes "
                                f"used > {BUSY} cores while it was timed"))
    if not entries:
        return
    handles, labels = zip(*entries)
    if where == "below":
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  fontsize=8, frameon=False, ncol=ncol)
    else:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
                  frameon=False, borderaxespad=0)


def _bars(ax, xs, heights, rows, color, width, horizontal=False, unit=""):
    """Bars from 0, each labelled with its value; a bar timed while other processes were busy
    is white with a coloured edge. Returns whether any was."""
    faces = ["white" if _disturbed(r) else color for r in rows]
    draw = ax.barh if horizontal else ax.bar
    bars = draw(xs, heights, width, color=faces, edgecolor=color)
    ax.bar_label(bars, [_plain(h) + unit for h in heights], fontsize=7, padding=2)
    return any(_disturbed(r) for r in rows)


def _finish(fig, doc, what, caption):
    """Title (what was measured; the machine), layout, and the caption under the axes."""
    import textwrap
    fig.suptitle(f"{what}\n{_machine_short(doc)}", fontsize=10)
    fig.tight_layout()
    if caption:
        # just under everything drawn so far (legends below the axes included)
        bottom = fig.get_tightbbox().y0 / fig.get_figheight()
        width = int(fig.get_figwidth() * 15)      # characters per line at 8 points
        fig.text(0.01, bottom - 0.03,
                 "\n".join(textwrap.fill(p, width) for p in caption.split("\n")),
                 fontsize=8, va="top", ha="left", color="0.15")
    return fig


def plot_scaling(plt, doc):
    rows = [r for r in doc["rows"] if _num(r, "V") and _num(r, "median_ms")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9.5, 4.6))
    names = _names(rows, "impl")
    colors = _palette(names, {"fastsampled": FS_COLOR, "TensorFlow sampled": PEER_COLOR})
    hollow = _lines(ax, rows, "median_ms", "impl", colors)
    _v_axis(ax, [r["V"] for r in rows])
    _value_axis(ax, "y", [r["median_ms"] for r in rows], "one training step, median", "ms")
    _legend(ax, [(_line_entry(colors[n]), n) for n in names], hollow)
    tf = ((doc.get("meta") or {}).get("tensorflow") or {}).get("tensorflow")
    caption = ("Each point is the median time of one training step of the output layer "
               "(forward, loss, gradients and weight update) for a batch of B examples over V "
               "classes. Sampled softmax scores each example's true class and S sampled "
               "classes; full softmax scores all V. A line that stops before the largest V "
               "was not run there (the notes under the table say why)."
               + (f" TensorFlow {tf} ran in its own process." if tf else ""))
    return _finish(fig, doc, "Training step time against the number of classes V "
                   f"({_sizes(doc, 'B', 'D', 'S')}, float32)", caption)


def plot_memory(plt, doc):
    rows = [r for r in doc["rows"] if _num(r, "V")
            and (_num(r, "peak_rss_GB") is not None or _num(r, "anon_GB") is not None)]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9.5, 4.6))
    names = _names(rows, "impl")
    colors = _palette(names, {"fastsampled in RAM": FS_COLOR,
                              "TensorFlow": THIRD_COLOR})
    hollow = _lines(ax, rows, "peak_rss_GB", "impl", colors, "-o")
    hollow |= _lines(ax, rows, "anon_GB", "impl", colors, "--x")
    values = [_num(r, k) for r in rows for k in ("peak_rss_GB", "anon_GB")]
    entries = [(_patch_entry(colors[n]), n) for n in names]
    entries += [(_line_entry("0.2", "-o"), "solid: peak RSS (VmHWM)"),
                (_line_entry("0.2", "--x"), "dashed: largest anonymous RSS")]
    ws = sorted({(r["V"], r["weights_GB"]) for r in doc["rows"]
                 if _num(r, "V") and _num(r, "weights_GB")})
    if ws:
        ax.plot([v for v, _ in ws], [w for _, w in ws], ":", color="0.4", label="_nolegend_")
        values += [w for _, w in ws]
        d = _sizes(doc, "D").replace("D=", "")
        entries.append((_line_entry("0.4", ":"), "dotted: float32 weights + biases"
                        + (f", V x {int(d) + 1} x 4 bytes" if d.isdigit() else "")))
    _v_axis(ax, [r["V"] for r in rows])
    _value_axis(ax, "y", values, "memory of the process", "GB = 10^9 bytes")
    _legend(ax, entries, hollow)
    caption = ("One fresh process per point, taking a few training steps. Solid: the process's "
               "peak resident set (VmHWM: anonymous and file-backed pages, the Python runtime "
               "and libraries included). Dashed: its largest anonymous RSS (heap: weights, "
               "optimizer state, buffers). Dotted: the size of the weights and biases alone.")
    if any("memory-mapped" in str(n) for n in names):
        caption += (" A memory-mapped head keeps its weights in a file: only the pages its "
                    "steps touch count.")
    sizes = ", ".join(x for x in (_sizes(doc, "B", "D", "S"), "float32") if x)
    return _finish(fig, doc, "Memory of one training process against the number of classes V "
                   f"({sizes})", caption)


def plot_head(plt, doc):
    ram = [r for r in doc["rows"] if r.get("case") == "train_step in RAM" and _num(r, "V")]
    if not ram:
        return None
    opt_rows = [r for r in doc["rows"] if _num(r, "median_ms")
                and r.get("case") == "train_step in RAM, 3 optimizers interleaved"]
    vs = sorted({r["V"] for r in ram})
    series = _names(ram, "opt")
    fig, axes = plt.subplots(1, 3 if opt_rows else 2, figsize=(13 if opt_rows else 9.5, 4.4),
                             gridspec_kw={"width_ratios": [1, 1.4, 1][:3 if opt_rows else 2]})
    a, b = axes[0], axes[1]
    hollow = False
    width = 0.8 / len(series)
    colors = _palette(series)
    for j, s in enumerate(series):
        rs = [next((r for r in ram if r["V"] == v and r.get("opt") == s
                    and _num(r, "median_ms")), None) for v in vs]
        got = [(i, r) for i, r in enumerate(rs) if r]
        hollow |= _bars(a, [i + (j - (len(series) - 1) / 2) * width for i, _ in got],
                        [r["median_ms"] for _, r in got], [r for _, r in got], colors[s], width)
    a.set_xticks(range(len(vs)), [f"V = {_v_text(v)}" for v in vs])
    a.set_xlabel("number of classes V (each in its own process)")
    _value_axis(a, "y", [_num(r, "median_ms") for r in ram], "one train_step, median", "ms",
                bars=True)
    a.set_title("train_step time" + (f", optimizer {series[0]}" if len(series) == 1 else ""),
                fontsize=9)
    if len(series) > 1:
        _legend(a, [(_patch_entry(colors[s]), s) for s in series], where="below",
                ncol=len(series))
    mem = [(k, label) for k, label in (("peak_rss_GB", "peak RSS (VmHWM)"),
                                       ("anon_GB", "largest anonymous RSS"))
           if any(_num(r, k) is not None for r in ram)]
    combos = [(s, k, label) for s in series for k, label in mem]
    shades = {k: c for (k, _), c in zip(mem, ("tab:blue", "tab:cyan"))}
    width = 0.8 / max(1, len(combos))
    for j, (s, k, _) in enumerate(combos):
        got = [(i, r) for i, v in enumerate(vs) for r in ram
               if r["V"] == v and r.get("opt") == s and _num(r, k) is not None]
        _bars(b, [i + (j - (len(combos) - 1) / 2) * width for i, _ in got],
              [r[k] for _, r in got], [{} for _ in got],
              shades[k] if len(series) == 1 else colors[s], width)
    b.set_xticks(range(len(vs)), [f"V = {_v_text(v)}" for v in vs])
    b.set_xlabel("number of classes V (each in its own process)")
    _value_axis(b, "y", [_num(r, k) for r in ram for k, _ in mem], "memory of the process",
                "GB = 10^9 bytes", bars=True)
    b.set_title("memory of the training process", fontsize=9)
    if len(series) == 1:
        _legend(b, [(_patch_entry(shades[k]), label) for k, label in mem], where="below",
                ncol=len(mem))
    else:
        _legend(b, [(_patch_entry(colors[s]), f"{s}: {label}") for s, _, label in combos],
                where="below", ncol=2)
    caption = ("Left: median time of one SampledSoftmaxHead.train_step with the weights in RAM "
               "(draw S sampled classes, loss, gradients, optimizer update) at each V, each V "
               "timed in a fresh process. Middle: that process's peak resident set (VmHWM, "
               "file-backed pages included) and its largest anonymous RSS.")
    if opt_rows:
        c = axes[2]
        hollow |= _bars(c, range(len(opt_rows)), [r["median_ms"] for r in opt_rows], opt_rows,
                        FS_COLOR, 0.6)
        c.set_xticks(range(len(opt_rows)), [str(r.get("opt")) for r in opt_rows])
        c.set_xlabel("optimizer")
        _value_axis(c, "y", [r["median_ms"] for r in opt_rows], "one train_step, median",
                    "ms", bars=True)
        ov = _v_text(opt_rows[0]["V"])
        c.set_title(f"optimizers at V = {ov}, interleaved", fontsize=9)
        caption += (f" Right: the optimizers timed round robin in one process at V = {ov}, "
                    "so their ratios hold while the machine's load drifts.")
    caption += " Bars start at 0 and are labelled with their values."
    if hollow:
        caption += (f" A white bar was timed while other processes used more than {BUSY} "
                    "cores.")
    return _finish(fig, doc, "SampledSoftmaxHead training step and memory, weights in RAM "
                   f"({_sizes(doc, 'B', 'D', 'S')}, float32)", caption)


def plot_samplers(plt, doc):
    rows = doc["rows"]
    build = [r for r in rows if r.get("case") == "AliasTable build" and _num(r, "value")
             and _num(r, "V")]
    draws = [r for r in rows if r.get("unit") == "M draws/s" and _num(r, "value")]
    if not (build or draws):
        return None
    panels = [p for p, has in (("build", build), ("draws", draws)) if has]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 + 6.5 * (len(panels) - 1) if
                                                          len(panels) > 1 else 6.5, 4.6),
                             gridspec_kw={"width_ratios": [1, 1.5][:len(panels)]})
    axes = dict(zip(panels, list(axes) if len(panels) > 1 else [axes]))
    captions = []
    hollow = False
    if build:
        a = axes["build"]
        build = sorted(build, key=lambda r: r["V"])
        hollow |= _lines(a, [dict(r, series="build") for r in build], "value", "series",
                         {"build": FS_COLOR})
        for r in build:
            a.annotate(_plain(r["value"]), (r["V"], r["value"]), xytext=(0, 8),
                       textcoords="offset points", ha="center", fontsize=7)
        _v_axis(a, [r["V"] for r in build])
        _value_axis(a, "y", [r["value"] for r in build], "build rate", "million classes/s",
                    room=1.2)
        a.set_title("AliasTable build, Zipf weights", fontsize=9)
        captions.append(f"{'Left: ' if draws else ''}classes per second that fs.AliasTable"
                        "(weights) validates and builds into an alias table, for float32 Zipf "
                        "weights 1/(i+1), median call.")
    if draws:
        b = axes["draws"]
        tf = [r["case"].startswith("TF") for r in draws]
        names = [r["case"].replace(" (+expected counts)", " + expected counts") for r in draws]
        for y, (r, is_tf) in enumerate(zip(draws, tf)):
            color = PEER_COLOR if is_tf else FS_COLOR
            b.plot([r["value"]], [y], "o", ms=7, color=color,
                   mfc="white" if _disturbed(r) else color, label="_nolegend_")
            b.annotate(_plain(r["value"]), (r["value"], y), xytext=(7, 0),
                       textcoords="offset points", va="center", fontsize=7)
        hollow |= any(_disturbed(r) for r in draws)
        b.set_yticks(range(len(draws)), names, fontsize=8)
        b.set_ylim(len(draws) - 0.5, -0.5)
        log = _value_axis(b, "x", [r["value"] for r in draws], "draw rate, median call",
                          "million draws/s", room=1.25)
        if log:
            lo, hi = b.get_xlim()
            b.set_xlim(lo, hi * 1.6)            # room for the value labels
        b.grid(True, axis="y", ls=":", alpha=0.4)
        fs_rows = [r for r, t in zip(draws, tf) if not t]
        n, v = (_num(fs_rows[0], "n"), _num(fs_rows[0], "V")) if fs_rows else (None, None)
        b.set_title("draw rate" + (f": {_v_text(n)} draws per call from {_v_text(v)} classes"
                                   if n and v else "") + ", with replacement", fontsize=9)
        entries = []
        if any(tf):
            entries = [(_line_entry(FS_COLOR, "o"), "fastsampled"),
                       (_line_entry(PEER_COLOR, "o"), "TensorFlow, measured in this run")]
        _legend(b, entries, hollow, where="below", ncol=2)
        captions.append(f"{'Right: ' if build else ''}draws per second of one call, median "
                        "call (the samplers with unique=False); '+ expected counts' is the "
                        "sampler's public call, returning the ids and each candidate's expected "
                        "count as TensorFlow does, 'draw only' the ids alone. Each point is "
                        "labelled with its value"
                        + ("; the axis is logarithmic." if log else "."))
        notes = (doc.get("meta") or {}).get("notes") or []
        if not any(tf) and any("--no-tf" in str(x) for x in notes):
            captions.append("TensorFlow was not run here (--no-tf).")
    if hollow and not draws:                  # else the draw panel's legend says it
        _legend(axes["build"], [], hollow, where="below")
    return _finish(fig, doc, "Samplers: alias table build rate and draw rates", " ".join(captions))


def plot_word2vec(plt, doc):
    rows = [r for r in doc["rows"] if r.get("tool") in ("fastsampled", "gensim")
            and _num(r, "effective_kwps")]
    if not rows:
        return None
    archs = [a for a in ("sg", "cbow") if any(r.get("arch") == a for r in rows)]
    archs += sorted({r["arch"] for r in rows} - set(archs))
    tools = [t for t in ("fastsampled", "gensim") if any(r["tool"] == t for r in rows)]
    panels = [("effective_kwps", "training speed", "thousand effective words/s")]
    panels += [(k, title, unit) for k, title, unit in (
        ("analogy", "analogy questions", "fraction answered correctly"),
        ("wordsim353", "WordSim-353 similarity", "Spearman correlation"))
        if any(_num(r, k) is not None for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels) + 0.5, 4.2))
    axes = list(axes) if len(panels) > 1 else [axes]
    colors = {"fastsampled": FS_COLOR, "gensim": PEER_COLOR}
    width = 0.8 / len(tools)
    missing = False
    for ax, (key, title, unit) in zip(axes, panels):
        values = []
        for j, tool in enumerate(tools):
            got = [(i, r) for i, a in enumerate(archs) for r in rows
                   if r["tool"] == tool and r["arch"] == a and _num(r, key) is not None]
            missing |= len(got) < len(archs)
            _bars(ax, [i + (j - (len(tools) - 1) / 2) * width for i, _ in got],
                  [r[key] for _, r in got], [{} for _ in got], colors[tool], width)
            values += [r[key] for _, r in got]
        ax.set_xticks(range(len(archs)), [{"sg": "skip-gram (sg)", "cbow": "CBOW (cbow)"}
                                          .get(a, a) for a in archs])
        if min(values) < 0:
            ax.axhline(0, color="0.3", lw=0.8)
            ax.set_ylim(min(values) * 1.2, max(max(values) * 1.15, 0.1))
            ax.set_ylabel(f"{title} ({unit})")
            ax.grid(True, axis="y", alpha=0.3)
        else:
            _value_axis(ax, "y", values, title, unit, bars=True)
        if key in ("analogy",):
            ax.set_ylim(0, 1.1)
        ax.set_title(title, fontsize=9)
    version = {r["tool"]: r.get("version") for r in rows}
    _legend(axes[-1], [(_patch_entry(colors[t]), t + (f" {version[t]}" if version.get(t) else ""))
                       for t in tools])
    meta = doc.get("meta") or {}
    st = meta.get("settings") or {}
    settings = ", ".join(f"{k} {v}" for k, v in st.items())
    if meta.get("workers"):
        settings += f", {meta['workers']} worker threads"
    quick = [n for n in (meta.get("notes") or []) if str(n).startswith("--quick")]
    lr = {r.get("lr_schedule") for r in rows if r["tool"] == "fastsampled"} - {None}
    lr_text = {"gensim": " (gensim's learning-rate trajectory)",
               "linear": " (its linear default)"}
    caption = ("Training speed: words left after frequent-word subsampling, trained per second "
               "(higher is faster). Analogy: fraction of the analogy questions answered "
               "correctly. WordSim-353: Spearman correlation of the model's similarities with "
               "human ratings. Each tool trains in a fresh process."
               + (f" fastsampled uses lr_schedule='{next(iter(lr))}'"
                  f"{lr_text.get(next(iter(lr)), '')}." if len(lr) == 1 else "")
               + (" The fastsampled-defaults rows (its default learning rate) are in the "
                  "table." if any(r.get("tool") == "fastsampled-defaults"
                                  for r in doc["rows"]) else "")
               + (" A missing bar was not measured." if missing else "")
               + ("\nSettings: " + settings + "." if settings else "")
               + (" Corpus: " + "; ".join(quick)[len("--quick: "):] + "." if quick else ""))
    return _finish(fig, doc, "word2vec training, fastsampled and gensim on the same corpus "
                   "with the same settings", caption)


def plot_losses(plt, doc):
    rows = [r for r in doc["rows"] if "STEP" in str(r.get("case")) and _num(r, "median_ms")
            and "UNDER LOAD" not in r["case"] and "no load" not in r["case"]]
    if not rows:
        return None
    common = {}
    for k in ("B", "S", "V", "dtype"):
        vals = [r.get(k) for r in rows if r.get(k) is not None]
        if vals:
            common[k] = max(set(vals), key=vals.count)

    def label(r):
        odd = [f"{k}={_v_text(r[k]) if k == 'V' else r[k]}" for k in ("B", "S")
               if k in common and r.get(k) is not None and r.get(k) != common[k]]
        return r["case"] + (f" ({', '.join(odd)})" if odd else "")

    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.6))
    hollow = _bars(ax, range(len(rows)), [r["median_ms"] for r in rows], rows, FS_COLOR, 0.7,
                   horizontal=True)
    ax.set_yticks(range(len(rows)), [label(r) for r in rows], fontsize=7)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    _value_axis(ax, "x", [r["median_ms"] for r in rows], "one step, median", "ms", bars=True)
    _legend(ax, [], hollow, bars=True, where="below")
    usual = ", ".join(f"{k}={_v_text(v) if k == 'V' else v}" for k, v in common.items())
    caption = ("Each bar is the median time of one call, labelled with its value. STEP = "
               "candidate sampling + loss + all gradients; 'pre-drawn cands' rows take "
               "candidates drawn beforehand. "
               + (f"{usual} unless the label says otherwise. " if usual else "")
               + "The rows timed under an added load are in the table.")
    return _finish(fig, doc, "Sampled loss steps, fastsampled", caption)


def plot_torch(plt, doc):
    rows = [r for r in doc["rows"] if isinstance(r.get("case"), str) and _num(r, "median_ms")]
    scan = [r for r in rows if r["case"].endswith("training step") and _num(r, "V")]
    parts = [r for r in rows if not any(r is s for s in scan)]
    if not scan or len({r["V"] for r in scan}) < 2:
        return plot_generic(plt, doc)
    threads = _names(doc["rows"], "threads")
    several = len([t for t in threads if t is not None]) > 1

    def impl_color(case):
        case = case.lower()
        return (BODY_COLOR if case.startswith("body") else THIRD_COLOR if "full softmax" in case
                else PEER_COLOR if "torch" in case else FS_COLOR)

    fig, axes = plt.subplots(1, 2 if parts else 1, figsize=(13 if parts else 7, 5.2),
                             gridspec_kw={"width_ratios": [1, 1.35][:2 if parts else 1]})
    a = axes[0] if parts else axes
    key = "series"
    scan = [dict(r, series=r["case"] + (f" (threads: {r.get('threads')})" if several else ""))
            for r in scan]
    names = _names(scan, key)
    colors = {n: impl_color(n) for n in names}
    if len(set(colors.values())) < len(names):
        colors = _palette(names)
    hollow = _lines(a, scan, "median_ms", key, colors)
    _v_axis(a, [r["V"] for r in scan])
    _value_axis(a, "y", [r["median_ms"] for r in scan], "one training step, median", "ms")
    a.set_title("training step against V, each timed on its own", fontsize=9)
    _legend(a, [(_line_entry(colors[n]), n) for n in names], hollow, where="below")
    caption = ("Left: median time of one training step of a small PyTorch model (a body, then "
               "an output layer over V classes, then the updates) with fastsampled's head, "
               "torch's sampled softmax, or a full softmax over all V classes, each timed on "
               "its own at each V; a missing point was not run (see the notes).")
    if parts:
        b = axes[1]
        groups = {}
        for r in parts:
            g = (r.get("opt"), r.get("threads") if several else None,
                 r.get("V") if len({p.get("V") for p in parts}) > 1 else None)
            groups.setdefault(g, []).append(r)
        ys, labels, heads, y = [], [], [], 0
        order = []
        for (opt, thr, v), rs in groups.items():
            head = f"output layer updated with {opt if opt else '-'}"
            head = {"adam": "output layer updated with Adam",
                    "sgd": "output layer updated with SGD"}.get(opt, head)
            head += (f", threads: {thr}" if thr else "") + (f", V = {_v_text(v)}" if v else "")
            ys.append(y)
            labels.append(head)
            heads.append(True)
            y += 1
            for r in rs:
                ys.append(y)
                labels.append(r["case"])
                heads.append(False)
                order.append((y, r))
                y += 1
            y += 0.5
        hollow2 = False
        for color in dict.fromkeys(impl_color(r["case"]) for _, r in order):
            got = [(yy, r) for yy, r in order if impl_color(r["case"]) == color]
            hollow2 |= _bars(b, [yy for yy, _ in got], [r["median_ms"] for _, r in got],
                             [r for _, r in got], color, 0.7, horizontal=True, unit=" ms")
        b.set_yticks(ys, labels, fontsize=8)
        for tick, is_head in zip(b.get_yticklabels(), heads):
            if is_head:
                tick.set_fontweight("bold")
        b.set_ylim(y - 0.5, -0.7)
        b.tick_params(axis="y", length=0)
        _value_axis(b, "x", [r["median_ms"] for r in parts], "median time per call", "ms",
                    room=1.2, bars=True)
        pv = {r.get("V") for r in parts}
        b.set_title("parts of a training step, timed interleaved in one process"
                    + (f", V = {_v_text(pv.pop())}" if len(pv) == 1 else ""), fontsize=9)
        drawn = list(dict.fromkeys(impl_color(r["case"]) for r in parts))
        names_of = {FS_COLOR: "fastsampled", PEER_COLOR: "torch sampled softmax",
                    BODY_COLOR: "body alone (no output layer)", THIRD_COLOR: "full softmax"}
        _legend(b, [(_patch_entry(c), names_of[c]) for c in drawn], hollow2, bars=True,
                where="below", ncol=3)
        caption += (" Right: the body alone, both training steps, both output layers alone "
                    "(forward, backward, update) and fastsampled's head.train_step on numpy "
                    "arrays, timed round robin in one process so that their ratios (in the "
                    "table) hold while the machine's load drifts; the left panel times each "
                    "training step alone, so the two panels' figures differ. Bars start at 0 "
                    "and are labelled with their values.")
    torch_v = ((doc.get("meta") or {}).get("torch") or {}).get("torch")
    return _finish(fig, doc, "PyTorch training step with a sampled output layer"
                   f" ({_sizes(doc, 'B', 'D', 'S')}, float32"
                   + (f", torch {torch_v}" if torch_v else "") + ")", caption)


def plot_generic(plt, doc):
    rows = doc["rows"]
    key = next((k for k in ("impl", "case", "tool", "name") if any(k in r for r in rows)), None)
    if key is None or len({r.get("V") for r in rows if _num(r, "V")}) < 2:
        return None
    rows = [r for r in rows if _num(r, "V") and _num(r, "median_ms")]
    if not rows:
        return None
    names = _names(rows, key)
    if all(sum(r.get(key) == n for r in rows) < 2 for n in names):
        # no line to draw: one bar per row, as a table would list them
        fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.6))
        hollow = _bars(ax, range(len(rows)), [r["median_ms"] for r in rows], rows, FS_COLOR,
                       0.7, horizontal=True)
        ax.set_yticks(range(len(rows)), [f"{r.get(key)} (V = {_v_text(r['V'])})" for r in rows],
                      fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        _value_axis(ax, "x", [r["median_ms"] for r in rows], "median time per call", "ms",
                    bars=True)
        _legend(ax, [], hollow, bars=True, where="below")
        return _finish(fig, doc, f"{doc['benchmark']}: median time per call",
                       "Each bar is a row's median time, labelled with its value.")
    fig, ax = plt.subplots(figsize=(9.5, 4.6))
    colors = _palette(names, {"fastsampled": FS_COLOR})
    hollow = _lines(ax, rows, "median_ms", key, colors)
    _v_axis(ax, [r["V"] for r in rows])
    _value_axis(ax, "y", [r["median_ms"] for r in rows], "median time per call", "ms")
    _legend(ax, [(_line_entry(colors[n]), str(n)) for n in names], hollow)
    return _finish(fig, doc, f"{doc['benchmark']}: median time against the number of classes V",
                   f"Each point is a row's median time; one line per {key}.")


PLOTS = {"scaling": plot_scaling, "memory": plot_memory, "head": plot_head,
         "samplers": plot_samplers, "word2vec": plot_word2vec, "losses": plot_losses,
         "torch": plot_torch}


def _suite_lines(folder):
    """What ``fastsampled bench`` recorded in ``suite.json``: the command, times, skips."""
    try:
        with open(os.path.join(folder, "suite.json")) as f:
            run = json.load(f)
    except (OSError, ValueError):
        return []
    lines = [f"Run by `fastsampled bench` ({run.get('mode')}): all scripts together took "
             f"{run.get('wall_s')} s (expected ~{run.get('expected_s')} s on a quiet machine); "
             "per script: " + ", ".join(f"{s['script']} {s['wall_s']} s"
                                        + ("" if s["returncode"] == 0
                                           else f" (FAILED, exit {s['returncode']})")
                                        for s in run.get("steps", [])) + "."]
    lines += [f"Skipped: {s['suite']}: {s['note']}." for s in run.get("skipped", [])]
    return lines + [""]


def _pyplot(show):
    try:
        import matplotlib
        if not show:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        return None


def write_report(folder, show=False, out=None, keep_plots=False):
    """Write ``<name>.md``, ``<name>.png`` and ``README.md`` for the results in ``folder``.

    Parameters
    ----------
    folder : str
        Folder of result JSON files; the report is written beside them.
    show : bool
        Also open the plots in a window (needs a matplotlib backend with a screen).
    out : file, optional
        Where progress lines go (default: standard output).
    keep_plots : bool
        Draw no plots; link the ``<name>.png`` already in ``folder`` (the figures they show
        must not have changed).

    Returns
    -------
    dict
        ``markdown`` (paths written), ``plots`` (PNG paths written) and ``notes`` (e.g. why
        there are no plots).
    """
    out = sys.stdout if out is None else out
    docs = load_results(folder)
    res = {"markdown": [], "plots": [], "notes": []}
    if not docs:
        res["notes"].append(f"no result files (*.json with rows) in {folder}")
        return res
    plt = None if keep_plots else _pyplot(show)
    if plt is None and not keep_plots:
        res["notes"].append("matplotlib is not installed: tables and JSON only, no plots "
                            "(pip install matplotlib, or the 'bench' extra)")
    index = ["# fastsampled benchmark results", ""]
    machines = {machine_line(d.get("machine") or {}) for d in docs}
    index += ["Machine: " + "; ".join(sorted(machines)), ""]
    index += ["Regenerate this page with `python bench/report.py " + folder + "`; "
              "`others_cpu` is the number of cores other processes used while a row was timed "
              f"(above {BUSY} a timing does not measure the library alone: such rows say "
              "`disturbed: yes` where the table has that column, and such points are drawn "
              "hollow).", ""]
    index += _suite_lines(folder)
    for doc in docs:
        name = doc["benchmark"]
        png = None
        if plt is not None:
            try:
                fig = PLOTS.get(name, plot_generic)(plt, doc)
            except Exception as e:       # one odd result file must not stop the report
                res["notes"].append(f"{name}: no plot ({type(e).__name__}: {e})")
                fig = None
            if fig is not None:
                png = f"{name}.png"
                fig.savefig(os.path.join(folder, png), dpi=110, bbox_inches="tight")
                if not show:
                    plt.close(fig)
                res["plots"].append(os.path.join(folder, png))
        if keep_plots and os.path.exists(os.path.join(folder, f"{name}.png")):
            png = f"{name}.png"
        page = suite_markdown(doc, png)
        path = os.path.join(folder, f"{name}.md")
        with open(path, "w") as f:
            f.write(page)
        res["markdown"].append(path)
        index.append(page)
    for note in res["notes"]:
        index.insert(2, f"> {note}\n")
    path = os.path.join(folder, "README.md")
    with open(path, "w") as f:
        f.write("\n".join(index))
    res["markdown"].append(path)
    for n in res["notes"]:
        print(f"note: {n}", file=out)
    print(f"report: {path} ({len(res['plots'])} plots"
          + (", the PNG files already there linked" if keep_plots else "") + ")", file=out)
    if show and plt is not None and res["plots"]:
        import matplotlib
        if matplotlib.get_backend().lower() in ("agg", "pdf", "svg", "ps", "cairo", "template"):
            print(f"note: no screen to show the plots on (matplotlib backend "
                  f"{matplotlib.get_backend()}); open the PNG files in {folder}", file=out)
        else:
            plt.show()
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="folder of benchmark result JSON files")
    p.add_argument("--show", action="store_true", help="also open the plots in a window")
    p.add_argument("--keep-plots", action="store_true",
                   help="draw no plots; link the PNG files already in the folder (after a "
                        "change to the pages' text only)")
    args = p.parse_args(argv)
    if not os.path.isdir(args.folder):
        p.error(f"{args.folder}: no such folder")
    if args.show and args.keep_plots:
        p.error("--show draws the plots; --keep-plots draws none")
    res = write_report(args.folder, args.show, keep_plots=args.keep_plots)
    return 0 if res["markdown"] else 1


if __name__ == "__main__":
    sys.exit(main())

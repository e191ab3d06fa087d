"""Tables and plots of a folder of benchmark results (the JSON files the bench scripts write).

    python bench/report.py DIR [--show | --keep-plots]

For every ``DIR/<name>.json`` it writes ``DIR/<name>.md`` (the rows as a markdown table, the
notes and the machine) and, when matplotlib is installed, ``DIR/<name>.png``; then
``DIR/README.md``, one page with every plot and table and the machine they were measured on.
Without matplotlib the tables are still written and a note says why there are no plots.
``--show`` also opens the plots in a window (when matplotlib has a screen to draw on).
``--keep-plots`` draws nothing and links the ``<name>.png`` files already in ``DIR``: for
rewriting the pages after a change to their text, when the plotted figures did not change.

Known results get their own figure: ``scaling`` (step time against the number of classes,
log-log), ``samplers`` (alias build rate against V, draw rates), ``head`` (train step and
memory against V), ``word2vec`` (words/s and quality, fastsampled beside gensim), ``memory``
(peak and anonymous RSS against V), ``losses`` (the step variants). Any other result file
whose rows have ``V`` and ``median_ms`` (e.g. ``torch.json``) is plotted as step time against
V, one line per ``impl``/``case``.
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
    "word2vec": ["tool", "arch", "version", "effective_kwps", "raw_kwps", "train_s",
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

def _num(r, key):
    v = r.get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None


def _disturbed(r):
    return (_num(r, "others_cpu") or 0.0) > BUSY


def _series_plot(ax, rows, y, series_key, label_suffix="", style="-o"):
    groups = {}
    for r in rows:
        if _num(r, "V") is not None and _num(r, y) is not None:
            groups.setdefault(r.get(series_key), []).append(r)
    for name, rs in groups.items():
        rs.sort(key=lambda r: r["V"])
        line, = ax.plot([r["V"] for r in rs], [r[y] for r in rs], style,
                        label=f"{name}{label_suffix}")
        bad = [r for r in rs if _disturbed(r)]
        if bad:   # hollow markers: other processes used the CPUs while this was timed
            label = "hollow: timed while other processes were busy"
            seen = label in ax.get_legend_handles_labels()[1]
            ax.plot([r["V"] for r in bad], [r[y] for r in bad], "o", mfc="white",
                    mec=line.get_color(), ms=9, label=None if seen else label)
    return groups


def _loglog(ax, xlabel, ylabel):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def plot_scaling(plt, doc):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _series_plot(ax, doc["rows"], "median_ms", "impl")
    _loglog(ax, "number of classes V", "one train step (ms)")
    ax.set_title("Train step, B=1024 D=128 S=64 float32 (median)", fontsize=10)
    return fig


def plot_memory(plt, doc):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _series_plot(ax, doc["rows"], "peak_rss_GB", "impl", " (peak RSS)")
    ax.set_prop_cycle(None)
    _series_plot(ax, doc["rows"], "anon_GB", "impl", " (anonymous)", style="--x")
    ws = sorted({(r["V"], r["weights_GB"]) for r in doc["rows"] if _num(r, "weights_GB")})
    if ws:
        ax.plot([v for v, _ in ws], [w for _, w in ws], ":", color="gray",
                label="weights + biases (V x 129 x 4 B)")
    _loglog(ax, "number of classes V", "GB (1e9 bytes)")
    ax.set_title("Memory of a training process (one process per point)", fontsize=10)
    return fig


def plot_head(plt, doc):
    ram = [dict(r, series=r.get("opt") or "sgd") for r in doc["rows"]
           if r.get("case") == "train_step in RAM"]
    if not ram:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    _series_plot(a, ram, "median_ms", "series", " train_step")
    _loglog(a, "number of classes V", "ms per train_step (median)")
    _series_plot(b, ram, "peak_rss_GB", "series", " peak RSS")
    b.set_prop_cycle(None)
    _series_plot(b, ram, "anon_GB", "series", " anonymous RSS", style="--x")
    _loglog(b, "number of classes V", "GB")
    fig.suptitle("SampledSoftmaxHead, weights in RAM, B=1024 D=128 S=64", fontsize=10)
    return fig


def plot_samplers(plt, doc):
    rows = doc["rows"]
    build = [dict(r, series="AliasTable build") for r in rows
             if r.get("case") == "AliasTable build" and _num(r, "value")]
    draws = [r for r in rows if r.get("unit") == "M draws/s" and _num(r, "value")]
    if not (build or draws):
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
    if build:
        _series_plot(a, build, "value", "series")
        a.set_xscale("log")
        a.set_xlabel("number of classes V")
        a.set_ylabel("M classes/s")
        a.set_ylim(bottom=0)
        a.grid(True, alpha=0.3)
        a.set_title("alias table build rate (Zipf weights)", fontsize=10)
    if draws:
        names = [r["case"].replace(" (+expected counts)", " +counts") for r in draws]
        colors = ["tab:orange" if r["case"].startswith("TF") else "tab:blue" for r in draws]
        b.barh(range(len(draws)), [r["value"] for r in draws], color=colors)
        b.set_yticks(range(len(draws)), names, fontsize=7)
        b.invert_yaxis()
        b.set_xscale("log")
        b.set_xlabel("M draws/s, log scale (10^7 classes; orange: TensorFlow)")
        b.grid(True, axis="x", alpha=0.3)
        b.set_title("draw rates, unique=False", fontsize=10)
    fig.tight_layout()
    return fig


def plot_word2vec(plt, doc):
    rows = [r for r in doc["rows"] if r.get("tool") in ("fastsampled", "gensim")
            and _num(r, "effective_kwps")]
    if not rows:
        return None
    archs = sorted({r["arch"] for r in rows}, key=["sg", "cbow"].index)
    tools = [t for t in ("fastsampled", "gensim") if any(r["tool"] == t for r in rows)]
    panels = [("effective_kwps", "k effective words/s")]
    panels += [(k, k) for k in ("analogy", "wordsim353") if any(_num(r, k) is not None
                                                               for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8))
    axes = list(axes) if len(panels) > 1 else [axes]
    width = 0.8 / len(tools)
    for ax, (key, label) in zip(axes, panels):
        for j, tool in enumerate(tools):
            vals = [next((_num(r, key) for r in rows if r["tool"] == tool and r["arch"] == a),
                         None) or 0.0 for a in archs]
            ax.bar([i + j * width for i in range(len(archs))], vals, width, label=tool)
        ax.set_xticks([i + width * (len(tools) - 1) / 2 for i in range(len(archs))], archs)
        ax.set_title(label, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("word2vec, same corpus and settings", fontsize=10)
    fig.tight_layout()
    return fig


def plot_losses(plt, doc):
    rows = [r for r in doc["rows"] if "STEP" in str(r.get("case")) and _num(r, "median_ms")
            and "UNDER LOAD" not in r["case"] and "no load" not in r["case"]]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    ax.barh(range(len(rows)), [r["median_ms"] for r in rows],
            color=["lightgray" if _disturbed(r) else "tab:blue" for r in rows])
    ax.set_yticks(range(len(rows)), [r["case"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("median ms per step (gray: other processes busy while timed)")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_generic(plt, doc):
    rows = doc["rows"]
    key = next((k for k in ("impl", "case", "tool", "name") if any(k in r for r in rows)), None)
    if key is None or len({r.get("V") for r in rows if _num(r, "V")}) < 2:
        return None
    if not any(_num(r, "median_ms") for r in rows):
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _series_plot(ax, rows, "median_ms", key)
    _loglog(ax, "number of classes V", "median ms")
    ax.set_title(doc["benchmark"], fontsize=10)
    return fig


PLOTS = {"scaling": plot_scaling, "memory": plot_memory, "head": plot_head,
         "samplers": plot_samplers, "word2vec": plot_word2vec, "losses": plot_losses}


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

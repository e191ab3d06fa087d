"""What ``fastsampled info`` reports: versions, threads, BLAS, CPU and the optional peers.

Everything here is read without importing the heavy optional peers (TensorFlow, PyTorch):
their versions come from the installed distributions' metadata.
"""
import importlib.metadata
import importlib.util
import os
import platform
import sys

from . import __version__
from .alias import AliasTable

# CPU flags worth knowing for this library's kernels (LLVM vectorises for the widest available)
SIMD_PREFIXES = ("sse4", "avx", "fma", "amx", "f16c", "bmi", "vnni")
CORE = ("numpy", "scipy", "numba", "llvmlite", "threadpoolctl")
# import name -> distributions that may provide it
PEERS = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tf-nightly"),
         "torch": ("torch",), "gensim": ("gensim",), "matplotlib": ("matplotlib",),
         "tqdm": ("tqdm",)}


def cpuinfo():
    """The fields of the first processor in ``/proc/cpuinfo``.

    Shared by :func:`collect` and the machine description of the benchmarks in ``bench/``.

    Returns
    -------
    dict of str to str
        ``{field: value}`` (``"model name"``, ``"flags"``, ``"cpu family"``, ...); empty
        where ``/proc/cpuinfo`` cannot be read (not Linux).
    """
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                k, _, v = line.partition(":")
                fields[k.strip()] = v.strip()
    except OSError:
        pass
    return fields


def _meminfo_gib(key):
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _dist_version(names):
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _threading_layer():
    """Numba's threading layer; it is chosen on the first parallel kernel, so run a tiny one
    (a cached fastsampled kernel: an alias table build and draw)."""
    import numba
    import numpy as np
    try:
        return numba.threading_layer()
    except ValueError:
        pass
    try:
        AliasTable(np.ones(64, np.float32)).sample(64, seed=0)
        return numba.threading_layer()
    except Exception as e:  # report, never fail: info must work on a broken install too
        return f"unknown ({type(e).__name__}: {e})"


def _blas_pools():
    try:
        import numpy  # noqa: F401  (load numpy's BLAS)
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba's np.dot calls)
        except ImportError:
            pass
        import threadpoolctl
        return [{k: lib.get(k) for k in ("internal_api", "version", "num_threads",
                                         "threading_layer", "architecture", "filepath")}
                for lib in threadpoolctl.threadpool_info()]
    except Exception as e:
        return f"unavailable ({type(e).__name__}: {e})"


def collect():
    """Describe this installation and machine as a JSON-serialisable dict.

    Returns
    -------
    dict
        ``versions`` (fastsampled, python and the core dependencies), ``numba`` (threads,
        configured threads, threading layer, the CPU name LLVM compiles for), ``blas`` (every
        BLAS/OpenMP pool threadpoolctl sees), ``cpu`` (model, family/model/stepping, logical
        and usable cores, SIMD flags), ``memory`` (total and available GiB), ``peers``
        (optional packages: version or None), ``env`` (``NUMBA_*``, ``OMP_*``, ``OPENBLAS_*``,
        ``MKL_*`` variables) and ``platform``.
    """
    versions = {"fastsampled": __version__, "python": sys.version.split()[0]}
    for name in CORE:
        versions[name] = _dist_version((name,))
    info = {"versions": versions,
            "fastsampled_path": os.path.dirname(os.path.abspath(__file__)),
            "platform": platform.platform()}
    try:
        import numba
        import llvmlite.binding as llvm
        info["numba"] = {"num_threads": numba.get_num_threads(),
                         "config_num_threads": numba.config.NUMBA_NUM_THREADS,
                         "threading_layer_requested": numba.config.THREADING_LAYER,
                         "threading_layer": _threading_layer(),
                         "llvm_host_cpu": llvm.get_host_cpu_name(),
                         "cache_dir": numba.config.CACHE_DIR or "(beside the sources, __pycache__)"}
    except Exception as e:
        info["numba"] = f"unavailable ({type(e).__name__}: {e})"
    info["blas"] = _blas_pools()
    cpu = cpuinfo()
    flags = cpu.get("flags", "").split()
    info["cpu"] = {
        "model": cpu.get("model name") or platform.processor() or platform.machine(),
        "family_model_stepping": (f"{cpu['cpu family']}/{cpu.get('model')}/{cpu.get('stepping')}"
                                  if "cpu family" in cpu else None),
        "logical_cores": os.cpu_count(),
        "usable_cores": (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                         else os.cpu_count()),
        "simd": sorted(f for f in flags if f.startswith(SIMD_PREFIXES)),
    }
    info["memory"] = {"total_gib": _meminfo_gib("MemTotal"),
                      "available_gib": _meminfo_gib("MemAvailable")}
    info["peers"] = {name: (_dist_version(dists) if importlib.util.find_spec(name) else None)
                     for name, dists in PEERS.items()}
    info["env"] = {k: os.environ[k] for k in sorted(os.environ)
                   if k.startswith(("NUMBA_", "OMP_", "OPENBLAS_", "MKL_"))}
    return info


def format_info(info):
    """The lines ``fastsampled info`` prints for a :func:`collect` dict.

    Parameters
    ----------
    info : dict
        As returned by :func:`collect`.

    Returns
    -------
    str
        One ``name : value`` line per fact, BLAS pools and peers one per line.
    """
    v = info["versions"]
    lines = [f"fastsampled : {v['fastsampled']} ({info['fastsampled_path']})",
             f"python      : {v['python']} on {info['platform']}",
             "core        : " + ", ".join(f"{k} {v[k] or 'missing'}" for k in CORE)]
    nb = info["numba"]
    if isinstance(nb, dict):
        lines.append(f"numba       : {nb['num_threads']} threads (NUMBA_NUM_THREADS "
                     f"{nb['config_num_threads']}), threading layer {nb['threading_layer']} "
                     f"(requested: {nb['threading_layer_requested']}), compiles for "
                     f"{nb['llvm_host_cpu']}, cache {nb['cache_dir']}")
    else:
        lines.append(f"numba       : {nb}")
    if isinstance(info["blas"], list):
        if not info["blas"]:
            lines.append("blas/openmp : none loaded")
        for b in info["blas"]:
            parts = [f"{b['internal_api']} {b['version'] or ''}".strip(),
                     f"{b['num_threads']} threads"]
            if b.get("threading_layer"):
                parts.append(f"{b['threading_layer']} threading")
            if b.get("architecture"):
                parts.append(f"{b['architecture']} kernels")
            lines.append(f"blas/openmp : {', '.join(parts)} "
                         f"({os.path.basename(str(b['filepath']))})")
    else:
        lines.append(f"blas/openmp : {info['blas']}")
    c, m = info["cpu"], info["memory"]
    lines += [f"cpu         : {c['model']} (family/model/stepping {c['family_model_stepping']}), "
              f"{c['usable_cores']} of {c['logical_cores']} cores usable",
              f"simd        : {' '.join(c['simd']) or 'unknown'}",
              f"memory      : {m['total_gib']} GiB total, {m['available_gib']} GiB available",
              "peers       : " + ", ".join(f"{k} {ver or 'not installed'}"
                                           for k, ver in info["peers"].items()),
              f"environment : {info['env'] or 'no NUMBA_/OMP_/OPENBLAS_/MKL_ variables set'}"]
    return "\n".join(lines)

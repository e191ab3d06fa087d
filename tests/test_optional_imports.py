"""Optional frameworks stay optional: ``import fastsampled`` never imports torch, JAX or Ray, and
``import fastsampled.torch`` without torch says which extra to install."""
import subprocess
import sys


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_import_fastsampled_does_not_import_torch_jax_or_ray():
    r = _run("import sys, fastsampled; print(sorted(m for m in ('torch', 'jax', 'ray') "
             "if m in sys.modules))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_torch_adapter_without_torch_names_the_extra():
    # sys.modules[name] = None makes `import name` raise ImportError, as if not installed
    r = _run("import sys; sys.modules['torch'] = None\n"
             "try:\n    import fastsampled.torch\n"
             "except ImportError as e:\n    print(e)\n")
    assert r.returncode == 0, r.stderr
    assert "fastsampled[torch]" in r.stdout and "torch==2.13.0" in r.stdout

"""Optional frameworks stay optional: ``import fastsampled`` never imports torch, JAX, Ray,
TensorFlow or Keras, and an adapter imported without its framework says which extra to
install."""
import subprocess
import sys


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_import_fastsampled_does_not_import_torch_jax_ray_or_tensorflow():
    r = _run("import sys, fastsampled; print(sorted(m for m in ('torch', 'jax', 'ray', "
             "'tensorflow', 'keras') if m in sys.modules))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_torch_adapter_without_torch_names_the_extra():
    # sys.modules[name] = None makes `import name` raise ImportError, as if not installed
    r = _run("import sys; sys.modules['torch'] = None\n"
             "try:\n    import fastsampled.torch\n"
             "except ImportError as e:\n    print(e)\n")
    assert r.returncode == 0, r.stderr
    assert "fastsampled[torch]" in r.stdout and "torch==2.13.0" in r.stdout


def test_tensorflow_adapters_without_tensorflow_name_the_extra():
    for module in ("fastsampled.tf", "fastsampled.keras"):
        r = _run("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
                 f"try:\n    import {module}\n"
                 "except ImportError as e:\n    print(e)\n")
        assert r.returncode == 0, r.stderr
        assert "fastsampled[tensorflow]" in r.stdout, (module, r.stdout)

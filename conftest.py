"""Repository-level pytest configuration: optional adapters are collected only when their
framework is installed (their doctests import it)."""
import importlib.util

collect_ignore = []
if importlib.util.find_spec("torch") is None:
    collect_ignore.append("fastsampled/torch.py")
if importlib.util.find_spec("ray") is None:
    collect_ignore += ["fastsampled/ray.py", "fastsampled/_raytrain.py"]
if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("keras") is None:
    collect_ignore += ["fastsampled/tf.py", "fastsampled/keras.py"]

"""Sphinx configuration: the guides in docs/*.md (MyST) and an API reference rendered from
the numpydoc docstrings. Built in CI with warnings as errors:

    python -m sphinx -W --keep-going -b html docs build/docs
"""
import importlib.util
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import fastsampled  # noqa: E402

project = "fastsampled"
release = version = fastsampled.__version__
extensions = ["myst_parser", "sphinx.ext.autodoc", "numpydoc"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_fence_as_directive = []
numpydoc_show_class_members = False
numpydoc_validation_checks = {"GL08"}   # every documented object has a docstring
# the API page documents fastsampled.ray where Ray (an optional extra) is not installed
autodoc_mock_imports = [] if importlib.util.find_spec("ray") else ["ray"]
# and fastsampled.tf / fastsampled.keras where TensorFlow and Keras are not
autodoc_mock_imports += [m for m in ("tensorflow", "keras") if not importlib.util.find_spec(m)]
html_theme = "alabaster"

"""Sphinx configuration of the pdmer documentation.

The build is offline: no intersphinx inventories are fetched, and the gallery
runs on the synthetic data set with tiny models, one torch thread.
"""

import __future__
import os
import re
import sys
from importlib.metadata import version as _version

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

# The gallery runs in this process. Small models gain nothing from more
# threads, and a busy machine makes extra threads 10-40x slower (see the
# performance guide).
import torch  # noqa: E402

torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")

project = "pdmer"
author = "pdmer developers"
copyright = "pdmer developers; Apache-2.0"
release = _version("pdmer")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_click",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
# A module's public names are its __all__ (re-exports included).
autosummary_ignore_module_all = False


def _documented_modules():
    """The modules listed in api.rst, in order."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "api.rst")) as handle:
        names = [line.strip() for line in handle]
    return [n for n in names if n == "pdmer" or n.startswith(("pdmer.", "pdmer_datasets"))]


def _toplevel_aliases():
    """'module.name' of every class or function that pdmer re-exports at the top level.

    Those are documented once, as ``pdmer.<name>``; the modules they come
    from link there instead of documenting them a second time. (Constants
    stay with the module that defines and documents them, pdmer.labels.)
    """
    import importlib

    import pdmer

    aliases = set()
    for module_name in _documented_modules():
        if module_name == "pdmer":
            continue
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if (callable(obj) and name in pdmer.__all__
                    and getattr(pdmer, name, None) is obj):
                aliases.add(f"{module_name}.{name}")
    return sorted(aliases)


def _public_names():
    """Per documented module: its public names that are not modules, and the
    top-level constants documented in another module (name -> 'module.name')."""
    import importlib
    import inspect

    names, elsewhere = {}, {}
    for module_name in _documented_modules():
        module = importlib.import_module(module_name)
        if hasattr(module, "__all__"):
            candidates = module.__all__
        else:  # a module of constants (pdmer.labels): what it defines itself
            candidates = [n for n, obj in vars(module).items()
                          if not isinstance(obj, __future__._Feature)
                          and (not callable(obj) or obj.__module__ == module_name)]
        names[module_name] = [n for n in candidates if not n.startswith("_")
                              and not inspect.ismodule(getattr(module, n))]
    import pdmer

    for name in names["pdmer"]:
        obj = getattr(pdmer, name)
        if callable(obj):
            continue
        for module_name, public in names.items():
            if module_name != "pdmer" and name in public:
                if getattr(importlib.import_module(module_name), name) is obj:
                    elsewhere[name] = f"{module_name}.{name}"
    return names, elsewhere


_PUBLIC, _ELSEWHERE = _public_names()
autosummary_context = {"pdmer_toplevel": _toplevel_aliases(), "pdmer_public": _PUBLIC,
                       "pdmer_elsewhere": _ELSEWHERE}


def _skip_member(app, what, name, obj, skip, options):
    # Methods inherited from scikit-learn, torch or mirdata (get_params,
    # set_output, the generated set_*_request, ...) belong to their docs.
    module = getattr(obj, "__module__", None) or ""
    if what == "class" and (module.split(".")[0] in ("sklearn", "torch", "mirdata")
                            or (name.startswith("set_") and name.endswith("_request"))):
        return True
    return None


_SHAPE_STAR = re.compile(r"(?<=[(,\s])\*(?=[A-Za-z_])")


def _escape_shape_stars(app, what, name, obj, options, lines):
    # "of shape (batch, *frame_shape)" is Python unpacking, not emphasis.
    for i, line in enumerate(lines):
        if "shape (" in line:
            lines[i] = _SHAPE_STAR.sub(r"\\*", line)


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-docstring", _escape_shape_stars)
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Types in docstrings stay text: cross-linking them needs other projects'
# inventories, which an offline build cannot fetch.
numpydoc_xref_param_type = False

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Only plot_*.py run; reproduce_deam.py is shown, not executed (it needs
    # the DEAM download and a GPU).
    "filename_pattern": r"/plot_",
    "within_subsection_order": "gallery_order.ExampleOrder",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "show_signature": False,
    "min_reported_time": 1,
    "matplotlib_animations": False,
}

templates_path = ["_templates"]
exclude_patterns = ["_build", "_templates", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]

html_theme = "pydata_sphinx_theme"
html_title = f"pdmer {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
# No external fonts, analytics or inventories: the HTML works offline too.
html_static_path = []

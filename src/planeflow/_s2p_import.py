"""Import the parts of suite2p 1.x that a job uses, and not the rest of suite2p.

Why
    ``import suite2p`` runs ``suite2p/__init__.py``, which imports suite2p's whole
    pipeline: every file reader of ``suite2p.io`` (pynwb, h5py, ...), registration
    metrics and z-alignment, matplotlib, cellpose's models and, through
    ``cellpose.transforms``, torchvision (whose ``__init__`` imports ``torch._dynamo``).
    That is 5-13 s and 1.25 GB before a job does any work, and Python runs a package's
    ``__init__`` before any of its submodules, so ``import suite2p.registration.register``
    alone pays all of it.

How (no suite2p code is copied or changed; everything runs from the installed files)
    *Bare packages* (:data:`BARE_PACKAGES`): :func:`suite2p_module` puts ``suite2p``
    and its subpackages into ``sys.modules`` as module objects made from the package's
    own import spec (``__path__``, ``__spec__``, ``__file__`` as Python's import makes
    them) without running their ``__init__.py``, then imports the one submodule asked
    for, as usual. Names that suite2p's own submodules import from the package
    (``from .. import default_settings``) are taken from the module ``__init__.py``
    takes them from (:data:`PACKAGE_NAMES`). Any other name that ``__init__.py`` binds
    (``suite2p.run_s2p``, ``suite2p.detection.roi_stats``, ``torchvision.ops``,
    ``torchvision.__version__``) runs the real ``__init__.py`` into the same module
    object on first access, so code in the same process that uses ``import suite2p``
    or ``import torchvision`` still gets the whole package.

    *Lazy modules* (:data:`LAZY_MODULES`): made the same way from their spec; their
    file runs the first time a name they define is asked for (not for ``__file__``
    and the like, which ``inspect`` asks of every module in sys.modules).

    What is deferred, and why that is safe with suite2p 1.1.0 and cellpose 4:

    - ``torchvision`` (~1.5 s, ~180 MB): imported only by ``cellpose.transforms``
      (``from torchvision.transforms import functional as F, _functional_tensor as
      F_t``), which ``suite2p.registration.utils`` imports and registration and
      detection import through it. F and F_t serve only cellpose's training
      augmentation (``random_rotate_and_resize``), which no planeflow job calls: those
      two modules are lazy, ``torchvision`` and ``torchvision.transforms`` bare.
    - ``suite2p.detection.anatomical`` (imports ``cellpose.models``): lazy; used only
      with ``detection.algorithm: cellpose`` and by cellpose_import.
    - the ``__init__`` of suite2p, suite2p.io (the file readers), suite2p.registration
      (metrics: scikit-learn; imported by the registration step only when it computes
      them), suite2p.detection, suite2p.extraction, suite2p.classification.
    - ``scipy.signal``'s ``__init__`` (0.7-1 s: it imports every signal submodule, and
      through them scipy.stats, scipy.interpolate and scipy.optimize):
      ``suite2p.registration.register`` takes only ``medfilt`` from it, which comes from
      ``scipy.signal._signaltools``, the module ``__init__`` takes it from (the same
      function object). Registration metrics (``convolve2d``) or any other name run the
      real ``__init__``. Should a scipy release move ``medfilt``, the name is taken from
      the real ``__init__`` instead (slower, never wrong).

Checked against the installed suite2p by ``tests/test_job_imports.py`` (the same
function objects as a full ``import suite2p``; which packages each step's job imports).
Only stdlib here, so every layer of planeflow may use it.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from types import ModuleType

#: packages whose ``__init__.py`` runs only when a name it binds is asked for
BARE_PACKAGES = ("suite2p", "suite2p.io", "suite2p.registration", "suite2p.detection",
                 "suite2p.extraction", "suite2p.classification",
                 "torchvision", "torchvision.transforms", "scipy.signal")
#: names suite2p's submodules import from a bare package -> module its __init__ takes them from
PACKAGE_NAMES = {"suite2p": {"default_settings": "suite2p.parameters"},
                 "scipy.signal": {"medfilt": "scipy.signal._signaltools"}}
#: modules whose file runs only when one of their attributes is first used
LAZY_MODULES = ("torchvision.transforms.functional", "torchvision.transforms._functional_tensor",
                "suite2p.detection.anatomical")
_MISSING = object()


def suite2p_module(name: str) -> ModuleType:
    """The suite2p submodule ``name`` (e.g. ``"suite2p.registration.register"``),
    imported without the package ``__init__`` files it does not need (see above)."""
    if not name.startswith("suite2p."):
        raise ValueError(f"'{name}' is not a suite2p submodule")
    _prepare()
    return importlib.import_module(name)


def cellpose_module(name: str) -> ModuleType:
    """The cellpose module ``name`` (e.g. ``"cellpose.io"``), imported with torchvision
    deferred as for suite2p (cellpose uses torchvision only for training)."""
    if name != "cellpose" and not name.startswith("cellpose."):
        raise ValueError(f"'{name}' is not a cellpose module")
    _prepare()
    return importlib.import_module(name)


def _prepare() -> None:
    """Bare packages and lazy modules, for those not imported in this process yet (a
    package in sys.modules, imported whole or bare by an earlier call, is left as it is;
    a whole package has imported its subpackages already). A parent that is not bare
    itself (scipy for scipy.signal) is imported as usual."""
    for name in BARE_PACKAGES:
        if name in sys.modules or importlib.util.find_spec(name.split(".")[0]) is None:
            continue
        parent = name.rpartition(".")[0]
        if parent and parent not in BARE_PACKAGES:
            importlib.import_module(parent)
        _bare_package(name)
        for lazy in LAZY_MODULES:
            if lazy.rpartition(".")[0] == name:
                _lazy_module(lazy)


def is_bare(module: ModuleType) -> bool:
    """True for a package or module put into sys.modules here whose code has not run."""
    return getattr(module.__dict__.get("__getattr__"), "_deferred", False)


def is_imported(name: str) -> bool:
    """Whether code of package or module ``name`` ran in this process: it, or one of its
    submodules, is imported (a bare package or a lazy module not used yet does not count)."""
    prefix = name + "."
    return any(m is not None and not is_bare(m)
               for key, m in list(sys.modules.items()) if key == name or key.startswith(prefix))


def _bare_package(name: str) -> ModuleType:
    """``sys.modules[name]``: the package made from its spec without running ``__init__``."""
    if name in sys.modules:
        return sys.modules[name]
    parent, _, child = name.rpartition(".")
    if parent:
        _bare_package(parent)
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"'{name}' is not an installed package")
    return _deferred(spec, _package_trigger(_init_names(spec.origin)), PACKAGE_NAMES.get(name, {}))


def _lazy_module(name: str) -> ModuleType:
    """``sys.modules[name]``: the module made from its spec; its file runs on first use."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)  # its parent package is in sys.modules already
    if spec is None:
        raise ImportError(f"'{name}' is not installed")
    # any name the module does not hold yet runs it, but not __path__: a plain module has none
    return _deferred(spec, lambda module, attr: attr != "__path__", {})


def _deferred(spec, runs_on, from_modules: dict) -> ModuleType:
    """The module of ``spec`` in sys.modules (and as its parent's attribute), with its
    ``__name__``, ``__file__``, ``__spec__``, ``__path__`` set as Python's import sets
    them but its code not run. A module ``__getattr__`` (PEP 562, called only for names
    the module does not hold) runs the code, once, when ``runs_on(module, name)``; names
    in ``from_modules`` come from the module given there, without running the code.
    (Unlike importlib.util.LazyLoader, asking for ``__file__``, as ``inspect.getmodule``
    does for every module in sys.modules, does not load the module.)"""
    module = importlib.util.module_from_spec(spec)

    def __getattr__(attr: str):
        if attr in from_modules:
            try:
                value = getattr(importlib.import_module(from_modules[attr]), attr, _MISSING)
            except ImportError:
                value = _MISSING
            if value is not _MISSING:  # else (a release that moved it) the real __init__ below
                setattr(module, attr, value)
                return value
        if runs_on(module, attr):
            del module.__dict__["__getattr__"]
            try:
                spec.loader.exec_module(module)
            except BaseException:
                # a failing __init__ leaves no half-run module behind: the next import of the
                # name runs the package afresh and raises the same error
                _forget(spec.name)
                raise
            return getattr(module, attr)
        raise AttributeError(f"module '{module.__name__}' has no attribute '{attr}'")

    __getattr__._deferred = True
    module.__getattr__ = __getattr__
    sys.modules[spec.name] = module
    parent, _, child = spec.name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def _forget(name: str) -> None:
    """Remove module ``name`` and its submodules from sys.modules and from its parent."""
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]
    parent, _, child = name.rpartition(".")
    if parent in sys.modules and getattr(sys.modules[parent], child, None) is not None:
        try:
            delattr(sys.modules[parent], child)
        except AttributeError:
            pass


def _package_trigger(init_names: set[str]):
    """When a bare package runs its ``__init__.py``: for a name that file binds. Any
    other name behaves as on a plain package: a submodule is an attribute once imported
    (so ``from . import x`` imports it), other names do not exist. With a star import in
    ``__init__`` any non-dunder name that is not a submodule may be one of its names."""

    def runs_on(module: ModuleType, attr: str) -> bool:
        if attr in init_names:
            return True
        return "*" in init_names and not attr.startswith("__") and \
            importlib.util.find_spec(f"{module.__name__}.{attr}") is None

    return runs_on


def _init_names(init_file: str) -> set[str]:
    """The names that a package's ``__init__.py`` binds in its module namespace
    (top-level statements, including those inside ``if``/``try``/``with`` blocks)."""
    with open(init_file, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), init_file)
    names: set[str] = set()

    def visit(body):
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
            else:  # if / try / with / for blocks: their bodies run at module level too
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return names

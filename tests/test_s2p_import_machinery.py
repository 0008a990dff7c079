"""planeflow._s2p_import's machinery on toy packages (issue 20, item 2): a bare package runs its
``__init__`` only for a name that file binds, names its submodules import from it come from the
module named in PACKAGE_NAMES, a lazy module runs on first use, and a failing ``__init__``
leaves no half-run module behind."""
from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from planeflow import _s2p_import as imp

TOY = {
    "toypkg/__init__.py": """
        import builtins
        builtins.toypkg_inits = getattr(builtins, "toypkg_inits", 0) + 1
        from ._core import small
        from .heavy import big
        VERSION = "1.0"
    """,
    "toypkg/_core.py": "def small():\n    return 1\n",
    "toypkg/heavy.py": """
        import builtins
        builtins.toypkg_heavy = getattr(builtins, "toypkg_heavy", 0) + 1
        def big():
            return 2
    """,
    "toypkg/sub.py": "from . import small\n\ndef twice():\n    return 2 * small()\n",
    "toyfail/__init__.py": "from ._core import value\nraise RuntimeError('broken __init__ of toyfail')\n",
    "toyfail/_core.py": "value = 7\n",
    "toyfail/sub.py": "def f():\n    return 3\n",
}


@pytest.fixture
def toys(tmp_path, monkeypatch):
    import builtins

    for rel, text in TOY.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(imp.PACKAGE_NAMES, "toypkg", {"small": "toypkg._core"})
    for counter in ("toypkg_inits", "toypkg_heavy"):
        monkeypatch.setattr(builtins, counter, 0, raising=False)
    yield
    for key in [k for k in sys.modules if k.split(".")[0] in ("toypkg", "toyfail")]:
        del sys.modules[key]


def test_bare_package_runs_its_init_only_when_needed(toys):
    import builtins

    pkg = imp._bare_package("toypkg")
    assert imp.is_bare(pkg) and not imp.is_imported("toypkg")
    sub = importlib.import_module("toypkg.sub")  # `from . import small` comes from toypkg._core
    assert sub.twice() == 2 and builtins.toypkg_inits == 0
    assert sub.small is importlib.import_module("toypkg._core").small
    assert pkg.__file__.endswith("__init__.py") and builtins.toypkg_inits == 0  # dunders do not run it
    with pytest.raises(AttributeError):
        pkg.not_a_name  # noqa: B018 - neither bound by __init__ nor a submodule
    assert builtins.toypkg_inits == 0
    assert pkg.VERSION == "1.0" and builtins.toypkg_inits == 1  # a name __init__ binds runs it, once
    assert pkg.big() == 2 and builtins.toypkg_inits == 1
    assert not imp.is_bare(pkg) and imp.is_imported("toypkg")
    import toypkg

    assert toypkg is pkg


def test_lazy_module_runs_on_first_use(toys):
    import builtins

    imp._bare_package("toypkg")
    mod = imp._lazy_module("toypkg.heavy")
    assert builtins.toypkg_heavy == 0 and mod.__name__ == "toypkg.heavy"
    assert mod.big() == 2 and builtins.toypkg_heavy == 1


def test_a_failing_init_leaves_no_half_run_module(toys):
    pkg = imp._bare_package("toyfail")
    assert importlib.import_module("toyfail.sub").f() == 3
    with pytest.raises(RuntimeError, match="broken __init__ of toyfail"):
        pkg.value  # noqa: B018 - bound by __init__: runs it
    assert "toyfail" not in sys.modules and "toyfail.sub" not in sys.modules
    with pytest.raises(RuntimeError, match="broken __init__ of toyfail"):
        importlib.import_module("toyfail")  # the next import runs it afresh, same error
    assert "toyfail" not in sys.modules


def test_a_moved_name_falls_back_to_the_real_init(toys, monkeypatch):
    """A name PACKAGE_NAMES takes from a module that no longer has it (a release that moved
    it) comes from the package's real __init__ instead: slower, never wrong."""
    import builtins

    monkeypatch.setitem(imp.PACKAGE_NAMES, "toypkg", {"small": "toypkg.heavy"})  # heavy has no `small`
    pkg = imp._bare_package("toypkg")
    assert pkg.small() == 1 and builtins.toypkg_inits == 1

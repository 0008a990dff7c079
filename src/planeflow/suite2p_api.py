"""Every suite2p name planeflow calls, in one place: suite2p's front door and the few rooms
behind it.

``from planeflow import suite2p_api as s2p`` then ``s2p.registration_wrapper(...)``: each name
is looked up on first use (importing only the suite2p module that defines it, through
:func:`planeflow._s2p_import.suite2p_module`) and is the very object suite2p's package exports.

- :data:`PUBLIC`: names suite2p's packages export from their ``__init__`` (its public API:
  ``suite2p.registration_wrapper``, ``suite2p.io.BinaryFile``, ...). Any suite2p 1.x release is
  expected to keep them.
- :data:`PRIVATE`: names from suite2p's modules that no ``__init__`` exports, used only where
  suite2p has no public path: registration with rigid shifts given from outside (shared
  motion: the rigid pass of one plane and its registration with the session's consensus), the
  settings table behind ``planeflow suite2p-schema``, and ROI statistics from label images
  (cellpose_import). ``tests/test_suite2p_api.py`` checks each against the installed suite2p.

With a suite2p other than :data:`TESTED_VERSION`, :func:`version_warning` says so in one line
(at every parse of the workflow) and :func:`private_ok` is False: shared motion is then off (each
plane is registered by ``registration_wrapper`` on its own motion) and the steps ask for no
private name. Pure standard library until a name is used.
"""
from __future__ import annotations

from functools import lru_cache
from types import ModuleType

#: the suite2p release the private names below were checked against
TESTED_VERSION = "1.1.0"

#: suite2p's public names planeflow uses: name -> (module defining it, package exporting it)
PUBLIC = {
    "default_settings": ("suite2p.parameters", "suite2p"),
    "registration_wrapper": ("suite2p.registration.register", "suite2p.registration"),
    "get_pc_metrics": ("suite2p.registration.metrics", "suite2p.registration"),
    "highpass_mean_image": ("suite2p.registration.utils", "suite2p.registration"),
    "detection_wrapper": ("suite2p.detection.detect", "suite2p.detection"),
    "roi_stats": ("suite2p.detection.stats", "suite2p.detection"),
    "assign_overlaps": ("suite2p.detection.stats", "suite2p.detection"),
    "extraction_wrapper": ("suite2p.extraction.extract", "suite2p.extraction"),
    "preprocess": ("suite2p.extraction.dcnv", "suite2p.extraction"),
    "oasis": ("suite2p.extraction.dcnv", "suite2p.extraction"),
    "classify": ("suite2p.classification.classify", "suite2p.classification"),
    "builtin_classfile": ("suite2p.classification.classify", "suite2p.classification"),
    "user_classfile": ("suite2p.classification.classify", "suite2p.classification"),
    "BinaryFile": ("suite2p.io.binary", "suite2p.io"),
    "save_mat": ("suite2p.io.save", "suite2p.io"),
}

#: names behind suite2p's front door: planeflow's name -> (module, its name there, what for)
PRIVATE = {
    "compute_reference": ("suite2p.registration.register", "compute_reference",
                          "shared motion: a plane's reference image, as registration_wrapper makes it"),
    "compute_filters_and_norm": ("suite2p.registration.register", "compute_filters_and_norm",
                                 "shared motion: the phase-correlation filters of a reference"),
    "shift_frames": ("suite2p.registration.register", "shift_frames",
                     "shared motion: frames moved by given rigid and measured non-rigid shifts"),
    "compute_crop": ("suite2p.registration.register", "compute_crop",
                     "shared motion: bad frames and the valid range from the given shifts"),
    "registration_outputs_to_dict": ("suite2p.registration.register", "registration_outputs_to_dict",
                                      "shared motion: registration outputs as registration_wrapper returns them"),
    "rigid_phasecorr": ("suite2p.registration.rigid", "phasecorr",
                        "shared motion: rigid shifts of a plane, and the correlation at given shifts"),
    "nonrigid_phasecorr": ("suite2p.registration.nonrigid", "phasecorr",
                           "shared motion: non-rigid shifts on top of the given rigid ones"),
    "bidiphase_compute": ("suite2p.registration.bidiphase", "compute", "shared motion: the scan-phase offset"),
    "bidiphase_shift": ("suite2p.registration.bidiphase", "shift", "shared motion: scan-phase correction"),
    "SETTINGS": ("suite2p.parameters", "SETTINGS", "planeflow suite2p-schema: suite2p's settings table"),
    "masks_to_stats": ("suite2p.detection.anatomical", "masks_to_stats",
                       "cellpose_import: ROI pixels and weights from a label image"),
}

_warned: list = []


@lru_cache(maxsize=1)
def installed_version() -> str:
    """The installed suite2p's version ("" when it is not installed), from its metadata:
    suite2p is not imported. The ``suite2p-<version>.dist-info`` folder beside the package is
    read first (under a millisecond; ``importlib.metadata`` scans every distribution, 30 ms here,
    paid by every job)."""
    import glob
    import importlib.util
    import os

    spec = importlib.util.find_spec("suite2p")
    if spec is None or not spec.submodule_search_locations:
        return ""
    site = os.path.dirname(list(spec.submodule_search_locations)[0])
    found = glob.glob(os.path.join(glob.escape(site), "suite2p-*.dist-info"))
    if len(found) == 1:
        return os.path.basename(found[0])[len("suite2p-"):-len(".dist-info")]
    from importlib.metadata import PackageNotFoundError, version

    try:  # an egg, an editable install or several dist-info folders: ask the metadata
        return version("suite2p")
    except PackageNotFoundError:
        return ""


def private_ok() -> bool:
    """Whether the private names may be used: the installed suite2p is the tested one."""
    return installed_version() == TESTED_VERSION


def version_warning() -> str | None:
    """One line when the installed suite2p is not the tested one, else None."""
    v = installed_version()
    if v == TESTED_VERSION:
        return None
    return (f"suite2p {v or '(not installed)'} is installed; planeflow was tested with suite2p "
            f"{TESTED_VERSION}. Using suite2p's public functions only: registration.shared_motion "
            f"is off (each plane registered on its own motion). Install suite2p=={TESTED_VERSION} "
            "to use it.")


def module(name: str) -> ModuleType:
    """A suite2p submodule, imported without the package ``__init__`` files it does not need."""
    from planeflow._s2p_import import suite2p_module

    return suite2p_module(name)


def __getattr__(name: str):
    if name in PUBLIC:
        value = getattr(module(PUBLIC[name][0]), name)
    elif name in PRIVATE:
        if not private_ok():
            from planeflow import PlaneflowError

            raise PlaneflowError(f"planeflow.suite2p_api.{name} is not suite2p's public API and was "
                               f"tested with suite2p {TESTED_VERSION} only (installed: "
                               f"{installed_version() or 'none'}); {PRIVATE[name][2]} needs it.")
        mod, attr, _why = PRIVATE[name]
        value = getattr(module(mod), attr)
    else:
        raise AttributeError(f"module 'planeflow.suite2p_api' has no attribute '{name}'")
    globals()[name] = value
    return value

"""ScanImage TIFF headers.

ScanImage (2016 and later) stores the frame-invariant header (``SI.*`` lines in MATLAB
syntax) in the Software tag of every page, the multi-ROI definition (JSON ``RoiGroups``)
in the Artist tag, and per-frame values in each page's ImageDescription. ScanImage 3.x/4.x
wrote their whole header (``state.*`` / ``scanimage.SI4.*`` lines) into the ImageDescription.

- :mod:`.syntax`       MATLAB value syntax: :func:`parse_matlab_value`, :func:`parse_si_text`
- :mod:`.legacy`       :func:`~.legacy.legacy_si`: 3.x/4.x headers renamed to ``SI.*`` keys
- :mod:`.header`       :func:`read_header`: the raw header of one file
- :mod:`.acquisition`  :func:`acquisition_info`: what the header says about the acquisition

Synthetic ScanImage files are written by :mod:`planeflow.synth.scanimage_writer`.
"""
from planeflow.io.scanimage.acquisition import acquisition_info
from planeflow.io.scanimage.header import read_header
from planeflow.io.scanimage.syntax import format_matlab_value, parse_matlab_value, parse_si_text

__all__ = ["read_header", "acquisition_info", "parse_matlab_value", "parse_si_text", "format_matlab_value"]

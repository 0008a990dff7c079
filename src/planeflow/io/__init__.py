"""Reading and writing files: raw recordings (TIFF, ScanImage, zarr/HDF5), plane files, atomic writes."""

# ROIs to and from the cellpose GUI. cellpose_export runs with the default target when
# config cellpose.export is true; cellpose_import runs on demand, for the planes whose
# edited _seg.npy exists: `snakemake cellpose_import_all`.


rule cellpose_export:
    """A finished plane's ROIs as a cellpose label image, summary .tif and GUI _seg.npy."""
    input:
        plane=LAYOUT.plane_dir(S, P),
    output:
        **{k: LAYOUT.cellpose_export(k, S, P) for k in pflayout.CELLPOSE_EXPORT_FILES},
    log:
        LAYOUT.log("cellpose_export", S, P),
    benchmark:
        LAYOUT.benchmark("cellpose_export", S, P)
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["cellpose_export"].threads
    resources:
        **step_resources("cellpose_export"),
    params:
        img_key=config["cellpose"]["img_key"],
        rois=config["cellpose"]["rois"],
    script:
        "../../scripts/cellpose_export.py"


rule cellpose_import:
    """An edited cellpose _seg.npy back to suite2p: stat from masks, traces re-extracted
    from the binary detection read, deconvolution and classification as in detection."""
    input:
        seg=cellpose_import_seg,
        plane=LAYOUT.plane_dir(S, P),
        # the binary detection read (with volume.crosstalk: subtract, crosstalk taken out)
        bin=cellpose_import_binary,
    output:
        **{k: LAYOUT.cellpose_import(k, S, P) for k in pflayout.CELLPOSE_IMPORT_FILES},
    log:
        LAYOUT.log("cellpose_import", S, P),
    benchmark:
        LAYOUT.benchmark("cellpose_import", S, P)
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["cellpose_import"].threads
    resources:
        **step_resources("cellpose_import"),
    params:
        suite2p=suite2p_params("detection"),
        iscell=config["cellpose"]["import_iscell"],
    script:
        "../../scripts/cellpose_import.py"


rule cellpose_import_all:
    """Target: cellpose_import for every plane whose edited _seg.npy exists."""
    input:
        # an input function: the per-plane file checks run only when this target is asked for
        lambda wc: cellpose_import_targets(),

# ROIs to and from the cellpose GUI. cellpose_export runs with the default target when
# config cellpose.export is true; cellpose_import runs on demand, for the planes whose
# edited _seg.npy exists: `snakemake cellpose_import_all`.
CELLPOSE_EXPORT_DIR = f"{SESSION_DIR}/cellpose_export/plane{{plane}}"
CELLPOSE_IMPORT_DIR = f"{SESSION_DIR}/cellpose_import/plane{{plane}}"


rule cellpose_export:
    """A finished plane's ROIs as a cellpose label image, summary .tif and GUI _seg.npy."""
    input:
        plane=FINAL_DIR,
    output:
        masks=f"{CELLPOSE_EXPORT_DIR}/masks.npy",
        image=f"{CELLPOSE_EXPORT_DIR}/plane{{plane}}.tif",
        seg=f"{CELLPOSE_EXPORT_DIR}/plane{{plane}}_seg.npy",
        conversion_meta=f"{CELLPOSE_EXPORT_DIR}/conversion_meta.npy",
    params:
        img_key=config["cellpose"]["img_key"],
        rois=config["cellpose"]["rois"],
    log:
        f"{SESSION_DIR}/logs/cellpose_export/plane{{plane}}.log",
    benchmark:
        f"{SESSION_DIR}/benchmarks/cellpose_export/plane{{plane}}.tsv"
    threads: 1
    conda:
        "../../envs/planeflow.yaml"
    resources:
        mem_mb=cellpose_mem_mb("cellpose_export"),
        runtime=minutes(15),
    script:
        "../../scripts/cellpose_export.py"


rule cellpose_import:
    """An edited cellpose _seg.npy back to suite2p: stat from masks, traces re-extracted
    from the registered binary, deconvolution and classification as in detection."""
    input:
        seg=cellpose_import_seg,
        plane=FINAL_DIR,
        bin=f"{SESSION_DIR}/registration/plane{{plane}}/part0/data.bin",
    output:
        **{name: f"{CELLPOSE_IMPORT_DIR}/{name}.npy"
           for name in ("ops", "stat", "iscell", "F", "Fneu", "spks", "conversion_meta")},
    params:
        suite2p=suite2p_params("detection"),
        iscell=config["cellpose"]["import_iscell"],
    log:
        f"{SESSION_DIR}/logs/cellpose_import/plane{{plane}}.log",
    benchmark:
        f"{SESSION_DIR}/benchmarks/cellpose_import/plane{{plane}}.tsv"
    threads: 1
    conda:
        "../../envs/planeflow.yaml"
    resources:
        mem_mb=cellpose_mem_mb("cellpose_import"),
        runtime=minutes(60),
        **gpu_request(),
    script:
        "../../scripts/cellpose_import.py"


rule cellpose_import_all:
    """Target: cellpose_import for every plane whose edited _seg.npy exists."""
    input:
        # an input function: the per-plane file checks run only when this target is asked for
        lambda wc: cellpose_import_targets(),

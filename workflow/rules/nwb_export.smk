# NWB export: one NWB file per session from the final suite2p folders (and, with
# nwb_export.include_movie, the registration binaries). Its subject/session metadata
# was checked when common.smk was parsed (NWB_META), before any job ran. Inputs and
# resources come from planeflow.plan.nwb_meta (pfnwb), computed from the cached session metadata.


rule nwb_export:
    """A session's suite2p results (every plane) as one NWB file, written with pynwb."""
    input:
        unpack(lambda wc: pfnwb.job_inputs(RESULTS, META[wc.session], config["nwb_export"])),
    output:
        nwb=f"{SESSION_DIR}/nwb_export/{{session}}.nwb",
    params:
        metadata=lambda wc: NWB_META[wc.session],
        session=lambda wc: pfnwb.job_session(META[wc.session]),
        options=lambda wc: {k: config["nwb_export"][k] for k in ("include_movie", "chunk_frames", "compression")},
    log:
        f"{SESSION_DIR}/logs/nwb_export/session.log",
    benchmark:
        f"{SESSION_DIR}/benchmarks/nwb_export/session.tsv"
    threads: 1
    conda:
        "../../envs/planeflow.yaml"
    resources:
        mem_mb=lambda wc, attempt: pfnwb.job_mem_mb(META[wc.session], config["nwb_export"], attempt),
        runtime=lambda wc, attempt: pfnwb.job_runtime(META[wc.session], config["nwb_export"], attempt),
    script:
        "../../scripts/nwb_export.py"

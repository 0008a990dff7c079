# NWB export: one NWB file per session from the final suite2p folders (and, with
# nwb_export.include_movie, the registration binaries). Its subject/session metadata
# was checked when common.smk was parsed (NWB_META), before any job ran.


rule nwb_export:
    """A session's suite2p results (every plane) as one NWB file, written with pynwb."""
    input:
        unpack(nwb_inputs),
    output:
        nwb=LAYOUT.nwb(S),
    log:
        LAYOUT.log("nwb_export", S),
    benchmark:
        LAYOUT.benchmark("nwb_export", S)
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["nwb_export"].threads
    resources:
        **step_resources("nwb_export"),
    params:
        metadata=lambda wc: NWB_META[wc.session],
        session=lambda wc: pfnwb.job_session(META[wc.session]),
        options=lambda wc: {k: config["nwb_export"][k] for k in ("include_movie", "chunk_frames", "compression")},
    script:
        "../../scripts/nwb_export.py"

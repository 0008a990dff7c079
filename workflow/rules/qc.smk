rule qc:
    """A verdict (ok | warn | fail) with reasons for every plane of a session: registration,
    signal, cells, failures, and the volume tables' duplicates, ghosts and crosstalk, measured
    against the config's qc thresholds."""
    input:
        unpack(qc_inputs),
    output:
        table=report(
            LAYOUT.qc_file("table", S),
            caption="../report/qc_table.rst",
            category=S,
            subcategory="qc",
            labels={"figure": "QC table (tsv)"},
        ),
        json=LAYOUT.qc_file("json", S),
        shifts=report(
            LAYOUT.qc_file("shifts", S),
            caption="../report/qc_shifts.rst",
            category=S,
            subcategory="qc",
            labels={"figure": "rigid shifts of every plane"},
        ),
        table_figure=report(
            LAYOUT.qc_file("table_figure", S),
            caption="../report/qc_table.rst",
            category=S,
            subcategory="qc",
            labels={"figure": "QC verdict per plane"},
        ),
    log:
        LAYOUT.log("qc", S),
    benchmark:
        LAYOUT.benchmark("qc", S)
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["qc"].threads
    resources:
        **step_resources("qc"),
    params:
        session=qc_session,
        options=config["qc"],
    script:
        "../../scripts/qc.py"

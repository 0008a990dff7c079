rule tracking:
    """The same neuron followed across the sessions of one subject, in 3-D: each session's
    volume (cells.tsv, mean images) aligned to the subject's reference session, then cells
    matched within a plane and across neighbouring planes (CellReg's probabilistic model)."""
    input:
        unpack(tracking_inputs),
    output:
        cells=LAYOUT.subject_file("tracking", "cells", "{subject}"),
        tracks=LAYOUT.subject_file("tracking", "tracks", "{subject}"),
        pairs=LAYOUT.subject_file("tracking", "pairs", "{subject}"),
        figure=report(
            LAYOUT.subject_file("tracking", "figure", "{subject}"),
            caption="../report/tracking.rst",
            category="subject {subject}",
            subcategory="tracking",
            labels={"figure": "cells tracked across sessions"},
        ),
        summary=LAYOUT.subject_file("tracking", "summary", "{subject}"),
    log:
        LAYOUT.log("tracking", "{subject}"),
    benchmark:
        LAYOUT.benchmark("tracking", "{subject}")
    conda:
        "../../envs/planeflow.yaml"
    threads: STEP["tracking"].threads
    resources:
        **step_resources("tracking"),
    params:
        subject=lambda wc: wc.subject,
        sessions=lambda wc: tracking_sessions(wc.subject),
        options=lambda wc: tracking_options(wc.subject),
    script:
        "../../scripts/tracking.py"

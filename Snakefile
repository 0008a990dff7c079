# planeflow: volumetric two-photon recordings -> suite2p results, one job per plane and step.
# This file only includes the rules; see workflow/rules/common.smk for config loading.


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/binary_write.smk"
include: "workflow/rules/shared_motion.smk"
include: "workflow/rules/registration.smk"
include: "workflow/rules/crosstalk.smk"
include: "workflow/rules/detection.smk"
include: "workflow/rules/postprocess.smk"
include: "workflow/rules/merge.smk"
include: "workflow/rules/volume_stats.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/raw_compress.smk"
include: "workflow/rules/cellpose.smk"
include: "workflow/rules/nwb_export.smk"
include: "workflow/rules/mat_export.smk"


rule all:
    default_target: True
    input:
        all_outputs(),

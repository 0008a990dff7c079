"""planeflow: per-plane suite2p processing of volumetric two-photon recordings.

The package holds the logic behind the Snakemake workflow (one module per step in
:mod:`planeflow.steps`), the session inspection used at DAG-build time
(:mod:`planeflow.plan.session`), and the synthetic data generator
(:mod:`planeflow.synth.simulate`). Importing it is cheap: suite2p and torch are imported
only inside the steps that need them.
"""

__version__ = "0.1.0"


class PlaneflowError(Exception):
    """An error caused by the user's input or configuration.

    The message names the file or setting, says what is wrong and what to do.
    Scripts print it as the single error line of a failed job.
    """

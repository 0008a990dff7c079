"""The ``planeflow`` command line: the commands around the Snakemake workflow."""
from __future__ import annotations

import argparse
import sys

from planeflow import PlaneflowError, __version__


def _simulate(args) -> int:
    from planeflow.synth.simulate import simulate_session

    if args.scanimage:
        from planeflow.synth.scanimage_session import simulate_scanimage_session

        widths = [args.lx // args.rois] * args.rois
        res = simulate_scanimage_session(
            args.out, nplanes=args.nplanes, nframes=args.nframes, roi_widths=widths, height=args.ly,
            fly_to_lines=args.fly_to, bidiphase=args.bidi, nfiles=args.nfiles, fs=args.fs, tau=args.tau,
            cells_per_plane=args.cells, diameter=args.diameter, max_shift=args.max_shift,
            seed=args.seed, name=args.name, brightness=args.brightness)
        print(f"wrote {len(res['files'])} ScanImage TIFF file(s) to {args.out}: LBM, {args.nplanes} "
              f"planes as channels, {args.rois} mROI stripe(s) of {widths} px with {args.fly_to} "
              f"fly-to lines, scan-phase offset {args.bidi} px; ground truth: {res['ground_truth']}")
        return 0
    if args.volume:
        from planeflow.synth.volume import simulate_volume

        offsets = None
        if args.offsets:
            offsets = [[float(v) for v in pair.split(",")] for pair in args.offsets.split(";")]
        res = simulate_volume(
            args.out, nplanes=args.nplanes, nframes=args.nframes, Ly=args.ly, Lx=args.lx,
            cells_per_plane=args.cells, diameter=args.diameter, dz_um=args.dz, offsets=offsets,
            max_offset=args.max_offset, subpixel=args.subpixel, crosstalk=args.crosstalk,
            crosstalk_k=args.crosstalk_k, fs=args.fs, tau=args.tau, max_shift=args.max_shift,
            nfiles=args.nfiles, seed=args.seed, name=args.name)
        print(f"wrote a 3-D population imaged by {args.nplanes} planes (dz {args.dz} um, offsets "
              f"{res['offsets']}, crosstalk {args.crosstalk} at +{args.crosstalk_k} planes) to "
              f"{args.out}; ground truth: {res['ground_truth']}")
    else:
        res = simulate_session(
            args.out, nplanes=args.nplanes, nframes=args.nframes, Ly=args.ly, Lx=args.lx,
            cells_per_plane=args.cells, diameter=args.diameter, fs=args.fs, tau=args.tau,
            max_shift=args.max_shift, nfiles=args.nfiles, seed=args.seed, name=args.name,
            brightness=args.brightness)
        print(f"wrote {len(res['files'])} TIFF file(s) to {args.out} "
              f"({args.nplanes} planes x {args.nframes} frames of {args.ly}x{args.lx}); "
              f"ground truth: {res['ground_truth']}")
    if args.sheet:
        import os

        row = [args.name, os.path.abspath(args.out), str(args.nplanes), str(args.fs),
               str(args.tau), str(args.diameter), "1.0", "1.0", str(args.dz)]
        with open(args.sheet, "w") as fh:
            fh.write("session_id\tdata_path\tnplanes\tfs\ttau\tdiameter\tdx\tdy\tdz\n")
            fh.write("\t".join(row) + "\n")
        print(f"wrote sessions sheet {args.sheet}")
    return 0


def _factors(text: str) -> list[float]:
    """``--brightness 1,1,0.035``: one factor per plane."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def _suite2p_schema(args) -> int:
    import yaml

    from planeflow.plan.suite2p_schema import suite2p_settings_schema

    text = yaml.safe_dump(suite2p_settings_schema(), sort_keys=False, width=100)
    if args.out:
        from planeflow.io.atomic import save_text

        save_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def _config_reference(args) -> int:
    import yaml

    from planeflow.plan.config_reference import config_reference

    from planeflow.plan.config import load_schema

    if args.schema:
        try:
            with open(args.schema) as fh:
                schema = yaml.safe_load(fh)
        except OSError as e:
            raise PlaneflowError(f"cannot read the config schema '{args.schema}' ({e}).") from None
    else:
        schema = load_schema("config.schema.yaml")
    text = config_reference(schema)
    if args.out:
        from planeflow.io.atomic import save_text

        save_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="planeflow",
        description=("planeflow: volumetric two-photon recordings to suite2p results, one Snakemake "
                     "job per plane and step. These commands sit around the workflow: find your "
                     "sessions (init, inspect), follow a run (status), set up a cluster "
                     "(slurm-profile), make synthetic data (simulate) and regenerate reference "
                     "files (suite2p-schema, config-reference). The workflow itself runs with "
                     "snakemake (snakemake -n for a dry run)."))
    p.add_argument("--version", action="version", version=f"planeflow {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("simulate", help="write a synthetic multi-plane session with ground truth")
    s.add_argument("out", help="output folder")
    s.add_argument("--nplanes", type=int, default=3)
    s.add_argument("--nframes", type=int, default=600, help="frames per plane")
    s.add_argument("--ly", type=int, default=128)
    s.add_argument("--lx", type=int, default=128)
    s.add_argument("--cells", type=int, default=20, help="cells per plane")
    s.add_argument("--diameter", type=float, default=10)
    s.add_argument("--fs", type=float, default=15.0, help="volume rate (Hz)")
    s.add_argument("--tau", type=float, default=1.0)
    s.add_argument("--max-shift", type=int, default=3)
    s.add_argument("--nfiles", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--name", default="synthetic")
    s.add_argument("--brightness", type=_factors, default=None,
                   help="one factor per plane on its light, comma-separated (1 = about 9 photons per "
                        "pixel per frame; 0.035 = a dim plane of about 0.3); all planes share one motion")
    s.add_argument("--sheet", help="also write a one-row sessions sheet here")
    s.add_argument("--scanimage", action="store_true",
                   help="write ScanImage LBM files (SI header, mROI stripes, fly-to lines, scan phase)")
    s.add_argument("--rois", type=int, default=2, help="--scanimage: mROI stripes (split --lx)")
    s.add_argument("--fly-to", type=int, default=8, help="--scanimage: fly-to lines between stripes")
    s.add_argument("--bidi", type=float, default=2, help="--scanimage: planted scan-phase offset (px)")
    s.add_argument("--volume", action="store_true",
                   help="one 3-D population seen by all planes (axial profile, plane offsets, crosstalk)")
    s.add_argument("--dz", type=float, default=20.0, help="plane spacing (um), for --volume and --sheet")
    s.add_argument("--offsets", help="--volume: planted (dy,dx) per plane, e.g. '0,0;3,-2;5,1'")
    s.add_argument("--max-offset", type=float, default=4.0,
                   help="--volume: bound on random plane offsets (px) when --offsets is not given")
    s.add_argument("--subpixel", action="store_true", help="--volume: random offsets not rounded")
    s.add_argument("--crosstalk", type=float, default=0.0,
                   help="--volume: plane p+k gets this fraction of plane p's light")
    s.add_argument("--crosstalk-k", type=int, default=1, help="--volume: crosstalk plane separation k")
    s.set_defaults(func=_simulate)

    g = sub.add_parser("suite2p-schema", help="write the JSON schema of suite2p settings (YAML)")
    g.add_argument("--out", help="file to write (default: stdout)")
    g.set_defaults(func=_suite2p_schema)

    c = sub.add_parser("config-reference",
                       help="write the configuration reference (Markdown) from the config schema")
    c.add_argument("--schema", help="config schema to read (default: planeflow's own)")
    c.add_argument("--out", help="file to write, e.g. docs/configuration.md (default: stdout)")
    c.set_defaults(func=_config_reference)

    from planeflow.cli.init import add_cli as add_init
    from planeflow.cli.inspect import add_cli as add_inspect
    from planeflow.cli.slurm_profile import add_cli as add_slurm_profile

    add_inspect(sub)
    add_init(sub)
    add_slurm_profile(sub)

    from planeflow.cli.status import add_cli as add_status

    add_status(sub)

    args = p.parse_args(argv)
    try:
        return args.func(args)
    except PlaneflowError as e:
        print(f"planeflow: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

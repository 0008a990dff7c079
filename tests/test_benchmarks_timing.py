"""benchmarks/_timing.py, the harness of the timing benchmarks (issue 22): the A B B A order, the
medians and spreads, and the verdicts on a busy machine, fed with made-up timings and loads (no real
timing); then each timing benchmark uses it, refuses fewer than 3 rounds, and (workflow-marked) runs
in its --quick mode."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO

BENCH = REPO / "benchmarks"
#: the benchmarks that time something and compare it (volume_accuracy and gpu_parity measure accuracy)
TIMING = ("end_to_end", "job_overhead", "binary_write", "shim_gain", "dag_scale")


def _module():
    spec = importlib.util.spec_from_file_location("_timing", BENCH / "_timing.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_timing", mod)  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


T = _module()


def _state(load=0.1, busy=0.0, own=0.0, clock=0.0, steal=0.0):
    return T.MachineState(when=1.7e9, load=(load, load, load), cpus=2, usable=2, busy_s=busy, steal_s=steal,
                          own_s=own, clock=clock)


def _states(*states):
    it = iter(states)
    return lambda: next(it)


def _quiet():
    # 100 s of run; other processes used 10 CPU s of it (0.1 cores)
    return _states(_state(0.2, busy=1000.0, own=5.0, clock=0.0), _state(1.5, busy=1200.0, own=195.0, clock=100.0))


def _sides(timings: dict[str, list[float]], log: list[str]):
    """Sides that log their call and return their next made-up timing."""
    its = {n: iter(v) for n, v in timings.items()}

    def side(n):
        def once():
            log.append(n)
            return next(its[n])
        return once

    return {n: side(n) for n in timings}


def test_schedule_is_forwards_then_backwards_per_round():
    assert T.schedule(["A", "B"], 3) == [(0, "A"), (0, "B"), (0, "B"), (0, "A"), (1, "A"), (1, "B"),
                                         (1, "B"), (1, "A"), (2, "A"), (2, "B"), (2, "B"), (2, "A")]
    assert [n for _, n in T.schedule(["a", "b", "c"], 1)] == ["a", "b", "c", "c", "b", "a"]


def test_measure_runs_abba_and_reports_median_spread_and_ratio():
    log = []
    a = [10.0, 11.0, 10.5, 10.2, 9.8, 10.1]
    b = [20.0, 21.0, 20.4, 19.0, 20.2, 20.6]
    res = T.measure(_sides({"A": a, "B": b}, log), 3, state=_quiet(), command="python benchmarks/x.py")
    assert log == ["A", "B", "B", "A"] * 3
    assert res.samples == {"A": a, "B": b} and res.round_of["A"] == [0, 0, 1, 1, 2, 2]
    assert res.median("A") == pytest.approx(10.15) and res.median("B") == pytest.approx(20.3)
    lo, hi, rel, factor = res.spread("A")
    assert (lo, hi) == (9.8, 11.0) and rel == pytest.approx(1.2 / 10.15) and factor == pytest.approx(11 / 9.8)
    r, rlo, rhi = res.ratio("A", "B")
    per_round = [10.5 / 20.5, 10.35 / 19.7, 9.95 / 20.4]
    assert r == pytest.approx(10.15 / 20.3)
    assert (rlo, rhi) == (pytest.approx(min(per_round)), pytest.approx(max(per_round)))
    assert res.others_cores == pytest.approx(0.1)
    assert res.reliable and res.label == "" and res.reasons() == []
    assert res.target(True) == "meets target" and res.target(False) == "misses target"
    assert res.verdict_line().startswith("result: reliable")
    assert "UNRELIABLE" not in res.ratio_line("A", "B") and "= 0.50 (per round 0.49-0.53)" in res.ratio_line("A", "B")
    head = "\n".join(res.header())
    assert "command: python benchmarks/x.py" in head and "2 CPUs (2 usable)" in head
    assert "0.20/0.20/0.20 at the start, 1.50/1.50/1.50 at the end" in head
    assert "3 rounds of A B B A (A = A, B = B), 6 runs of each" in head
    assert "median of 6; range 9.80-11.0" in res.side_line("A")


def test_extras_are_kept_per_side_in_run_order():
    it = iter(range(100))
    sides = {"x": lambda: (1.0, ("x", next(it))), "y": lambda: 2.0}
    res = T.measure(sides, 3, state=_quiet(), command="")
    assert res.extras["x"] == [("x", 0), ("x", 1), ("x", 2), ("x", 3), ("x", 4), ("x", 5)]
    assert res.extras["y"] == [None] * 6


def test_busy_at_start_is_unreliable_and_gives_no_verdict():
    states = _states(_state(1.2, busy=0.0, own=0.0, clock=0.0), _state(1.0, busy=100.0, own=95.0, clock=100.0))
    res = T.measure(_sides({"A": [1.0] * 6, "B": [2.0] * 6}, []), 3, state=states, command="")
    assert not res.reliable and res.label == "UNRELIABLE"
    assert res.reasons() == ["load average 1.20 at the start > 0.5 (the machine was not quiet)"]
    assert res.ratio_line("A", "B").endswith("UNRELIABLE")
    assert res.target(True) == "no verdict: UNRELIABLE"
    assert res.verdict_line().startswith("result: UNRELIABLE: load average 1.20")
    # a higher threshold, chosen on the command line, is printed with the verdict
    states = _states(_state(1.2, clock=0.0), _state(1.0, clock=100.0))
    assert T.measure(_sides({"A": [1.0] * 6, "B": [2.0] * 6}, []), 3, state=states, max_load=2.0,
                     command="").reliable


def test_load_rising_during_the_run_is_unreliable():
    # 100 s of run: the CPUs were busy 190 s, of which this benchmark 100 s: others used 0.9 cores
    states = _states(_state(0.1, busy=0.0, own=0.0, clock=0.0), _state(2.0, busy=190.0, own=100.0, clock=100.0))
    res = T.measure(_sides({"A": [1.0] * 6, "B": [2.0] * 6}, []), 3, state=states, command="")
    assert res.others_cores == pytest.approx(0.9)
    assert res.reasons() == ["other processes used 0.90 cores on average during the run (> 0.5; the load rose)"]
    # the benchmark's own load alone (a high load average at the end) is not a reason
    states = _states(_state(0.1, busy=0.0, own=0.0, clock=0.0), _state(2.0, busy=200.0, own=195.0, clock=100.0))
    assert T.measure(_sides({"A": [1.0] * 6, "B": [2.0] * 6}, []), 3, state=states, command="").reliable


def test_no_proc_stat_is_unreliable():
    states = _states(T.MachineState(1.7e9, (0.1,) * 3, 2, 2, None, None, 0.0, 0.0),
                     T.MachineState(1.7e9, (0.1,) * 3, 2, 2, None, None, 1.0, 10.0))
    res = T.measure(_sides({"A": [1.0] * 6, "B": [2.0] * 6}, []), 3, state=states, command="")
    assert res.others_cores is None and res.label == "UNRELIABLE"
    assert "cannot tell whether other processes ran" in res.reasons()[0]


def test_a_side_that_varies_more_than_one_and_a_half_times_is_unreliable():
    res = T.measure(_sides({"A": [10.0, 10.0, 21.0, 10.0, 10.0, 10.0], "B": [5.0] * 6}, []), 3, state=_quiet(),
                    command="")
    assert res.reasons() == ["A: slowest run 2.10x its fastest (> 1.5x: the machine was busy)"]
    assert res.median("A") == 10.0  # the median shrugs the outlier off, the verdict does not
    # jitter of a sub-second side (10 vs 20 ms) is not a busy machine
    res = T.measure(_sides({"A": [0.01, 0.02, 0.01, 0.01, 0.015, 0.01], "B": [1.0, 1.2, 1.1, 1.0, 1.0, 1.1]}, []), 3,
                    state=_quiet(), command="")
    assert res.reliable


def test_notes_from_the_caller_make_it_unreliable():
    res = T.measure(_sides({"A": [1.0] * 6, "B": [2.0] * 6}, []), 3, state=_quiet(), command="")
    res.notes.append("B not run: its time is from another run")
    assert res.label == "UNRELIABLE" and "B not run" in res.verdict_line()


def test_fewer_than_three_rounds_only_quick_and_labelled():
    with pytest.raises(ValueError):
        T.measure(_sides({"A": [1.0] * 4, "B": [1.0] * 4}, []), 2, state=_quiet(), command="")
    res = T.measure(_sides({"A": [1.0] * 2, "B": [2.0] * 2}, []), 1, quick=True, state=_quiet(), command="")
    assert res.label == "NOT A MEASUREMENT" and not res.reliable
    assert res.ratio_line("A", "B").endswith("NOT A MEASUREMENT")
    assert res.target(True) == "no verdict: NOT A MEASUREMENT"
    assert res.verdict_line() == "result: NOT A MEASUREMENT (--quick, 1 round)"
    assert "--quick: NOT A MEASUREMENT" in res.header()[-1]


def test_arguments():
    import argparse

    def parse(*argv):
        ap = argparse.ArgumentParser()
        T.add_arguments(ap)
        a = ap.parse_args(argv)
        T.check_arguments(ap, a)
        return a

    assert parse().rounds == 3 and not parse().quick and parse().max_load == 0.5
    assert parse("--quick").rounds == 1 and parse("--quick", "--rounds", "2").rounds == 2
    assert parse("--rounds", "5").rounds == 5
    with pytest.raises(SystemExit):
        parse("--rounds", "2")


def test_machine_state_reads_this_machine():
    s = T.machine_state()
    assert len(s.load) == 3 and s.cpus >= 1 and 1 <= s.usable <= s.cpus and s.own_s > 0
    if sys.platform.startswith("linux"):
        assert s.busy_s is not None and s.busy_s > 0 and 0 <= s.steal_s <= s.busy_s
    assert T.fmt(187.64) == "187.6" and T.fmt(3.14159) == "3.14" and T.fmt(0.01234) == "0.012"


def test_a_simulation_stopped_halfway_is_not_taken_for_a_whole_session(tmp_path):
    raw, calls = tmp_path / "raw", []

    def stopped(d):
        d.mkdir()
        (d / "s_00001.tif").write_bytes(b"x" * 1000)
        raise KeyboardInterrupt

    def whole(d):
        calls.append(d)
        d.mkdir()
        (d / "s_00001.tif").write_bytes(b"x" * 3_000_000)

    with pytest.raises(KeyboardInterrupt):
        T.simulated(raw, stopped)
    assert not raw.exists()
    assert T.simulated(raw, whole) == 3.0 and (raw / "s_00001.tif").stat().st_size == 3_000_000
    assert T.simulated(raw, whole) == 3.0 and len(calls) == 1  # made once, then reused
    assert not (tmp_path / "raw.partial").exists()


def test_settle_waits_for_the_load_to_fall_and_no_longer_than_its_timeout(monkeypatch):
    loads = iter([2.0, 1.4, 0.9, 0.4, 0.3])
    monkeypatch.setattr(T.os, "getloadavg", lambda: (next(loads),) * 3)
    said = []
    waited = T.settle(0.5, timeout=60, every=0.01, progress=said.append)
    assert 0.02 <= waited < 5 and len(said) == 1 and "0.5" in said[0]
    assert next(loads) == 0.3  # stopped at the first load under 0.5
    monkeypatch.setattr(T.os, "getloadavg", lambda: (3.0, 3.0, 3.0))  # another program keeps it busy
    assert 0.1 <= T.settle(0.5, timeout=0.1, every=0.02) < 2
    monkeypatch.setattr(T.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert T.settle(0.5, timeout=60, every=1) < 0.5


@pytest.mark.parametrize("name", TIMING)
def test_timing_benchmarks_use_the_harness_and_refuse_fewer_than_three_rounds(name):
    assert "import _timing" in (BENCH / f"{name}.py").read_text()
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--rounds", "2"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "at least 3 rounds" in proc.stderr, proc.stderr[-2000:]


#: each timing benchmark in its smallest --quick form
QUICK = {
    "job_overhead": ["--steps", "merge"],
    "shim_gain": ["--steps", "registration"],
    "dag_scale": ["--sessions", "2", "--planes", "2"],
    "binary_write": ["--planes", "2", "--size", "64", "--frames", "120"],
    "end_to_end": ["--planes", "2", "--size", "64", "--frames", "150", "--cells", "5"],
}


#: the quick runs CI makes (about 20, 20 and 70 s here); binary_write's and dag_scale's (74 and
#: 62 s, mostly Snakemake starts) would grow the suite past its budget: the test above checks that
#: they parse their arguments through the harness, and `python benchmarks/<name>.py --quick` runs them
SMOKE = ("job_overhead", "shim_gain", "end_to_end")


@pytest.mark.workflow
@pytest.mark.parametrize("name", SMOKE)
def test_timing_benchmark_quick_run(name, tmp_path):
    out = ["--out", str(tmp_path)] if name in ("dag_scale", "binary_write", "end_to_end") else []
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--quick", *QUICK[name], *out],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "\ndate: " in "\n" + proc.stdout and "command: " in proc.stdout and "load average" in proc.stdout
    assert "result: NOT A MEASUREMENT (--quick, 1 round)" in proc.stdout
    assert "no verdict: NOT A MEASUREMENT" in proc.stdout  # its timing target is not judged


#: the benchmarks of a session's shape (issue 22 items 2 and 3: memory, disk, job counts against the
#: requests), one workflow run each in their --tiny form (about 30 s each here)
SHAPE = {"long_plane": "peak memory per job", "scale": "jobs whose peak is in the band"}


@pytest.mark.workflow
@pytest.mark.parametrize("name", SHAPE)
def test_shape_benchmark_tiny_run(name, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--tiny", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "\ndate: " in "\n" + proc.stdout and "command: " in proc.stdout and "load average" in proc.stdout
    assert "NOT A MEASUREMENT" in proc.stdout and SHAPE[name] in proc.stdout
    assert not any(tmp_path.glob("raw_*")), "the run's data is deleted after it is read"
    if name == "long_plane":  # and the trace steps on the first run's outputs scaled (--traces 40x600)
        table = proc.stdout.split("\ntraces: ")[1].split("\n\n")[0].splitlines()[2:]
        rows = [ln.split() for ln in table]
        assert [r[:3] for r in rows] == [["postprocess", "40", "600"], ["merge", "40", "600"]], proc.stdout[-3000:]
        assert all(0 < float(r[5]) <= float(r[4]) for r in rows)  # private memory is part of the peak

"""The zoo's search machinery (grukit.zoo.tuning) and the keras-tuner internals it needs:
resuming never trains a finished trial again, a distributed search's chief re-queues the
trial of a lost worker (or stops with a resume message) instead of waiting forever.

The ETT tests need $GRUKIT_DATA_DIR/ett/ETTh1.csv. The one distributed search of real
processes (a chief and two workers, one of them SIGKILLed) runs in one pass only
(``once``; its subprocesses run on JAX).
"""
import csv
import inspect
import json
import subprocess
import sys
import time

import pytest

import grukit.zoo as zoo
from grukit.zoo import _tuner_internals as internals
from grukit.zoo import tuning
from conftest import DATA_DIR, REPO, once, one_pass
from test_zoo import TINY, _env, _free_port, needs_data

#: tests without a pass of their own run once, in this pass (conftest.py)
ONE_PASS = one_pass("torch", "jax", "tensorflow", why="zoo behaviour, on one backend")


def test_keras_tuner_internals_are_where_grukit_expects_them():
    """grukit.zoo._tuner_internals serves the chief's oracle with keras-tuner's own gRPC
    servicer. These are not public keras-tuner API: if an upgrade moves or changes them,
    this test names what is gone (update _tuner_internals, not the callers)."""
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    assert inspect.isclass(oracle_chief.OracleServicer)
    assert list(inspect.signature(oracle_chief.OracleServicer).parameters) == ["oracle"]
    assert callable(oracle_chief.exit_chief)
    assert hasattr(protos.get_service_grpc(), "add_OracleServicer_to_server")
    servicer = oracle_chief.OracleServicer.__init__
    assert "stop_triggered" in inspect.getsource(servicer), \
        "OracleServicer no longer sets stop_triggered, which serve_oracle polls"


def _local(monkeypatch):
    """No keras-tuner distribution variables: a single-process search."""
    for key in ("KERASTUNER_ORACLE_IP", "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize("env, chief, member", [
    ({}, False, False),
    ({"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
      "KERASTUNER_TUNER_ID": "chief"}, True, True),
    ({"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
      "KERASTUNER_TUNER_ID": "tuner0"}, False, True),
])
def test_chief_and_worker_roles_follow_keras_tuners_variables(env, chief, member, monkeypatch):
    _local(monkeypatch)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert internals.is_chief() is chief and internals.has_chief() is member
    # the same answers as keras-tuner's own (private) helpers
    from keras_tuner.src.distribute import utils

    assert utils.is_chief_oracle() is chief and utils.has_chief_oracle() is member


def test_a_distributed_search_without_port_or_id_is_named(monkeypatch):
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.delenv("KERASTUNER_ORACLE_PORT", raising=False)
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    with pytest.raises(ValueError, match="KERASTUNER_ORACLE_PORT is not"):
        internals.has_chief()
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    monkeypatch.delenv("KERASTUNER_TUNER_ID")
    with pytest.raises(ValueError, match="KERASTUNER_TUNER_ID is not"):
        internals.is_chief()


# ------------------------------------------------ keras-tuner state the workarounds touch
def _tiny_tuner(tmp_path, cls=None, max_trials=2, name="p"):
    """A keras-tuner tuner over one Choice (no model is ever built or trained here)."""
    import keras_tuner

    def build(hp):
        hp.Choice("units", [1, 2, 3, 4, 5, 6])

    cls = cls or internals.tuner_class(keras_tuner.RandomSearch)
    new = not (tmp_path / name / "tuner0.json").exists()
    tuner = cls(build, objective="val_loss", max_trials=max_trials, seed=0,
                directory=str(tmp_path), project_name=name, overwrite=False)
    if new:
        tuner.save()  # what search() does first: the next one reloads this state
    return tuner


def _finish(oracle, trial, value):
    oracle.update_trial(trial.trial_id, {"val_loss": value})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


def test_keras_tuner_oracle_state_is_what_the_workarounds_expect(tmp_path, monkeypatch):
    """WorkerWatch and keep_finished_trials read and change these Oracle internals
    (ongoing_trials, tuner_ids, _retry_queue, end_order, _run_times, _save_trial) and work
    around keras-tuner 1.4's end_trial saving its state before it stops listing the
    finished trial as running (which reload then queues to run again). If this fails,
    keras-tuner changed: update grukit/zoo/_tuner_internals.py."""
    import keras_tuner

    _local(monkeypatch)
    oracle = _tiny_tuner(tmp_path, cls=keras_tuner.RandomSearch).oracle  # keras-tuner's own
    assert isinstance(oracle.ongoing_trials, dict) and isinstance(oracle.tuner_ids, set)
    assert isinstance(oracle._retry_queue, list) and isinstance(oracle.end_order, list)
    assert oracle._run_times["x"] == 0 and callable(oracle._save_trial)
    trial = oracle.create_trial("tuner0")
    assert oracle.ongoing_trials == {"tuner0": trial} and oracle.tuner_ids == {"tuner0"}
    saved = []
    save = oracle.save
    monkeypatch.setattr(oracle, "save", lambda: saved.append(dict(oracle.ongoing_trials))
                        or save())
    _finish(oracle, trial, 1.0)
    # the state saved by end_trial still lists the finished trial as running ...
    assert saved == [{"tuner0": trial}] and oracle.ongoing_trials == {}
    again = _tiny_tuner(tmp_path, cls=keras_tuner.RandomSearch).oracle
    # ... and a reload queues it to run again (what keep_finished_trials undoes)
    assert again._retry_queue == [trial.trial_id]
    assert again.trials[trial.trial_id].status == "COMPLETED"
    assert again.end_order == [trial.trial_id] and again._run_times[trial.trial_id] == 1


# ------------------------------------------- resuming never runs a finished trial again
def test_reload_keeps_finished_trials_off_the_queue(tmp_path, monkeypatch, capsys,
                                                      cli_log):
    """The saved state lists a trial that had ended (trial.json: COMPLETED) as running,
    here stopped even before end_trial saved the oracle (end_order misses it), and a trial
    waiting for a retry twice: the reload queues the retry once and the interrupted trial,
    and records the finished one as ended once."""
    _local(monkeypatch)
    oracle = _tiny_tuner(tmp_path, max_trials=4).oracle
    oracle.max_retries_per_trial = 1
    done, broken, running = (oracle.create_trial(f"tuner{i}") for i in range(3))
    broken.status, broken.message = "INVALID", "crashed"
    oracle.end_trial(broken)  # saved: queued for a retry, and still listed as running
    monkeypatch.setattr(oracle, "save", lambda: None)  # stopped before oracle.json is saved
    _finish(oracle, done, 1.0)
    monkeypatch.undo()
    capsys.readouterr()
    again = _tiny_tuner(tmp_path, max_trials=4).oracle
    assert f"trial {done.trial_id} had finished before the search stopped" in capsys.readouterr().out
    assert sorted(again._retry_queue) == sorted([broken.trial_id, running.trial_id])
    assert again.end_order == [done.trial_id]  # (a trial sent for a retry has not ended)
    assert again._run_times[done.trial_id] == 1 and again.trials[done.trial_id].score == 1.0
    assert internals.keep_finished_trials(again) == []  # nothing more to take off
    # the resumed search runs the queued trials, then new ones; never the finished one
    runs = [again.create_trial(f"tuner{i}").trial_id for i in range(3)]
    assert sorted(runs[:2]) == sorted([broken.trial_id, running.trial_id])
    assert runs[2] not in (done.trial_id, broken.trial_id, running.trial_id)


@one_pass("torch", "jax", "tensorflow", why="one search is enough")
@needs_data
def test_interrupted_local_search_resumes_without_training_a_finished_trial_again(
        tmp_path, capsys, monkeypatch, cli_log):
    """A search stopped right after keras-tuner recorded a finished trial (before the tuner
    saved again) resumes with the next trial: every trial is trained exactly once."""
    import keras_tuner

    ett = zoo.get("ett-forecasting")
    data = ett.load_data(data_dir=DATA_DIR)
    fixed = {"units": 8, "max_train_windows": 64, "max_val_windows": 64, "variant": "gru",
             "segment": 24}
    hp = ett.hparams(quick=True, overrides=fixed)
    common = dict(tuner="random", max_trials=2, epochs=1, quick=True, fixed=fixed, verbose=0)

    def stopped_after_end_trial(self, trial):
        self.oracle.end_trial(trial)  # keras-tuner records the result and saves its state,
        raise KeyboardInterrupt       # then the search is stopped (Ctrl-C, kill)

    monkeypatch.setattr(keras_tuner.Tuner, "on_trial_end", stopped_after_end_trial)
    with pytest.raises(KeyboardInterrupt):
        ett.tune(hp, data, tmp_path, **common)
    monkeypatch.undo()
    first = capsys.readouterr().out
    assert first.count("trial done") == 1
    rows = ett.tune(hp, data, tmp_path, **common)
    out = capsys.readouterr().out
    assert out.count("trial done") == 1, out  # trial 1 only: trial 0 is not trained again
    assert "Reloading Tuner" in out and "trial 0 had finished before the search stopped" in out
    assert len(rows) == 2 and all(r["status"] == "COMPLETED" for r in rows)
    first_score = float(first.split("val_loss=")[1].split()[0])
    assert next(r for r in rows if r["trial"] == "0")["val_loss"] == pytest.approx(
        first_score, abs=1e-5)


# ------------------------------------------------------ the chief and its lost workers
class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _in_thread(fn, *args, **kwargs):
    """Run ``fn`` in a daemon thread (a hung chief cannot hold up the test run); the
    returned ``result(timeout)`` gives its return value or raises its exception."""
    import threading

    box = {}

    def run():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 -- handed to the test
            box["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result(timeout):
        thread.join(timeout)
        assert not thread.is_alive(), f"{fn.__name__} still running after {timeout} s (hang)"
        if "error" in box:
            raise box["error"]
        return box["value"]

    return result


def _chief_oracle(tmp_path, monkeypatch, max_trials=2, timeout=10):
    _local(monkeypatch)
    oracle = _tiny_tuner(tmp_path, max_trials=max_trials).oracle
    clock = _Clock()
    return oracle, internals.WorkerWatch(oracle, timeout, clock=clock), clock


def test_a_lost_workers_trial_goes_back_to_the_queue_and_runs_on_a_live_worker(
        tmp_path, monkeypatch, capsys, cli_log):
    oracle, watch, clock = _chief_oracle(tmp_path, monkeypatch)
    a, b = oracle.create_trial("tuner0"), oracle.create_trial("tuner1")
    clock.now = 6
    oracle.get_trial(a.trial_id)                        # tuner0's heartbeat
    _finish(oracle, a, 1.0)
    # the search is full (2 trials) but b runs: tuner0 waits instead of leaving
    assert oracle.create_trial("tuner0").status == "IDLE" and "tuner0" in oracle.tuner_ids
    clock.now = 10
    assert watch.reap() == [] and watch.outcome() is None  # tuner1: 10 s, not more
    clock.now = 10.5
    assert watch.reap() == [("tuner1", b.trial_id)]      # silent > 10 s: lost
    assert "its trial 1 is back in the queue" in capsys.readouterr().out
    assert oracle.tuner_ids == {"tuner0"} and oracle._retry_queue == [b.trial_id]
    assert oracle.trials[b.trial_id].status == "INVALID"
    assert "worker tuner1 stopped answering" in oracle.trials[b.trial_id].message
    assert watch.outcome() is None                       # tuner0 is alive
    again = oracle.create_trial("tuner0")
    assert again.trial_id == b.trial_id and again.status == "RUNNING"
    _finish(oracle, again, 2.0)
    assert oracle.create_trial("tuner0").status == "STOPPED"
    assert not oracle.ongoing_trials and not oracle.tuner_ids and not oracle._retry_queue
    # tuner1 was only slow: its late result does not replace the first one
    late = oracle.get_trial(b.trial_id)
    late.status = "COMPLETED"
    oracle.update_trial(b.trial_id, {"val_loss": 0.5})
    oracle.end_trial(late)
    assert oracle.trials[b.trial_id].score == 2.0 and oracle.end_order.count(b.trial_id) == 1
    assert [t.status for t in oracle.trials.values()] == ["COMPLETED", "COMPLETED"]
    assert watch.outcome() == ""  # every worker gone, nothing left: complete


def test_a_late_result_from_a_lost_worker_is_kept_when_nobody_reran_it(tmp_path, monkeypatch):
    oracle, watch, clock = _chief_oracle(tmp_path, monkeypatch)
    a = oracle.create_trial("tuner0")
    clock.now = 11
    assert watch.reap() == [("tuner0", a.trial_id)] and oracle._retry_queue == [a.trial_id]
    _finish(oracle, a, 3.0)  # tuner0 was only slow
    assert oracle._retry_queue == [] and oracle.trials[a.trial_id].status == "COMPLETED"
    assert oracle.trials[a.trial_id].score == 3.0


def test_the_chief_stops_with_a_resume_message_when_no_worker_is_left(tmp_path, monkeypatch):
    oracle, watch, clock = _chief_oracle(tmp_path, monkeypatch, max_trials=3)
    a = oracle.create_trial("tuner0")
    clock.now = 5
    assert watch.outcome() is None  # no worker lost yet: a chief waits for its workers
    clock.now = 11
    watch.reap()
    assert watch.outcome() is None  # a worker may still (re)connect for another 10 s
    clock.now = 20
    oracle.create_trial("tuner1")  # one does: it gets the lost trial
    assert watch.outcome() is None and oracle._retry_queue == []
    clock.now = 31
    watch.reap()
    assert watch.outcome() is None  # alone from now on
    clock.now = 41
    assert watch.outcome() is None
    clock.now = 41.5
    message = watch.outcome()
    assert "no worker is left (lost: tuner0, tuner1)" in message
    assert "Re-run the same commands" in message
    assert f"trial(s) {a.trial_id} queued to run again and 2 trial(s) not started" in message
    oracle.save()
    again = _tiny_tuner(tmp_path, max_trials=3).oracle  # the resumed chief runs it again
    assert again._retry_queue == [a.trial_id] and again.trials[a.trial_id].status == "INVALID"


def test_serve_oracle_ends_when_its_only_worker_is_lost(tmp_path, monkeypatch):
    """The real gRPC service on loopback: a worker takes a trial and goes silent; the chief
    does not wait forever but returns the resume message (hang guard: 600 s)."""
    from keras_tuner.src.distribute import oracle_chief, oracle_client

    oracle = _tiny_tuner(tmp_path).oracle
    port = _free_port()
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    served = _in_thread(internals.serve_oracle, oracle, oracle_chief, period=0.05,
                        worker_timeout=0.3)
    monkeypatch.setattr(oracle_client, "TIMEOUT", 60)  # a worker's request: not 1 h
    trial = oracle_client.OracleClient(oracle).create_trial("tuner0")
    assert trial.status == "RUNNING"
    message = served(timeout=600)
    assert "no worker is left (lost: tuner0)" in message
    state = json.loads((tmp_path / "p" / "oracle.json").read_text())
    assert state["ongoing_trials"] == {} and state["retry_queue"] == [trial.trial_id]


@one_pass("torch", "jax", "tensorflow", why="one search is enough")
@needs_data
def test_a_chief_left_without_workers_writes_the_tables_and_the_search_resumes(
        tmp_path, monkeypatch, capsys, cli_log):
    """tune() as the chief, and a worker (a gRPC client here) that takes a trial and goes
    silent: the chief re-queues it, waits one more timeout for a worker, then writes the
    tables and raises with the resume; re-running (here as one process) trains the queued
    trial, once (hang guard: 600 s)."""
    from keras_tuner.src.distribute import oracle_client

    ett = zoo.get("ett-forecasting")
    data = ett.load_data(data_dir=DATA_DIR)
    fixed = {"units": 8, "max_train_windows": 64, "max_val_windows": 64, "variant": "gru",
             "segment": 24}
    common = dict(tuner="random", max_trials=1, epochs=1, quick=True, fixed=fixed, verbose=0)
    hp = ett.hparams(quick=True, overrides=fixed)
    monkeypatch.setattr(internals, "MIN_WORKER_TIMEOUT", 0.1)  # not minutes, in a test
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(_free_port()))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    chief = _in_thread(ett.tune, hp, data, tmp_path, worker_timeout=0.5, **common)
    monkeypatch.setattr(oracle_client, "TIMEOUT", 60)  # a worker's request: not 1 h
    trial = oracle_client.OracleClient(None).create_trial("tuner0")
    assert trial.status == "RUNNING"
    with pytest.raises(tuning.SearchIncomplete, match=r"no worker is left \(lost: tuner0\) and it has "
                       rf"trial\(s\) {trial.trial_id} queued to run again. Re-run the same "
                       r"commands"):
        chief(timeout=600)
    with open(tmp_path / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["trial"], r["status"], r["val_loss"]) for r in rows] == [
        (trial.trial_id, "INVALID", "")]
    _local(monkeypatch)
    capsys.readouterr()
    rows = ett.tune(hp, data, tmp_path, **common)
    out = capsys.readouterr().out
    assert out.count("trial done") == 1, out
    assert [(r["trial"], r["status"]) for r in rows] == [(trial.trial_id, "COMPLETED")]


def test_heartbeat_asks_for_its_trial_until_stopped():
    calls = []

    class _Oracle:
        def get_trial(self, trial_id):
            calls.append(trial_id)
            if len(calls) == 2:
                raise RuntimeError("the chief is busy")  # not the trial's failure: go on

    beat = internals.Heartbeat(_Oracle(), "7", period=0.01)
    deadline = time.monotonic() + 30
    while len(calls) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    beat.stop()
    beat._thread.join(timeout=30)
    assert not beat._thread.is_alive() and len(calls) >= 4 and set(calls) == {"7"}
    stopped = len(calls)
    time.sleep(0.05)
    assert len(calls) == stopped


@pytest.mark.parametrize("value, env, match", [
    (0, None, "worker_timeout must be a finite number of seconds >= 10"),
    (5, None, "worker_timeout must be"),
    (True, None, "worker_timeout must be"),
    (float("inf"), None, "worker_timeout must be"),
    (None, "soon", "GRUKIT_WORKER_TIMEOUT must be a number of seconds; got 'soon'"),
    (None, "3", r"GRUKIT_WORKER_TIMEOUT must be a finite number of seconds >= 10 .*; got 3.0"),
])
def test_bad_worker_timeouts_are_named(value, env, match, monkeypatch, tmp_path):
    if env is None:
        monkeypatch.delenv("GRUKIT_WORKER_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("GRUKIT_WORKER_TIMEOUT", env)
    ett = zoo.get("ett-forecasting")
    with pytest.raises(ValueError, match=match):
        ett.tune(ett.hparams(quick=True), None, tmp_path, worker_timeout=value)


def test_the_command_reports_an_incomplete_search_as_an_error(monkeypatch, tmp_path, capsys,
                                                             cli_log):
    """`grukit zoo tune` ends an incomplete distributed search with `error: ...` (how to
    resume) and exit status 1, not a traceback."""
    from grukit.__main__ import main

    ett = zoo.get("ett-forecasting")
    message = "no worker is left (lost: tuner0); re-run the same commands to resume"

    def lost(*args, **kwargs):
        raise tuning.SearchIncomplete(message)

    monkeypatch.setattr(type(ett), "load_data", lambda self, **kw: None)
    monkeypatch.setattr(type(ett), "tune", lost)
    assert main(["zoo", "tune", "ett-forecasting", "--quick", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().endswith(
        f"grukit zoo tune ett-forecasting: error: {message}")


def test_worker_timeout_default_and_environment(monkeypatch):
    from grukit.zoo.tuning import _worker_timeout

    monkeypatch.delenv("GRUKIT_WORKER_TIMEOUT", raising=False)
    assert _worker_timeout(None) == internals.DEFAULT_WORKER_TIMEOUT == 120
    monkeypatch.setenv("GRUKIT_WORKER_TIMEOUT", "45")
    assert _worker_timeout(None) == 45.0 and _worker_timeout(30) == 30.0


@once
@needs_data
def test_distributed_search_with_a_worker_sigkilled_on_its_second_trial(tmp_path):
    """A real chief and two workers on loopback (tiny ETT trials; keras-tuner's chief/worker
    protocol): the chief serves the oracle; both workers run trials; the first worker to
    take a second trial is killed with SIGKILL while it holds it. The chief hears nothing
    from it for the worker timeout, queues its trial again, the other worker runs it, and
    the search ends complete: max_trials trials, each trained once to its end, the tables
    and the best configuration written, the chief exited (hang guard: 900 s)."""
    import re
    import signal
    import threading

    port, out, trials = _free_port(), tmp_path / "search", 3
    # the variant and segment are held fixed so that trials share compiled programs
    cmd = [sys.executable, "-m", "grukit", "zoo", "tune", "ett-forecasting", *TINY,
           "--variant", "gru", "--set", "segment=24", "--set", "dropout=0.1",
           "--epochs", "1", "--max-trials", str(trials), "--out", str(out)]
    procs, lines = {}, {}
    for role in ("chief", "tuner0", "tuner1"):
        env = _env("jax", KERASTUNER_TUNER_ID=role, KERASTUNER_ORACLE_IP="127.0.0.1",
                   KERASTUNER_ORACLE_PORT=str(port), GRUKIT_WORKER_TIMEOUT="15")
        procs[role] = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)

    def read(proc, into):
        for line in proc.stdout:
            into.append(line)

    readers = []
    for role, proc in procs.items():
        lines[role] = []
        readers.append(threading.Thread(target=read, args=(proc, lines[role]), daemon=True))
        readers[-1].start()
    deadline = time.monotonic() + 900
    try:
        victim = None
        while victim is None and time.monotonic() < deadline:
            for role in ("tuner0", "tuner1"):
                text = "".join(list(lines[role]))
                held = re.findall(rf"\[{role}\] trial (\d+) running", text)
                if len(held) >= 2 and f"[{role}] trial done" in text:
                    victim, trial_id = role, held[1]
                    break
            if all(procs[r].poll() is not None for r in ("tuner0", "tuner1")):
                break
            time.sleep(0.05)
        assert victim, {r: "".join(lines[r])[-3000:] for r in procs}
        # at once: the trial compiles its programs again (seconds), then trains
        procs[victim].send_signal(signal.SIGKILL)
        for role, proc in procs.items():
            try:
                proc.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{role} still running after 900 s (the search hangs):\n"
                            + "".join(lines[role])[-3000:])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        for reader in readers:
            reader.join(timeout=30)
    outputs = {role: "".join(lines[role]) for role in procs}
    survivor = "tuner1" if victim == "tuner0" else "tuner0"
    assert procs[victim].returncode == -signal.SIGKILL
    # killed mid-trial: its first trial done, not its second
    assert outputs[victim].count(f"[{victim}] trial done") == 1, outputs[victim][-3000:]
    for role in ("chief", survivor):
        assert procs[role].returncode == 0, f"{role} failed:\n{outputs[role][-5000:]}"
    assert "serving the random oracle" in outputs["chief"], outputs["chief"][-5000:]
    assert f"worker {victim} silent for" in outputs["chief"], outputs["chief"][-5000:]
    assert f"its trial {trial_id} is back in the queue" in outputs["chief"]
    assert f"[{survivor}] trial {trial_id} running" in outputs[survivor]  # run again there
    assert outputs[survivor].count(f"[{survivor}] trial done") == trials - 1, \
        outputs[survivor][-5000:]
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == trials and all(r["status"] == "COMPLETED" for r in rows), rows
    assert {"variant", "units", "params", "val_loss", "time_s"} <= set(rows[0])
    assert all(float(r["val_loss"]) > 0 for r in rows)
    assert (out / "best_hparams.json").is_file()
    # the chief saved the final state: nothing listed as running, nothing queued
    state = json.loads((out / "tune" / "random-quick" / "oracle.json").read_text())
    assert state["ongoing_trials"] == {} and state["retry_queue"] == [], state

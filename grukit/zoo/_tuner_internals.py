"""The keras-tuner internals the zoo's search relies on, in one place.

keras-tuner (1.4) has no public API for what these do; each is here with its reason, and
``tests/test_zoo_tuning.py::test_keras_tuner_internals_are_where_grukit_expects_them``
(the chief's gRPC service) and ``::test_keras_tuner_oracle_state_is_what_the_workarounds_expect``
(the oracle's ``ongoing_trials``, ``tuner_ids``, ``_retry_queue``, ``end_order``,
``_run_times``, ``_save_trial``, and the stale state that ``end_trial`` saves) fail loudly
when an upgrade changes them:

* :func:`serve_oracle`: keras-tuner's chief
  (``keras_tuner.src.distribute.oracle_chief.start_server``) re-checks every 20 s
  whether the workers are done; the same gRPC service with a 0.5 s period lets a search
  end promptly (uses ``oracle_chief.OracleServicer``, ``oracle_chief.exit_chief`` and
  ``keras_tuner.src.protos``).
* :class:`WorkerWatch`: keras-tuner's chief waits forever for a worker that died: its
  trial stays in ``oracle.ongoing_trials`` and its id in ``oracle.tuner_ids``, and the
  chief only exits once both are empty. The watch records when each worker was last
  heard from (every request it makes, and the :class:`Heartbeat` a worker sends while it
  trains) and hands the trial of a worker silent for longer than ``worker_timeout`` back
  to the queue (``oracle._retry_queue``), where a live worker picks it up.
* :func:`keep_finished_trials`: keras-tuner's ``Oracle.end_trial`` saves the oracle while
  the finished trial is still in ``ongoing_trials`` and removes it only afterwards;
  ``Oracle.reload`` then queues every "ongoing" trial to run again. A search stopped at
  that moment (always, for a distributed search: the chief does not save again after
  the last trial) re-trained a completed trial on every resume. After a reload the
  trials whose ``trial.json`` records them as ended are taken off the queue.

:func:`has_chief` and :func:`is_chief` read keras-tuner's documented distribution
variables (``KERASTUNER_ORACLE_IP``, ``KERASTUNER_TUNER_ID``) directly.
"""

from __future__ import annotations

import logging
import os
import threading
import time

#: seconds between two signs of life of a worker that is running a trial
HEARTBEAT_S = 2.0
#: default seconds of silence after which the chief takes a worker for lost
DEFAULT_WORKER_TIMEOUT = 120.0
#: the shortest accepted timeout: five heartbeats
MIN_WORKER_TIMEOUT = 5 * HEARTBEAT_S
#: seconds a worker waits before asking again when the chief answers "wait" (IDLE)
IDLE_WAIT_S = 0.5

log = logging.getLogger(__name__)


def has_chief():
    """Whether this process belongs to a distributed search (``KERASTUNER_ORACLE_IP`` set).

    Raises:
        ValueError: ``KERASTUNER_ORACLE_IP`` is set without ``KERASTUNER_ORACLE_PORT`` or
            ``KERASTUNER_TUNER_ID``.

    Example:
        >>> os.environ.pop("KERASTUNER_ORACLE_IP", None); has_chief()
        False
    """
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return False
    for name, what in (("KERASTUNER_ORACLE_PORT", "the chief's port"),
                       ("KERASTUNER_TUNER_ID", "'chief' or a worker id such as 'tuner0'")):
        if not os.environ.get(name):
            raise ValueError(f"KERASTUNER_ORACLE_IP is set (a distributed search) but {name} "
                             f"is not; set it to {what}.")
    return True


def is_chief():
    """Whether this process is a distributed search's chief (``KERASTUNER_TUNER_ID=chief``)."""
    return has_chief() and os.environ.get("KERASTUNER_TUNER_ID") == "chief"


def is_worker():
    """Whether this process is a distributed search's worker (not its chief)."""
    return has_chief() and not is_chief()


def tuner_class(tuner_cls, worker_timeout=DEFAULT_WORKER_TIMEOUT):
    """``tuner_cls`` (a keras-tuner tuner class) made safe to stop, resume and distribute.

    * its state is saved when the search starts (keras-tuner saves it first after a
      trial: a search stopped before that started over on the next run);
    * after a reload, trials that had ended are not run again (:func:`keep_finished_trials`);
    * a chief serves the oracle with :func:`serve_oracle` (a 0.5 s period, and a
      :class:`WorkerWatch` that re-queues the trial of a worker silent for
      ``worker_timeout`` seconds); when every worker is lost with trials left, the
      chief stops and the instance's ``unfinished`` attribute says how to resume;
    * a worker sends a :class:`Heartbeat` while it runs a trial, prints
      ``[ID] trial N running`` when it starts one, and waits ``IDLE_WAIT_S`` between
      two requests while the chief holds it back (other trials are still running: one of
      them may come back to the queue).

    Args:
        tuner_cls: e.g. ``keras_tuner.RandomSearch``.
        worker_timeout: seconds (chief only).

    Example:
        >>> cls = tuner_class(keras_tuner.RandomSearch, worker_timeout=300)
        >>> tuner = cls(hypermodel, objective="val_loss", max_trials=4, directory="runs/s")
    """
    class _Tuner(tuner_cls):
        unfinished = None

        def reload(self):
            super().reload()
            if not is_worker():  # a worker's oracle is the chief's
                role = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
                for trial_id in keep_finished_trials(self.oracle):
                    log.info(f"[{role}] trial {trial_id} had finished before the search "
                             f"stopped: kept, not run again")

        def search(self, *fit_args, **fit_kwargs):
            if is_chief():
                from keras_tuner.src.distribute import oracle_chief

                if "verbose" in fit_kwargs:
                    self.oracle.verbose = fit_kwargs["verbose"]
                self.save()
                self.unfinished = serve_oracle(self.oracle, oracle_chief,
                                               worker_timeout=worker_timeout)
                return
            if is_worker():
                _pace_idle_answers(self.oracle, self.tuner_id)
            # keras-tuner writes TUNER_ID.json, which makes the next run reload the search,
            # only after the first trial: stopped before that, a search started over and
            # ran trial 0 (and its successors) again
            self.save()
            try:
                return super().search(*fit_args, **fit_kwargs)
            finally:
                self._stop_heartbeat()

        def on_trial_begin(self, trial):
            super().on_trial_begin(trial)
            if is_worker():
                log.info(f"[{self.tuner_id}] trial {trial.trial_id} running")
                self._heartbeat = Heartbeat(self.oracle, trial.trial_id)

        def on_trial_end(self, trial):
            self._stop_heartbeat()
            super().on_trial_end(trial)

        def _stop_heartbeat(self):
            beat = self.__dict__.pop("_heartbeat", None)
            if beat is not None:
                beat.stop()

    _Tuner.__name__ = _Tuner.__qualname__ = f"Zoo{tuner_cls.__name__}"
    return _Tuner


def _pace_idle_answers(client, tuner_id):
    """keras-tuner's worker asks again at once when the chief answers IDLE (a busy loop):
    wait ``IDLE_WAIT_S`` first, and say once per wait why."""
    create = client.create_trial
    waiting = [False]

    def create_trial(tuner_id_):
        trial = create(tuner_id_)
        if trial.status == "IDLE":
            if not waiting[0]:
                log.info(f"[{tuner_id}] waiting: trials are still running on other workers "
                         f"(one whose worker is lost comes back to the queue)")
            waiting[0] = True
            time.sleep(IDLE_WAIT_S)
        else:
            waiting[0] = False
        return trial

    client.create_trial = create_trial


class Heartbeat:
    """A worker's sign of life while it runs a trial: every ``period`` seconds a thread
    asks the chief for the trial (``oracle.get_trial``, which changes nothing), so that
    the chief's :class:`WorkerWatch` knows the worker is alive however long the trial
    trains. A failed request is not the trial's failure: the chief's timeout judges.

    Args:
        oracle: the worker's oracle (keras-tuner's ``OracleClient``).
        trial_id: the trial being run.
        period: seconds between two requests.

    Example:
        >>> beat = Heartbeat(tuner.oracle, trial.trial_id); ...; beat.stop()
    """

    def __init__(self, oracle, trial_id, period=HEARTBEAT_S):
        self._stopped = threading.Event()

        def beat():
            while not self._stopped.wait(period):
                try:
                    oracle.get_trial(trial_id)
                except Exception:  # noqa: BLE001 -- the chief's timeout decides, not this
                    pass

        self._thread = threading.Thread(target=beat, daemon=True,
                                        name=f"grukit-heartbeat-{trial_id}")
        self._thread.start()

    def stop(self):
        """Send no more heartbeats (a request in flight finishes on its own)."""
        self._stopped.set()


class WorkerWatch:
    """The chief's record of when it last heard from each worker, and what it does with
    a worker that has gone silent.

    Every request a worker makes counts as contact: ``create_trial`` (with its id), and
    ``get_trial`` / ``update_trial`` / ``end_trial`` (for the worker running that trial,
    which includes its :class:`Heartbeat`). :meth:`reap` takes a worker silent for more
    than ``timeout`` seconds for lost: its running trial is marked ``INVALID`` with the
    reason and queued to run again (not counted as one of the trial's retries), and the
    worker no longer holds up the end of the search. While trials are running, a worker
    that would be told "search over" (``STOPPED``) is told to wait (``IDLE``) instead, so
    that a trial coming back to the queue finds a live worker. A late report from a
    worker taken for lost is kept if the trial had not ended yet (the trial leaves the
    queue) and ignored if it had (the first result stands). When every worker is lost
    with trials left, :meth:`outcome` waits ``timeout`` more seconds for a worker to
    (re)connect, then says the chief should stop, and how to resume.

    Installed on the chief's oracle instance (its ``create_trial``, ``get_trial``,
    ``update_trial`` and ``end_trial``); every change to the oracle happens under
    keras-tuner's oracle lock (``keras_tuner.synchronized``).

    Args:
        oracle: the chief's keras-tuner oracle.
        timeout: seconds of silence after which a worker is taken for lost.
        clock: a monotonic clock (``time.monotonic``).

    Example:
        >>> watch = WorkerWatch(tuner.oracle, timeout=120)
        >>> lost = watch.reap()        # [(worker id, trial id or None), ...]
    """

    def __init__(self, oracle, timeout, clock=time.monotonic):
        import keras_tuner
        from keras_tuner.engine.trial import Trial

        self.oracle, self.timeout, self.clock = oracle, float(timeout), clock
        self.last_seen = {}
        self.lost = []
        self.alone_since = None
        create, get = oracle.create_trial, oracle.get_trial
        update, end = oracle.update_trial, oracle.end_trial
        locked = keras_tuner.synchronized

        @locked
        def created(oracle_, tuner_id):
            self.last_seen[tuner_id] = self.clock()
            trial = create(tuner_id)
            if trial.status == "STOPPED" and oracle_.ongoing_trials:
                oracle_.tuner_ids.add(tuner_id)  # keras-tuner let it go; keep it: wait
                return Trial(oracle_.hyperparameters.copy(), status="IDLE")
            if trial.status == "STOPPED":
                self.last_seen.pop(tuner_id, None)
            return trial

        @locked
        def got(oracle_, trial_id):
            self._heard_about(trial_id)
            return get(trial_id)

        @locked
        def updated(oracle_, trial_id, metrics, step=0):
            self._heard_about(trial_id)
            if trial_id in oracle_.end_order:  # ended: a late report, the first result stands
                return oracle_.trials[trial_id]
            return update(trial_id, metrics, step=step)

        @locked
        def ended(oracle_, trial):
            self._heard_about(trial.trial_id)
            if trial.trial_id in oracle_.end_order:
                log.info(f"[chief] trial {trial.trial_id} had already ended: a late report "
                         f"from a worker taken for lost is ignored")
                return
            running = {t.trial_id for t in oracle_.ongoing_trials.values()}
            if trial.trial_id not in running and trial.trial_id in oracle_._retry_queue:
                oracle_._retry_queue.remove(trial.trial_id)  # the late worker finished it
            return end(trial)

        oracle.create_trial = lambda tuner_id: created(oracle, tuner_id)
        oracle.get_trial = lambda trial_id: got(oracle, trial_id)
        oracle.update_trial = (lambda trial_id, metrics, step=0:
                               updated(oracle, trial_id, metrics, step=step))
        oracle.end_trial = lambda trial: ended(oracle, trial)
        self._reap = locked(_reap)
        self._outcome = locked(_outcome)

    def _heard_about(self, trial_id):
        now = self.clock()
        for tuner_id, trial in self.oracle.ongoing_trials.items():
            if trial.trial_id == trial_id:
                self.last_seen[tuner_id] = now

    def reap(self):
        """Take the workers silent for more than ``timeout`` seconds for lost.

        Returns:
            ``[(worker id, id of the trial put back in the queue, or None), ...]``.
        """
        lost = self._reap(self.oracle, self)
        self.lost += lost
        return lost

    def outcome(self):
        """``None`` while the search goes on (or has no worker yet); once every worker was
        lost with trials left and none came (back) for ``timeout`` seconds, the message
        saying so and how to resume (the chief should stop); ``""`` when the lost workers
        leave a complete search."""
        return self._outcome(self.oracle, self)


def _reap(oracle, watch):
    now = watch.clock()
    lost = []
    for tuner_id in sorted(oracle.tuner_ids):
        silent = now - watch.last_seen.setdefault(tuner_id, now)
        if silent <= watch.timeout:
            continue
        oracle.tuner_ids.discard(tuner_id)
        watch.last_seen.pop(tuner_id, None)
        trial = oracle.ongoing_trials.pop(tuner_id, None)
        if trial is None or trial.trial_id in oracle.end_order:
            lost.append((tuner_id, None))
            log.info(f"[chief] worker {tuner_id} silent for {silent:.0f}s (worker timeout "
                     f"{watch.timeout:g}s): taken for lost")
            continue
        trial.status = "INVALID"
        trial.message = (f"worker {tuner_id} stopped answering (silent for {silent:.0f}s, "
                         f"worker timeout {watch.timeout:g}s); queued to run again")
        if trial.trial_id not in oracle._retry_queue:
            oracle._retry_queue.append(trial.trial_id)
        oracle._save_trial(trial)
        lost.append((tuner_id, trial.trial_id))
        log.info(f"[chief] worker {tuner_id} silent for {silent:.0f}s (worker timeout "
                 f"{watch.timeout:g}s): its trial {trial.trial_id} is back in the queue")
    if lost:
        oracle.save()
    return lost


def _outcome(oracle, watch):
    if not watch.lost or oracle.tuner_ids or oracle.ongoing_trials:
        watch.alone_since = None
        return None
    queued = list(dict.fromkeys(oracle._retry_queue))
    left = oracle.remaining_trials()
    if not queued and (left is None or left <= 0):
        return ""
    now = watch.clock()
    if watch.alone_since is None:
        watch.alone_since = now
    if now - watch.alone_since <= watch.timeout:
        return None  # a worker started late or restarted may still come
    names = ", ".join(sorted({t for t, _ in watch.lost}))
    todo = []
    if queued:
        todo.append(f"trial(s) {', '.join(queued)} queued to run again")
    if left:
        todo.append(f"{left} trial(s) not started")
    return (f"the search stopped before it was complete: no worker is left (lost: "
            f"{names}) and it has {' and '.join(todo)}. Re-run the same commands (the "
            f"chief and its workers, same --out) to resume it; nothing finished is "
            f"run again.")


def keep_finished_trials(oracle):
    """Take off ``oracle``'s retry queue, after ``oracle.reload()``, the trials that had
    ended (``trial.json`` says ``COMPLETED`` with a score, or ``FAILED``).

    ``Oracle.reload`` queues every trial the saved state lists as running; keras-tuner
    saves that state in ``end_trial`` before it removes the finished trial from the
    running ones, so a search stopped then (and every distributed search, whose chief
    saves no more after the last trial) listed a finished trial as running. Its
    ``trial.json`` was written first, with the final status and score: a trial recorded
    as ended is complete and is recorded in ``end_order`` (and counted as run once) if
    the saved state missed that. Duplicate queue entries are dropped too. Trials that
    really were interrupted (``RUNNING``) or wait for a retry (``INVALID``) stay queued.

    Args:
        oracle: a keras-tuner oracle, just reloaded.

    Returns:
        The ids of the trials taken off the queue.

    Example:
        >>> tuner.oracle.reload(); keep_finished_trials(tuner.oracle)
        ['3']
    """
    queue, kept = [], []
    for trial_id in dict.fromkeys(oracle._retry_queue):
        trial = oracle.trials.get(trial_id)
        ended = trial is not None and (trial.status == "FAILED" or (
            trial.status == "COMPLETED" and trial.score is not None))
        if not ended:
            queue.append(trial_id)
            continue
        kept.append(trial_id)
        if trial_id not in oracle.end_order:
            oracle.end_order.append(trial_id)
            oracle._run_times[trial_id] += 1
    oracle._retry_queue[:] = queue
    return kept


def serve_oracle(oracle, oracle_chief, period=0.5, worker_timeout=DEFAULT_WORKER_TIMEOUT):
    """Serve ``oracle`` to the workers (keras-tuner's gRPC service) until the search ends.

    It ends when a worker was told the search is over and no trial is running (keras-tuner's
    rule, checked every ``period`` seconds instead of every 20 s), or when every worker was
    lost (:class:`WorkerWatch`, ``worker_timeout``) with trials left and none connected for
    another ``worker_timeout`` seconds. The oracle is saved
    at the end, with no trial listed as running.

    Args:
        oracle: the chief's keras-tuner oracle.
        oracle_chief: ``keras_tuner.src.distribute.oracle_chief``.
        period: seconds between two checks.
        worker_timeout: seconds of silence after which a worker is taken for lost.

    Returns:
        ``None`` when the search is complete; else a message saying what is left and how
        to resume.

    Raises:
        RuntimeError: the address in ``KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT`` cannot
            be listened on.
    """
    import grpc
    from concurrent import futures

    import keras_tuner
    from keras_tuner.src import protos

    watch = WorkerWatch(oracle, worker_timeout)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    if not server.add_insecure_port(address):
        raise RuntimeError(f"the keras-tuner chief cannot listen on {address}")
    server.start()
    unfinished = None
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            watch.reap()
            outcome = watch.outcome()
            if outcome is not None:
                unfinished = outcome or None
                break
            time.sleep(period)
    finally:
        server.stop(grace=1).wait()
        keras_tuner.synchronized(lambda oracle_: oracle_.save())(oracle)
    if unfinished:
        log.info(f"[chief] {unfinished}")
    return unfinished

"""The keras-tuner internals the zoo's search relies on, in one place.

keras-tuner (1.4) has no public API for what these do; each is here with its reason, and
``tests/test_zoo_tuning.py::test_keras_tuner_internals_are_where_grukit_expects_them``
fails loudly when an upgrade moves them:

* :func:`fast_chief` / :func:`serve_oracle`: keras-tuner's chief
  (``keras_tuner.src.distribute.oracle_chief.start_server``) re-checks every 20 s
  whether the workers are done; the same gRPC service with a 0.5 s period lets a search
  end promptly (uses ``oracle_chief.OracleServicer``, ``oracle_chief.exit_chief`` and
  ``keras_tuner.src.protos``).

:func:`has_chief` and :func:`is_chief` read keras-tuner's documented distribution
variables (``KERASTUNER_ORACLE_IP``, ``KERASTUNER_TUNER_ID``) directly.
"""

from __future__ import annotations

import os
import time


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


def fast_chief(tuner_cls):
    """``tuner_cls`` whose chief polls for the end of the search every 0.5 s.

    keras-tuner's chief (``oracle_chief.start_server``) re-checks every 20 s
    whether the workers are done; this is the same loop with a short period,
    so that the chief exits promptly once the last worker has finished."""

    class _Tuner(tuner_cls):
        def search(self, *fit_args, **fit_kwargs):
            if not is_chief():
                return super().search(*fit_args, **fit_kwargs)
            try:
                from keras_tuner.src.distribute import oracle_chief
            except ImportError:  # pragma: no cover
                return super().search(*fit_args, **fit_kwargs)
            if "verbose" in fit_kwargs:
                self.oracle.verbose = fit_kwargs["verbose"]
            self.save()
            serve_oracle(self.oracle, oracle_chief)

    _Tuner.__name__ = _Tuner.__qualname__ = f"Zoo{tuner_cls.__name__}"
    return _Tuner


def serve_oracle(oracle, oracle_chief, period=0.5):
    import grpc
    from concurrent import futures

    from keras_tuner.src import protos

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    if not server.add_insecure_port(address):
        raise RuntimeError(f"the keras-tuner chief cannot listen on {address}")
    server.start()
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(period)
    finally:
        server.stop(grace=1)

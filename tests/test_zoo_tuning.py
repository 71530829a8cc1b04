"""The zoo's search machinery (grukit.zoo.tuning) and the keras-tuner internals it needs."""
import inspect

import pytest

from grukit.zoo import _tuner_internals as internals


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


@pytest.mark.parametrize("env, chief, member", [
    ({}, False, False),
    ({"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
      "KERASTUNER_TUNER_ID": "chief"}, True, True),
    ({"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
      "KERASTUNER_TUNER_ID": "tuner0"}, False, True),
])
def test_chief_and_worker_roles_follow_keras_tuners_variables(env, chief, member, monkeypatch):
    for key in ("KERASTUNER_ORACLE_IP", "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(key, raising=False)
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

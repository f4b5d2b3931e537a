"""`report_to: [tensorboard, wandb, mlflow]`: W&B offline and a local MLflow store get metrics, config and samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textgym.app.config import ConfigError, parse_config
from textgym.app.trackers import normalize_report_to

RAW = {"name": "t", "model": "tiny-char", "env": {"id": "textgym/TokenCount-v0", "num_envs": 4,
                                                  "kwargs": {"max_new_tokens": 4}},
       "algo": {"minibatch_size": 4, "n_epochs": 1, "log_samples": 0}, "train": {"iterations": 2},
       "eval": {"n_episodes": 2, "num_samples": 2}, "plots": False}


def test_report_to_is_validated():
    assert normalize_report_to("wandb") == {"wandb": {}}
    assert normalize_report_to({"mlflow": {"experiment": "x"}}) == {"mlflow": {"experiment": "x"}}
    assert normalize_report_to("none") == {}
    with pytest.raises(ConfigError, match="unknown tracker 'wandbb'"):
        parse_config({**RAW, "report_to": ["wandbb"]})
    cfg = parse_config({**RAW, "report_to": ["mlflow"]} if _has("mlflow") else RAW)
    assert cfg.algo.tensorboard is (not _has("mlflow"))  # no tensorboard in report_to: none written


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def wandb_records(path):
    """The protobuf records of an offline ``.wandb`` file (LevelDB log format: a 7-byte file header, 32 KiB
    blocks of chunks, each with a 7-byte header: crc32, length, type 1 full / 2 first / 3 middle / 4 last)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    raw, pos, block, buf = Path(path).read_bytes(), 7, 32768, b""
    assert raw[:4] == b":W&B"
    while pos + 7 <= len(raw):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", raw[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (length == 0 and kind == 0):  # block trailer / padding
            pos += left
            continue
        buf += raw[pos + 7: pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(buf)
            buf = b""
            yield rec


@pytest.fixture
def wandb_teardown():
    """W&B keeps a service process (wandb-core) alive for later runs of the same Python process: stop it."""
    wandb = pytest.importorskip("wandb")
    yield
    wandb.teardown()


def test_wandb_offline_and_mlflow_local(tmp_path, monkeypatch, wandb_teardown):
    mlflow = pytest.importorskip("mlflow")
    from textgym.app.pipeline import train

    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = parse_config({**RAW, "report_to": ["tensorboard", "wandb", "mlflow"]})
    res = train(cfg, tmp_path / "runs")
    state = json.loads((res.run_dir / "run_state.json").read_text())
    # W&B: an offline run in the run folder, with the config, per-iteration metrics and the sample tables
    offline = list((res.run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and offline[0].name.endswith(state["wandb_id"])
    api_free = offline[0] / f"run-{state['wandb_id']}.wandb"
    assert api_free.is_file() and api_free.stat().st_size > 0
    assert list((res.run_dir / "tb").glob("events.*"))  # TensorBoard still on
    keys, config_keys = set(), set()
    for rec in wandb_records(api_free):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            keys |= {item.key or "/".join(item.nested_key) for item in rec.history.item}
        elif kind in ("config", "run"):
            update = rec.config.update if kind == "config" else rec.run.config.update
            config_keys |= {item.key for item in update}
    assert len(list(offline[0].glob("files/media/table/samples_after_*.table.json"))) == 1
    assert {"reward/score", "eval_before/score_mean", "eval_after/score_mean", "samples_after/_type"} <= keys
    assert {"algo", "env", "model"} <= config_keys
    # MLflow: the local SQLite store beside the run folders
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    run = client.get_run(state["mlflow_id"])
    assert run.data.params["env.id"] == "textgym/TokenCount-v0" and run.data.params["algorithm"] == "ppo"
    history = client.get_metric_history(run.info.run_id, "reward/score")
    assert [m.step for m in history] == [1, 2]
    assert "eval_after/score_mean" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "samples_after.json"} <= artifacts
    assert run.info.status == "FINISHED"

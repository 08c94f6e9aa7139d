"""The optional experiment trackers (sedjax.train.trackers): the scalar series a metrics.jsonl record
becomes, the ``logger`` check, and what TensorBoard / W&B really store, read back from their files
(TensorBoard's event file framed by hand, W&B's offline transaction log) without training."""

from __future__ import annotations

import json
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from google.protobuf.message import DecodeError

from sedjax.train.config import compose_config
from sedjax.train.metrics import chunk_record
from sedjax.train.trackers import Trackers, check_loggers, flatten_record, make_trackers

NAN, INF = float("nan"), float("inf")


# ----------------------------------------------------------------------------- flatten_record
def test_flatten_record_worked_example():
    rec = {
        "chunk": 3, "num_chunks": 10, "env_steps": 4000,
        "objective": 1.5, "sps": 1200, "voted": True,
        "tax_rates": [0.1, 0.2, 0.3],
        "objective_per_seed": [1.0, 2.0],
        "tax_rates_per_seed": [[0.1, 0.2, 0.3], [0.4, NAN, 0.6]],
        "equality": NAN, "equality_per_seed": [0.5, NAN],
        "zero_income_share": INF, "apples_alive": None, "note": "text",
        "agents/value_loss": 0.25, "principal/entropy": [0.7, NAN],
    }
    assert flatten_record(rec) == {
        "objective": 1.5, "sps": 1200.0, "voted": 1.0,
        "tax_rates/0": 0.1, "tax_rates/1": 0.2, "tax_rates/2": 0.3,
        "objective/seed_0": 1.0, "objective/seed_1": 2.0,
        "tax_rates/seed_0/0": 0.1, "tax_rates/seed_0/1": 0.2, "tax_rates/seed_0/2": 0.3,
        "tax_rates/seed_1/0": 0.4, "tax_rates/seed_1/2": 0.6,
        "equality/seed_0": 0.5,
        "agents/value_loss": 0.25, "principal/entropy/0": 0.7,
    }
    assert all(type(v) is float for v in flatten_record(rec).values())


def test_flatten_record_of_a_real_chunk_record():
    # 2 seeds x 2 iterations, 3 brackets, 4 agents; seed 1 never earns (equality NaN for it).
    metrics = {
        "objective": np.array([[1.0, 3.0], [5.0, 7.0]]),
        "tax_rates": np.array([[[0.0, 0.5, 1.0]] * 2, [[1.0, 0.5, 0.0]] * 2]),
        "income": np.arange(16, dtype=np.float64).reshape(2, 2, 4),
        "agents/value_loss": np.array([[0.5, 0.5], [1.5, 1.5]]),
        "ratio/equality/num": np.array([[1.0, 0.5], [0.0, 0.0]]),
        "ratio/equality/den": np.array([[1.0, 1.0], [0.0, 0.0]]),
    }
    rec = chunk_record(metrics, chunk=0, num_chunks=5, env_steps=800, num_agents=4, round_len=100)
    flat = flatten_record(rec)
    assert flat["objective"] == 4.0
    assert (flat["objective/seed_0"], flat["objective/seed_1"]) == (2.0, 6.0)
    assert [flat[f"tax_rates/{b}"] for b in range(3)] == [0.5, 0.5, 0.5]
    assert [flat[f"tax_rates/seed_1/{b}"] for b in range(3)] == [1.0, 0.5, 0.0]
    assert flat["mean_tax_rate/seed_0"] == 0.5
    assert [flat[f"income/{i}"] for i in range(4)] == [6.0, 7.0, 8.0, 9.0]
    assert flat["agents/value_loss"] == 1.0
    assert flat["equality/seed_0"] == 0.75 and "equality/seed_1" not in flat and "equality" not in flat
    assert not {"chunk", "num_chunks", "env_steps"} & set(flat)
    assert not any(k.endswith("_per_seed") or "_per_seed/" in k for k in flat)


# ----------------------------------------------------------------------------- the logger setting
def test_check_loggers():
    assert check_loggers(compose_config([])) == ["jsonl"]
    assert check_loggers(compose_config(["logger=[jsonl,tensorboard,wandb,tensorboard]"])) == [
        "jsonl", "tensorboard", "wandb"]
    assert check_loggers(compose_config(["logger=tensorboard"])) == ["tensorboard"]
    assert check_loggers(compose_config(["logger=[]"])) == []
    with pytest.raises(ValueError, match=r"^logger: unknown logger 'foo'"):
        check_loggers(compose_config(["logger=[jsonl,foo]"]))
    with pytest.raises(ValueError, match=r"^logger must be a list"):
        check_loggers(compose_config(["logger=3"]))
    with pytest.raises(ValueError, match=r"^wandb\.mode"):
        check_loggers(compose_config(["logger=[wandb]", "wandb.mode=cloud"]))
    with pytest.raises(ValueError, match=r"^logger: unknown"):
        make_trackers(compose_config(["logger=[jsonl,foo]"]), "/nonexistent")


def test_default_logger_opens_and_imports_nothing(tmp_path, monkeypatch):
    # A tracker library that cannot be imported (None in sys.modules) breaks any import of it.
    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    for cfg in (compose_config([]), {"logger": None}, {}):
        with make_trackers(cfg, tmp_path) as t:
            assert not t.active and t.tb_writer is None and t.wandb_run is None
            t.log({"env_steps": 1, "objective": 1.0})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ImportError, match=r'logger=tensorboard needs the tensorboardX package: pip install "sedjax\[trackers\]"'):
        make_trackers({"logger": ["jsonl", "tensorboard"]}, tmp_path)
    with pytest.raises(ImportError, match=r'logger=wandb needs the wandb package: pip install "sedjax\[trackers\]"'):
        make_trackers({"logger": ["wandb"]}, tmp_path)


# ----------------------------------------------------------------------------- TensorBoard
def _tfrecords(path: Path):
    """The payloads of a TFRecord file (8-byte length, its masked crc32c, data, the data's crc)."""
    from tensorboardX.record_writer import masked_crc32c

    data, pos = path.read_bytes(), 0
    while pos < len(data):
        header = data[pos:pos + 8]
        (n,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[pos + 8:pos + 12])[0] == masked_crc32c(header)
        payload = data[pos + 12:pos + 12 + n]
        assert struct.unpack("<I", data[pos + 12 + n:pos + 16 + n])[0] == masked_crc32c(payload)
        pos += 16 + n
        yield payload


def _tb_scalars(logdir: Path) -> dict[tuple[str, int], float]:
    from tensorboardX.proto.event_pb2 import Event

    out = {}
    files = sorted(logdir.glob("events.out.tfevents.*"))
    assert files, f"no event file in {logdir}"
    for f in files:
        for payload in _tfrecords(f):
            ev = Event.FromString(payload)
            for v in ev.summary.value:
                assert (v.tag, ev.step) not in out, f"{v.tag} logged twice at step {ev.step}"
                out[(v.tag, ev.step)] = v.simple_value
    return out


def _records(offset: float = 0.0):
    return [{"chunk": c, "num_chunks": 3, "env_steps": 1000 * (c + 1), "objective": offset + 1.0 + c,
             "objective_per_seed": [offset + 0.5 + c, offset + 1.5 + c], "tax_rates": [0.1 * c, 0.2],
             "equality": NAN if c == 1 else 0.9, "agents/value_loss": 2.0 ** -c, "sps": 123.0}
            for c in range(3)]


def test_tensorboard_event_file_holds_the_records(tmp_path):
    cfg = compose_config(["logger=[jsonl,tensorboard]"])
    recs = _records()
    with make_trackers(cfg, tmp_path, name="tb") as t:
        assert t.tb_writer is not None and t.wandb_run is None
        for r in recs:
            t.log(r)
    expected = {(tag, r["env_steps"]): np.float32(v) for r in recs for tag, v in flatten_record(r).items()}
    got = _tb_scalars(tmp_path / "tensorboard")
    assert got == expected
    assert ("equality", 2000) not in got and ("equality", 3000) in got
    assert ("objective/seed_1", 3000) in got and ("tax_rates/0", 2000) in got
    assert "tensorflow" not in sys.modules and "torch" not in sys.modules


def test_disabled_trackers_write_nothing(tmp_path):
    cfg = compose_config(["logger=[jsonl,tensorboard,wandb]", "wandb.mode=offline"])
    t = make_trackers(cfg, tmp_path, enabled=False)
    assert isinstance(t, Trackers) and not t.active
    t.log(_records()[0])
    t.close()
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- W&B (offline)
def _wandb_log_records(path: Path):
    """The protobuf Records of an offline run's ``run-<id>.wandb`` (W&B's LevelDB-style log: a 7-byte
    header, then 32 KiB blocks of chunks, each crc (4), length (2, LE), type (1: full, 2-4: first,
    middle, last), data)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    pos, block, parts = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind in (1, 4):
            yield pb.Record.FromString(parts + chunk if kind == 4 else chunk)
            parts = b""
        elif kind in (2, 3):
            parts += chunk


def _wandb_run_file(run_dir: Path, run_id: str) -> Path:
    files = sorted((run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert files, f"no offline W&B run {run_id} under {run_dir}"
    return files[-1]


def _finished_log(path: Path, timeout: float = 30.0) -> list:
    """The records of a finished run's log. ``run.finish()`` can return before wandb-core has
    written the file out (seen: a 7-byte file for ~10 ms), so wait for its ``exit`` record."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            recs = list(_wandb_log_records(path))
            if any(r.WhichOneof("record_type") == "exit" for r in recs):
                return recs
        except (OSError, AssertionError, struct.error, ValueError, DecodeError):  # still being written
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} has no exit record after {timeout} s")
        time.sleep(0.02)


def _history(path: Path) -> list[dict]:
    rows = []
    for r in _finished_log(path):
        if r.WhichOneof("record_type") == "history":
            row = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
            rows.append({k: v for k, v in row.items() if not k.startswith("_")})
    return rows


def _run_record(path: Path):
    for r in _finished_log(path):
        if r.WhichOneof("record_type") == "run":
            return r.run
    raise AssertionError(f"no run record in {path}")


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    home = tmp_path / "wandb-home"
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(home))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    for var in ("WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_wandb_offline_runs_hold_the_records(offline_wandb):
    """Two configurations of a sweep open two W&B runs at once (as loop.run does), each with its own
    records and config; a resumed run (train.resume=true) continues under the same run id."""
    tmp = offline_wandb
    cfg = compose_config(["logger=[jsonl,wandb]", "wandb.mode=offline", "wandb.group=g", "wandb.tags=[a,b]"])
    dirs = [tmp / "sweep" / str(k) for k in range(2)]
    recs = [_records(offset=10.0 * k) for k in range(2)]
    trackers = [make_trackers(cfg, d, name=f"config-{k}", config_dict={"sweep_index": k, "agents": {"lr": 1e-4 * (k + 1)}})
                for k, d in enumerate(dirs)]
    try:
        runs = [t.wandb_run for t in trackers]
        assert runs[0] is not None and runs[1] is not None and runs[0].id != runs[1].id
        for c in range(3):
            for t, r in zip(trackers, recs):
                t.log(r[c])
        for run, r in zip(runs, recs):  # the last record, as the runs hold it
            summary = dict(run.summary)
            for key, v in flatten_record(r[-1]).items():
                assert summary[key] == pytest.approx(v), key
            assert summary["env_steps"] == 3000
    finally:
        for t in trackers:
            t.close()
    for k, (d, run, r) in enumerate(zip(dirs, runs, recs)):
        path = _wandb_run_file(d, run.id)
        assert _history(path) == [{**flatten_record(x), "env_steps": x["env_steps"]} for x in r]
        meta = _run_record(path)
        config = {u.key: json.loads(u.value_json) for u in meta.config.update}
        assert config["sweep_index"] == k and config["agents"] == {"lr": pytest.approx(1e-4 * (k + 1))}
        assert (meta.display_name, meta.run_group, list(meta.tags)) == (f"config-{k}", "g", ["a", "b"])
        assert (d / "wandb-run-id.txt").read_text().strip() == run.id

    resumed_cfg = compose_config(["logger=[wandb]", "wandb.mode=offline", "train.resume=true"])
    with make_trackers(resumed_cfg, dirs[0]) as t:
        assert t.wandb_run.id == runs[0].id
        t.log({"env_steps": 4000, "objective": 42.0})
        resumed_file = Path(t.wandb_run.dir).parent / f"run-{runs[0].id}.wandb"
    assert _history(resumed_file)[-1] == {"env_steps": 4000, "objective": 42.0}
    fresh = compose_config(["logger=[wandb]", "wandb.mode=offline"])
    with make_trackers(fresh, dirs[1]) as t:
        assert t.wandb_run.id != runs[1].id  # train.resume=false: a new run


def test_a_training_run_feeds_tensorboard(tmp_path):
    """Through sedjax.train.loop.run: the event file holds every chunk's records of metrics.jsonl,
    at their env_steps, per-seed series included."""
    from test_run import TINY

    from sedjax.train.metrics import read_metrics
    from sedjax.train.loop import run

    out = tmp_path / "run"
    run(compose_config(TINY + ["train.plots=false", "train.checkpoint=false", "logger=[jsonl,tensorboard]"]),
        out, verbose=False)
    records = read_metrics(out)
    scalars = _tb_scalars(out / "tensorboard")
    assert len(records) == 2
    for rec in records:
        flat = flatten_record(rec)
        assert "objective/seed_1" in flat
        for tag, value in flat.items():
            assert scalars[(tag, rec["env_steps"])] == pytest.approx(value, rel=1e-6), tag

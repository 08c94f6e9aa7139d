"""Held-out populations: ``sedjax-eval <run> --agents-from <other run>`` (:mod:`sedjax.train.evaluate`).

Two tiny runs are trained once for the module: ``A`` under a fixed schedule ``R`` and ``B`` under
no tax (a fixed schedule of zeros, with a large agents' learning rate: only traced settings differ,
so ``B`` reuses ``A``'s compiled trainer), with different seeds, hence different agents and types. The evaluations share
the period program through a persistent compilation cache in a temporary folder (every one plays
the same game, 2 episodes), so most of them compile nothing.
"""

from __future__ import annotations

import shutil

import jax
import numpy as np
import pytest
from omegaconf import OmegaConf

from sedjax.config import compose_config
from sedjax.train.evaluate import (LoadedRun, agents_fit_differences, check_params_fit, evaluate, load_run, main,
                                   make_reset, read_run_config)
from sedjax.train.program import make_train
from sedjax.train.run import run

TINY = [
    "env.map=procedural", "env.num_agents=2", "env.rounds_per_episode=1", "env.view_ahead=3",
    "env.view_behind=0", "env.view_side=1", "tax.period_len=50", "voting.periods_per_round=2",
    "agents.network=mlp", "agents.hidden=16", "agents.epochs=1", "agents.minibatches=1",
    "principal.hidden=16", "principal.epochs=1", "principal.minibatches=1", "principal.update_every=1",
    "train.num_envs=2", "train.rollout_len=50", "train.total_env_steps=100", "train.chunks=1",
    "train.plots=false", "train.compilation_cache=false", "principal=fixed",
]
R = [0.2, 0.5, 0.9]
EP = {"episodes": 2, "gif_steps": 0, "verbose": False}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, compile_cache):
    root = tmp_path_factory.mktemp("held_out")
    rates = ",".join(str(r) for r in R)
    run(compose_config(TINY + [f"principal.rates=[{rates}]", "seed=1"]), root / "A", verbose=False)
    # B's agents take one big step (a traced setting: same compiled trainer), so that after so
    # little training they act unlike A's (near their initialisation, both act almost uniformly).
    run(compose_config(TINY + ["principal.rates=[0,0,0]", "seed=2", "agents.lr=0.1"]), root / "B", verbose=False)
    plain = evaluate(root / "A", out_dir=root / "eval_A", **EP)  # A's own agents (and types)
    return {"A": root / "A", "B": root / "B", "root": root, "plain": plain}


def read(path) -> str:
    return (path / "eval.csv").read_text()


def body(path) -> np.ndarray:
    return np.asarray([r.split(",") for r in read(path).splitlines()[1:]], np.float64)


def test_agents_from_itself_is_plain_evaluate(runs, tmp_path):
    s = evaluate(runs["A"], agents_from=runs["A"], out_dir=tmp_path, **EP)
    assert read(tmp_path) == read(runs["root"] / "eval_A")
    assert s["agents_from"] == s["principal_from"] == str(runs["A"]) and s["agents_game_differences"] == []
    assert s["population"] == runs["plain"]["population"]


def test_reset_is_the_trainers(runs):
    """The episodes' reset (one population, or a draw per episode with types.per_env=true) is the
    trainer's ``reset_envs``, key for key, when the types come from the run itself."""
    a = load_run(runs["A"])
    key = jax.random.key(3)
    pop = (a.runner.env_state.sigma[0], a.runner.env_state.beta[0])
    reset, population = make_reset(a.program, a)
    for x, y in zip(jax.tree.leaves(jax.jit(reset, static_argnums=1)(key, 2, population)),
                    jax.tree.leaves(jax.jit(a.program.reset_envs, static_argnums=1)(key, 2, pop))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    cfg = OmegaConf.merge(a.cfg, OmegaConf.from_dotlist(["types.per_env=true"]))
    program = make_train(cfg)
    reset, population = make_reset(program, LoadedRun(runs["A"], cfg, program, None, {}, 0))
    assert population is None
    mine, trainers = jax.jit(reset, static_argnums=1)(key, 2), jax.jit(program.reset_envs, static_argnums=1)(key, 2)
    for x, y in zip(jax.tree.leaves(mine), jax.tree.leaves(trainers)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    sigma = np.asarray(mine[1].sigma)
    assert not np.array_equal(sigma[0], sigma[1])  # a draw per episode


def test_held_out_agents_are_the_other_run_under_the_schedule(runs, tmp_path):
    """A's Principal (fixed R) with B's agents and types = B's run with --rates R: both are B's agents
    under R. And B's Principal (no tax) under --rates R with A's agents = A itself."""
    held = evaluate(runs["A"], agents_from=runs["B"], out_dir=tmp_path / "held", **EP)
    ref = evaluate(runs["B"], rates=R, out_dir=tmp_path / "ref", **EP)
    assert read(tmp_path / "held") == read(tmp_path / "ref")
    b = load_run(runs["B"])
    assert held["population"] == [np.asarray(b.runner.env_state.sigma[0]).tolist(),
                                  np.asarray(b.runner.env_state.beta[0]).tolist()] == ref["population"]
    assert held["agents_from"] == str(runs["B"]) and held["types_from"] == str(runs["B"])
    assert held["agents_game_differences"] == []  # the same game, another Principal
    # --rates composes with --agents-from.
    evaluate(runs["B"], rates=R, agents_from=runs["A"], out_dir=tmp_path / "back", **EP)
    assert read(tmp_path / "back") == read(runs["root"] / "eval_A")


def test_other_agents_play_differently(runs, tmp_path):
    own = body(runs["root"] / "eval_A")
    held = evaluate(runs["A"], agents_from=runs["B"], out_dir=tmp_path / "agents", **EP)
    mixed = evaluate(runs["A"], agents_from=runs["B"], types_from="principal", out_dir=tmp_path / "principal", **EP)
    raw = slice(5, 7)  # raw apples of the 2 agents (after episode, period, 3 rates)
    np.testing.assert_array_equal(own[:, 2:5], np.tile(R, (len(own), 1)))  # the same Principal throughout
    assert not np.array_equal(body(tmp_path / "agents")[:, raw], own[:, raw])
    assert not np.array_equal(body(tmp_path / "principal")[:, raw], own[:, raw])  # B's agents, A's types
    assert mixed["population"] == runs["plain"]["population"] != held["population"]
    assert mixed["types_from"] == str(runs["A"])
    with pytest.raises(ValueError, match="--types-from"):
        evaluate(runs["A"], agents_from=runs["B"], types_from="both", out_dir=tmp_path, **EP)


def _variant(runs, tmp_path, name, overrides, checkpoint=False):
    """A copy of B's run folder whose config.yaml has ``overrides`` (its checkpoint only if asked)."""
    d = tmp_path / name
    d.mkdir()
    cfg = OmegaConf.merge(read_run_config(runs["B"]), OmegaConf.from_dotlist(overrides))
    OmegaConf.save(cfg, d / "config.yaml")
    if checkpoint:
        shutil.copytree(runs["B"] / "checkpoint", d / "checkpoint")
    return d


@pytest.mark.parametrize("overrides, keys", [
    (["env.num_agents=3"], ["env.num_agents: 2 (Principal's run) vs 3 (agents' run)"]),
    (["agents.hidden=32"], ["agents.hidden: 16 (Principal's run) vs 32 (agents' run)"]),
    (["agents.network=cnn", "env.zap=true"], ["agents.network: 'mlp'", "env.zap: False", "action count"]),
    (["env.view_ahead=5"], ["env.view_ahead: 3", "observation shape"]),
    (["tax.thresholds=[0,10]"], ["number of brackets", "mechanism observation size"]),
    (["types.per_env=true"], ["agents.use_types (resolved): False (Principal's run) vs True (agents' run)"]),
])
def test_incompatible_agents_raise_before_loading(runs, tmp_path, overrides, keys):
    bad = _variant(runs, tmp_path, "bad", overrides)  # no checkpoint: a ValueError means it stopped before
    with pytest.raises(ValueError, match="do not fit the game") as e:
        evaluate(runs["A"], agents_from=bad, out_dir=tmp_path / "out", **EP)
    for k in keys:
        assert k in str(e.value), str(e.value)
    assert not (tmp_path / "out").exists()


def test_fit_checks_without_compiling(runs):
    a = read_run_config(runs["A"])
    assert agents_fit_differences(a, read_run_config(runs["B"])) == []
    # Without observing the mechanism the agents do not see the brackets: their number may differ.
    blind = OmegaConf.merge(a, OmegaConf.from_dotlist(["agents.observe_mechanism=false"]))
    two_brackets = OmegaConf.merge(blind, OmegaConf.from_dotlist(["tax.thresholds=[0,10]"]))
    assert agents_fit_differences(blind, two_brackets) == []
    # The parameter check (against the Principal's game's agent network).
    like = {"params": {"Dense_0": {"kernel": np.zeros((4, 16)), "bias": np.zeros(16)}}}
    check_params_fit(like, jax.tree.map(np.ones_like, like))
    with pytest.raises(ValueError, match=r"kernel.*\(4, 32\) \(agents' run\) vs \(4, 16\)"):
        check_params_fit(like, {"params": {"Dense_0": {"kernel": np.zeros((4, 32)), "bias": np.zeros(16)}}})
    with pytest.raises(ValueError, match="missing.*Dense_1"):
        check_params_fit({"params": {**like["params"], "Dense_1": {"bias": np.zeros(2)}}}, like)


def test_cli(runs, tmp_path, capsys):
    # Agents trained in another game (other regrowth probabilities: the network fits, the game differs).
    other = _variant(runs, tmp_path, "other", ["env.regrowth_probs=[0.0,0.01,0.02,0.05]"], checkpoint=True)
    out = tmp_path / "out"
    rc = main([str(runs["A"]), "--agents-from", str(other), "--episodes", "2", "--gif-steps", "0",
               "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and (out / "eval.csv").exists()
    assert f"agents of {other}" in text and "principal=fixed" in text and f"types of {other}" in text
    assert "differs in: env.regrowth_probs" in text
    assert body(out).shape == (4, 2 + 3 + 2 + 2 + 2)
    for args, msg in (([str(tmp_path / "nowhere")], "config.yaml"),
                      ([str(runs["B"]), "--agents-train-seed", "1"], "--agents-train-seed must be in [0, 1)"),
                      ([str(_variant(runs, tmp_path, "small", ["agents.hidden=8"]))], "agents.hidden")):
        assert main([str(runs["A"]), "--gif-steps", "0", "--out", str(out), "--agents-from", *args]) == 2
        err = capsys.readouterr().err
        assert msg in err, err

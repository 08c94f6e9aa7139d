"""The tiny run of the forced-device and multi-process tests (tests/test_mesh.py,
tests/test_multihost.py): both learners (PPO agents and a PPO Principal), 2 seeds, 2 chunks, on
the smallest world that still has taxes, votes and an env batch to split (8 envs). Small networks
and one PPO epoch keep its compiles short: those tests compile in child processes."""

SHARDED = [
    "env.map=procedural", "env.num_agents=3", "env.rounds_per_episode=1", "env.view_ahead=3",
    "env.view_behind=0", "env.view_side=1", "tax.period_len=50", "voting.periods_per_round=2",
    "agents.network=mlp", "agents.hidden=16", "agents.epochs=1", "agents.minibatches=2",
    "principal.hidden=16", "principal.epochs=1", "principal.minibatches=1", "principal.update_every=1",
    "train.num_envs=8", "train.rollout_len=50", "train.total_env_steps=1600", "train.chunks=2",
    "train.num_seeds=2", "train.plots=false",
]

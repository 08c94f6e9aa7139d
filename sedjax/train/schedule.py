"""The run's time structure, derived once: :func:`make_schedule` (cfg, env) -> :class:`Schedule`.

Units, from small to large:

* a **step** moves every agent of one env; a **tax period** is ``period_len`` steps, a **voting
  round** ``periods_per_round`` periods, an **episode** ``rounds_per_episode`` rounds (the lengths
  are the env's static ints: the config's ``tax.period_len`` etc. reach the trainer only through
  the env built from it);
* an **agent iteration**: a rollout of ``rollout_len`` steps in each of ``num_envs`` envs and one
  PPO update of the agents; a **Principal iteration**: ``update_every`` agent iterations and one PPO
  update of the Principal (the unit of the compiled scan);
* a **chunk**: ``iters_per_chunk`` Principal iterations, one compiled call between two host-side
  logging / checkpoint points. A chunk spans whole episodes where it can, so its averages (apples
  alive, objective, ...) cover every phase of an episode, from the fresh world to the (possibly
  depleted) end, instead of rising and falling with where the chunk falls in the episode. The run
  is cut to ``num_chunks`` equal chunks (each is the same compiled program) keeping >= 95 % of the
  requested steps.

Every alignment check is here and raises ``ValueError`` naming the config key; nothing here
compiles, so the numbers are testable on their own (tests/test_schedule.py).
"""

from __future__ import annotations

from typing import NamedTuple

from sedjax.train.config import number, one_of, positive_int


class Schedule(NamedTuple):
    # lengths in env steps (from the env)
    period_len: int
    periods_per_round: int
    rounds_per_episode: int
    round_len: int  # the horizon of ``agent_return`` and of the Principal's episodes
    episode_len: int
    periods_per_episode: int
    # one iteration
    num_envs: int
    num_agents: int
    rollout_len: int
    periods_per_rollout: int
    update_every: int  # agent iterations per Principal iteration
    env_steps_per_iter: int  # per seed, all envs, one Principal iteration
    # the whole run (per seed)
    num_iters: int  # Principal iterations
    iters_per_chunk: int
    num_chunks: int
    steps_per_chunk: int
    total_env_steps: int
    anneal_steps: float  # env steps over which the transfer scale anneals (0: none)
    # PPO batches and optimizer steps (the learning-rate schedules' lengths)
    agent_batch: int  # samples per agent update: envs x rollout x agents
    principal_batch: int  # period transitions per Principal update
    agent_updates: int
    principal_updates: int


def chunk_count(units: int, max_chunks: int, keep: float = 0.95) -> int:
    """The most chunks (at most ``max_chunks``) of equal whole ``units`` that keep at least ``keep``
    of the ``units`` (every chunk is one compiled program, so chunks must be equal)."""
    for c in range(max(1, min(max_chunks, units)), 0, -1):
        if c * (units // c) >= keep * units:
            return c
    return 1


def env_steps_per_iteration(cfg) -> int:
    """Env steps of one Principal iteration (per seed): ``num_envs x rollout_len x update_every``."""
    return (positive_int(cfg, "train.num_envs") * positive_int(cfg, "train.rollout_len")
            * positive_int(cfg, "principal.update_every"))


def make_schedule(cfg, env) -> Schedule:
    """Every count of the run described by ``cfg`` on ``env``, with the alignment checks."""
    P, per_round, rounds = int(env.period_len), int(env.periods_per_round), int(env.rounds_per_episode)
    round_len, episode_len = int(env.round_len), int(env.episode_len)
    n = int(env.num_agents)
    E, T = positive_int(cfg, "train.num_envs"), positive_int(cfg, "train.rollout_len")
    k = positive_int(cfg, "principal.update_every")
    total = positive_int(cfg, "train.total_env_steps")
    max_chunks = positive_int(cfg, "train.chunks")
    if T % P:
        raise ValueError(f"train.rollout_len={T} must be a multiple of tax.period_len={P} "
                         "(the Principal acts once per period, on period-level transitions)")
    if episode_len % T:
        # Episode ends are time limits the rollouts are aligned to (the world resets between
        # rollouts, never inside one).
        raise ValueError(f"train.rollout_len={T} must divide the episode length {episode_len} "
                         "(= tax.period_len x voting.periods_per_round x env.rounds_per_episode)")
    per_iter = env_steps_per_iteration(cfg)
    if total < per_iter:
        raise ValueError(f"train.total_env_steps={total} is less than one Principal update "
                         f"(train.num_envs x train.rollout_len x principal.update_every = {per_iter})")
    agent_batch, principal_batch = E * T * n, k * (T // P) * E
    a_mb = positive_int(cfg, "agents.minibatches")
    shuffle = one_of(cfg, "agents.shuffle", ("global", "per_env"))
    if agent_batch % a_mb:
        raise ValueError(f"agents.minibatches={a_mb} must divide "
                         f"train.num_envs x train.rollout_len x env.num_agents = {agent_batch}")
    if shuffle == "per_env" and (T * n) % a_mb:
        raise ValueError(f"agents.minibatches={a_mb} must divide each env's train.rollout_len x "
                         f"env.num_agents = {T * n} with agents.shuffle=per_env")
    p_mb = positive_int(cfg, "principal.minibatches")
    if principal_batch % p_mb:
        raise ValueError(f"principal.minibatches={p_mb} must divide the Principal's batch of "
                         f"{principal_batch} periods (principal.update_every x periods per rollout x "
                         "train.num_envs)")

    num_iters = max(1, total // per_iter)
    # Iterations per episode when an episode is a whole number of them, else chunks of whole
    # iterations.
    unit = episode_len // (T * k) if episode_len % (T * k) == 0 else 1
    unit = max(1, min(unit, num_iters))
    num_units = num_iters // unit
    num_chunks = chunk_count(num_units, max_chunks)
    iters_per_chunk = (num_units // num_chunks) * unit
    num_iters = iters_per_chunk * num_chunks
    total_env_steps = num_iters * per_iter
    anneal_steps = number(cfg, "tax.anneal_fraction", 0.0, 1.0) * total_env_steps
    a_epochs, p_epochs = positive_int(cfg, "agents.epochs"), positive_int(cfg, "principal.epochs")
    return Schedule(
        period_len=P, periods_per_round=per_round, rounds_per_episode=rounds, round_len=round_len,
        episode_len=episode_len, periods_per_episode=per_round * rounds,
        num_envs=E, num_agents=n, rollout_len=T, periods_per_rollout=T // P, update_every=k,
        env_steps_per_iter=per_iter,
        num_iters=num_iters, iters_per_chunk=iters_per_chunk, num_chunks=num_chunks,
        steps_per_chunk=iters_per_chunk * per_iter, total_env_steps=total_env_steps,
        anneal_steps=anneal_steps,
        agent_batch=agent_batch, principal_batch=principal_batch,
        agent_updates=num_iters * k * a_epochs * a_mb, principal_updates=num_iters * p_epochs * p_mb,
    )


__all__ = ["Schedule", "make_schedule", "chunk_count", "env_steps_per_iteration"]

# ---
# jupyter:
#   accelerator: TPU
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: accelerator
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # sedjax on Colab: train, evaluate and sweep
#
# **sedjax** is a JAX simulator of *Social Environment Design* (Zhang et al., ICML 2024): a
# population of agents votes on the values a Principal must serve, the Principal sets income-tax
# brackets on an apple-picking commons, and PPO agents learn to live in the economy those taxes
# induce. The grid world, the taxes, the votes, the welfare functions and both learners' PPO
# updates are pure functions of arrays, so a whole training run is one compiled XLA program that
# runs on CPU, GPU or TPU and is split over the devices it finds.
#
# This notebook
#
# 1. installs sedjax (keeping Colab's own jax),
# 2. shows the devices JAX sees,
# 3. trains a small run (PPO agents and a PPO Principal) and plots its curves,
# 4. plays the trained run for an episode and shows it as a GIF,
# 5. trains three fixed tax schedules at once, as one vectorised sweep (one compile), and compares
#    them.
#
# **Use a TPU:** *Runtime → Change runtime type → TPU*, then run the cells in order
# (*Runtime → Run all*). It also runs on a GPU or on the CPU runtime, only slower; the first run of
# each program compiles it (a minute or two), which dominates the small settings below.

# %% [markdown]
# ## Install
#
# The public URL of the sedjax repository is not known yet: set `REPO` in the next cell to the
# repository you are using (a fork, or the published one once it exists). Skip this cell if sedjax
# is already installed (e.g. `pip install -e .` in a local clone).

# %% tags=["install"]
REPO = "https://github.com/<owner>/sedjax"  # <- set this

# Keep Colab's preinstalled jax. On a TPU (or GPU) runtime Colab's jax and jaxlib are built to match
# its libtpu (or CUDA plugin); a different jax from PyPI would not match them. sedjax only needs
# jax>=0.4.35, which Colab's jax satisfies, so pip leaves it alone, and the constraints file below
# (jax and jaxlib pinned at the installed versions) also stops a dependency (flax, optax, chex,
# distrax, orbax) from pulling in a newer one: pip then fails loudly instead of replacing it. The
# other dependencies (hydra-core, distrax, ...) are installed as usual.
import importlib.metadata
import pathlib

pins = []
for package in ("jax", "jaxlib"):
    try:
        pins.append(f"{package}=={importlib.metadata.version(package)}")
    except importlib.metadata.PackageNotFoundError:
        pass  # not preinstalled (not Colab): pip installs it as an ordinary dependency
pathlib.Path("keep_jax.txt").write_text("\n".join(pins) + "\n")
print("keeping", pins)
# %pip install -q -c keep_jax.txt "sedjax @ git+{REPO}"

# %% [markdown]
# ## Settings
#
# Two sizes: the normal one for a Colab TPU (the default map, `commons_harvest_open` with 7
# agents, 16 environments, a quarter of a million env steps: sized for a few minutes), and a tiny one that
# CI uses to execute this notebook on a CPU (`SEDJAX_NOTEBOOK_SMALL=1`: a small procedural map,
# 3 agents, 2 environments, a couple of hundred env steps). Any key of the config can be added to
# `OVERRIDES` (README, "Configuration").

# %% tags=["parameters"]
import os

SMALL = os.environ.get("SEDJAX_NOTEBOOK_SMALL") == "1"

if SMALL:  # CI on a CPU: every program compiled once, run for a few steps
    OVERRIDES = [
        "env.map=procedural", "env.num_agents=3", "agents.network=mlp",
        "tax.period_len=50", "train.rollout_len=50", "voting.periods_per_round=2", "env.rounds_per_episode=1",
        "agents.epochs=1", "agents.minibatches=1", "principal.epochs=1", "principal.minibatches=1",
    ]
    NUM_ENVS = 2               # rounded up below to a multiple of the device count
    TOTAL_ENV_STEPS = 200      # env steps per seed (each moves every agent): one 100-step episode per env
    CHUNKS = 1                 # logging / checkpoint points
    SWEEP_ENV_STEPS = 200
    SWEEP_CHUNKS = 1
    SWEEP_SEEDS = 1
    EVAL_EPISODES = 1
    GIF_STEPS = 100            # frames of the GIF (one per env step)
else:  # a Colab TPU
    OVERRIDES = []             # the default config: commons_harvest_open, 7 agents, CNN agents, PPO Principal
    NUM_ENVS = 16
    TOTAL_ENV_STEPS = 256_000  # 4 episodes of 4,000 steps in each of the 16 envs
    CHUNKS = 4                 # one chunk per episode
    SWEEP_ENV_STEPS = 128_000  # 2 episodes per env, for each schedule and seed
    SWEEP_CHUNKS = 2
    SWEEP_SEEDS = 2
    EVAL_EPISODES = 1
    GIF_STEPS = 200

RUN_DIR = "runs/colab"         # relative to the working directory (/content on Colab)
SWEEP_DIR = "runs/colab_sweep"

# %% [markdown]
# ## Devices
#
# A run uses every device by default (`train.mesh.devices=null`): seeds and sweep configurations
# go to the `runs` axis of a device mesh, and the rest of the devices split each run's
# environments (`envs` axis), so `train.num_envs` must be a multiple of them. A free Colab TPU has
# one chip; older TPU runtimes (and a TPU VM) show 8 cores.

# %%
import jax

print("backend:", jax.default_backend())
print("device count:", jax.device_count())
for d in jax.devices():
    print(" ", d)

# train.num_envs must split evenly over the devices: round it up to a multiple of the count
# (and the env steps with it, so each env still plays the same number of steps).
n_dev = jax.device_count()
rounded = -(-NUM_ENVS // n_dev) * n_dev
TOTAL_ENV_STEPS = TOTAL_ENV_STEPS * rounded // NUM_ENVS
SWEEP_ENV_STEPS = SWEEP_ENV_STEPS * rounded // NUM_ENVS
NUM_ENVS = rounded
print(f"train.num_envs={NUM_ENVS}, train.total_env_steps={TOTAL_ENV_STEPS:,}")

# %% [markdown]
# ## Train
#
# `compose_config` builds the same config as the `sedjax-train` command line (Hydra overrides,
# without `@hydra.main`), and `run` trains it, printing a line per chunk and a summary table, and
# writes the run folder: `config.yaml`, `metrics.jsonl` (one line per chunk), `checkpoint/`,
# `training_curves.png`, `tax_schedule.png` and `summary.json`.

# %%
from sedjax.train.config import compose_config
from sedjax.train.loop import run

cfg = compose_config(OVERRIDES + [
    f"train.num_envs={NUM_ENVS}",
    f"train.total_env_steps={TOTAL_ENV_STEPS}",
    f"train.chunks={CHUNKS}",
])
summary = run(cfg, RUN_DIR)

# The devices the run used: a dict with a "description" such as "mesh: 8 devices (runs=1 x envs=8; ...)"
# (None with a version of sedjax from before the device mesh).
print("mesh:", summary.get("mesh"))
print(f"compiled in {summary['compile_time']:.1f}s, trained {summary['env_steps']:,} env steps "
      f"in {summary['train_time']:.1f}s")

# %% [markdown]
# ## Curves
#
# The plots the run wrote, then the same records (`summary["records"]`: one dict per chunk, also
# in `metrics.jsonl`) plotted here: the Principal's objective per tax period and the mean tax rate.

# %%
from IPython.display import Image, display

display(Image(filename=f"{RUN_DIR}/training_curves.png"))
display(Image(filename=f"{RUN_DIR}/tax_schedule.png"))

# %%
import io

import matplotlib.pyplot as plt


def show(fig):
    """Display a figure as a PNG. sedjax's plotting module selects matplotlib's non-interactive Agg
    backend when it is imported (the run wrote its plots with it), so plt.show() would show nothing."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(data=buffer.getvalue(), format="png"))


records = summary["records"]
steps = [r["env_steps"] for r in records]
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.5))
ax0.plot(steps, [r["objective"] for r in records], marker="o")
ax0.set(xlabel="env steps", ylabel="objective per tax period", title="Principal's objective")
ax1.plot(steps, [r["mean_tax_rate"] for r in records], marker="o", color="tab:orange")
ax1.set(xlabel="env steps", ylabel="mean tax rate", title="Tax rate (mean over brackets)", ylim=(0, 1))
fig.tight_layout()
show(fig)

# %% [markdown]
# ## Watch the trained agents
#
# `evaluate` is what `sedjax-eval <run folder> --episodes 1` runs: it loads the checkpoint,
# plays full episodes with the trained agents and Principal, and writes `eval.csv` (one row per
# tax period) and `eval.gif` (the first steps of the first episode, with the tax rates under the
# grid). `rates=[r0, r1, r2]` would play the same agents under a fixed schedule instead.

# %%
from sedjax.train.evaluate import evaluate

ev = evaluate(RUN_DIR, episodes=EVAL_EPISODES, gif_steps=GIF_STEPS)
display(Image(filename=ev["gif"], format="gif"))

# %% [markdown]
# ## Three tax schedules in one compiled program
#
# A `sweep` node holds lists of values for traced settings; their product × `train.num_seeds`
# trains as one vmapped program (one compile). Here: the fixed Principal with no tax, 50 % and
# 100 % on every bracket. The run folder gets `sweep/<k>/` per configuration and `sweep.csv`, one
# row per configuration and seed with the final (last chunk's) metrics. Configuration `k`, seed `s`
# uses the PRNG key of seed `s`, so the schedules are compared on common random numbers.
#
# In the default (the paper's) setting the objective counts raw apples, so a schedule changes it
# only through what the agents learn to do; with the tiny CI settings they barely train, and the
# three schedules score about the same.

# %%
sweep_cfg = compose_config(OVERRIDES + [
    f"train.num_envs={NUM_ENVS}",
    f"train.total_env_steps={SWEEP_ENV_STEPS}",
    f"train.chunks={SWEEP_CHUNKS}",
    f"train.num_seeds={SWEEP_SEEDS}",
    "train.checkpoint=false", "train.plots=false",  # only the table and the bar plot below
    "principal=fixed",
    "+sweep.principal.rates=[[0,0,0],[0.5,0.5,0.5],[1,1,1]]",
])
sweep_summary = run(sweep_cfg, SWEEP_DIR)

# %%
import csv

with open(f"{SWEEP_DIR}/sweep.csv", newline="") as f:
    rows = list(csv.DictReader(f))
columns = list(rows[0])
rate_columns = [c for c in columns if c.startswith("principal.rates")]
shown = ["config", "seed"] + rate_columns + [c for c in ("objective", "agent_return", "productivity", "equality",
                                                         "apples_alive", "mean_tax_rate") if c in columns]


def cell(value):
    try:
        return f"{float(value):.4g}"
    except ValueError:
        return value


widths = [max(len(c), *(len(cell(r[c])) for r in rows)) for c in shown]
print("  ".join(c.rjust(w) for c, w in zip(shown, widths)))
print("  ".join("-" * w for w in widths))
for r in rows:
    print("  ".join(cell(r[c]).rjust(w) for c, w in zip(shown, widths)))

# %%
configs = sorted({int(r["config"]) for r in rows})
labels, objective = [], []
for k in configs:
    mine = [r for r in rows if int(r["config"]) == k]
    labels.append("[" + ", ".join(f"{float(mine[0][c]):g}" for c in rate_columns) + "]")
    objective.append(sum(float(r["objective"]) for r in mine) / len(mine))  # mean over seeds

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.bar(labels, objective, color="tab:green")
ax.set(xlabel="tax rates per bracket", ylabel="objective per tax period (mean over seeds)",
       title="Fixed schedules, one sweep")
fig.tight_layout()
show(fig)

# %% [markdown]
# ## Next
#
# The README covers the rest: *Quick start* (the `sedjax-train` / `sedjax-eval` command lines),
# *Training* (what a run computes and the metrics it logs), *Sweeps in one compiled program*
# (every sweepable key), *The fixed-schedule search* (`sedjax-search`: every schedule over a grid
# of rates, ranked with confidence intervals) and *Configuration* (every key of the config). On
# a TPU, try the default run's full length (`train.total_env_steps=640000`), more seeds
# (`train.num_seeds=8`) or a larger search (`sedjax.train.search.search(cfg, out_dir)`).

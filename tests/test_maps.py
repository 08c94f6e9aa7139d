"""Tests for sedjax.maps: the default map, ASCII parsing and its errors, the procedural generator,
file loading and the ASCII round trip. Host-side NumPy only (no compilation)."""

from __future__ import annotations

import numpy as np
import pytest

import sedjax
from sedjax import maps
from sedjax.maps import GridMap, default_map, load_map, parse_ascii, procedural_map, procedural_map_for_agents


def _same(a: GridMap, b: GridMap):
    np.testing.assert_array_equal(a.walls, b.walls)
    np.testing.assert_array_equal(a.apples, b.apples)
    np.testing.assert_array_equal(a.spawn, b.spawn)
    np.testing.assert_array_equal(a.inside_spawn, b.inside_spawn)


# =============================================================================== default map
def test_default_map_matches_spec():
    m = default_map()
    assert (m.width, m.height) == (24, 18)
    assert m.num_apples == int(m.apples.sum()) == 64
    assert len(m.spawn) == 60 and len(m.inside_spawn) == 2
    np.testing.assert_array_equal(m.inside_spawn, [[7, 7], [7, 16]])  # reading order
    # Walled border; apples, spawns and walls are disjoint.
    assert m.walls[0].all() and m.walls[-1].all() and m.walls[:, 0].all() and m.walls[:, -1].all()
    assert not (m.walls & m.apples).any()
    for cells in (m.spawn, m.inside_spawn):
        assert not m.walls[tuple(cells.T)].any() and not m.apples[tuple(cells.T)].any()
    # The row layout of SPEC section 2.
    rows = m.to_ascii().split("\n")
    assert rows[1] == "WAAA    A      A    AAAW"
    assert rows[7] == "W AAA  Q        Q  AAA W"
    assert rows[16] == "WPPPPPPPPPPPPPPPPPPPPPPW"
    # make() uses it by default, and it seats 62 agents at most.
    env = sedjax.make("apple_grid")
    _same(env.map, m)
    assert env.num_agents == 7 and env.num_apple_cells == 64
    m.check_agents(62)
    with pytest.raises(ValueError, match=r"env\.num_agents"):
        m.check_agents(63)


# =============================================================================== parsing
def test_parse_ascii_legend():
    m = parse_ascii("WWWWW\nWA.QW\nWP  W\nWWWWW\n", name="tiny")
    assert (m.height, m.width) == (4, 5) and m.name == "tiny"
    assert m.apples[1, 1] and m.num_apples == 1
    np.testing.assert_array_equal(m.inside_spawn, [[1, 3]])
    np.testing.assert_array_equal(m.spawn, [[2, 1]])
    assert not m.walls[1, 2] and not m.walls[2, 2]  # '.' and ' ' are both floor


def test_ragged_map_raises_naming_the_row():
    with pytest.raises(ValueError, match=r"env\.map 'ragged': row 2 has 2 characters but row 0 has 5"):
        parse_ascii("WWWWW\nWA.QW\nWP\nWWWWW", name="ragged")


@pytest.mark.parametrize(
    "text",
    ["", "   \n\n  ", "WWW\nWXW\nWPW", "WWWW\nWAAW\nWWWW", "WW\nWP", "WWW\nW\tW\nWPW"],
    ids=["empty", "blank", "unknown-char", "no-spawn", "too-small", "tab"],
)
def test_malformed_maps_raise(text):
    with pytest.raises(ValueError, match=r"env\.map"):
        parse_ascii(text)


def test_too_many_agents_raises():
    m = parse_ascii("WWWWW\nWQPPW\nWWWWW")
    m.check_agents(3)
    with pytest.raises(ValueError, match=r"env\.num_agents"):
        m.check_agents(4)
    with pytest.raises(ValueError, match=r"env\.num_agents"):
        sedjax.make("apple_grid", map=m, num_agents=4)
    with pytest.raises(ValueError, match=r"env\.num_agents"):
        sedjax.make("apple_grid", map=m, num_agents=0)
    # Only Q cells: as many agents as Q cells.
    q_only = parse_ascii("WWWW\nWQQW\nWWWW")
    q_only.check_agents(2)
    with pytest.raises(ValueError, match=r"env\.num_agents"):
        q_only.check_agents(3)


# =============================================================================== files
def test_load_map_roundtrips_to_ascii(tmp_path):
    m = default_map()
    path = tmp_path / "harvest.txt"
    path.write_text(m.to_ascii())
    m2 = load_map(str(path))
    _same(m, m2)
    assert m2.to_ascii() == m.to_ascii() and m2.name == "harvest.txt"
    # The built-in by name, and through make(map=path).
    _same(load_map("commons_harvest_open"), m)
    env = sedjax.make("apple_grid", map=str(path), num_agents=3)
    _same(env.map, m)
    with pytest.raises(ValueError, match=r"env\.map"):
        load_map(str(tmp_path / "missing.txt"))


def test_procedural_map_roundtrips_to_ascii():
    m = procedural_map(12, 17, num_agents=5, seed=3)
    _same(parse_ascii(m.to_ascii()), m)


# =============================================================================== procedural maps
@pytest.mark.parametrize("h,w,n,density", [(20, 30, 10, 0.18), (40, 25, 30, 0.05), (16, 16, 4, 0.4)])
def test_procedural_map_properties(h, w, n, density):
    m = procedural_map(h, w, n, apple_density=density, seed=1)
    assert (m.height, m.width) == (h, w)
    assert m.walls[0].all() and m.walls[-1].all() and m.walls[:, 0].all() and m.walls[:, -1].all()
    assert not m.walls[1:-1, 1:-1].any()
    interior = (h - 2) * (w - 2)
    assert abs(m.num_apples / interior - density) <= 1.0 / interior + 1e-9  # the requested density
    assert len(m.spawn) == 2 * n and len(m.inside_spawn) == 0  # spawn_per_agent = 2
    cells = {tuple(c) for c in m.spawn}
    assert len(cells) == len(m.spawn)  # distinct
    assert not m.walls[tuple(m.spawn.T)].any() and not m.apples[tuple(m.spawn.T)].any()
    m.check_agents(n)  # capacity for the requested number of agents
    with pytest.raises(ValueError, match=r"env\.num_agents"):
        m.check_agents(2 * n + 1)
    # Deterministic in the seed, different across seeds.
    _same(procedural_map(h, w, n, apple_density=density, seed=1), m)
    assert not np.array_equal(procedural_map(h, w, n, apple_density=density, seed=2).apples, m.apples)


def test_procedural_apples_come_in_patches():
    """Apples are placed as discs, so (almost) every apple has another apple within distance 2 and
    the patches can regrow."""
    m = procedural_map(40, 40, 10, seed=0)
    rc = np.argwhere(m.apples)
    d2 = ((rc[:, None] - rc[None]) ** 2).sum(-1)
    has_neighbour = ((d2 <= 4) & (d2 > 0)).any(1)
    assert has_neighbour.mean() > 0.95


def test_procedural_map_for_agents_scales():
    for n in (7, 100, 512):
        m = procedural_map_for_agents(n, seed=0)
        interior = (m.height - 2) * (m.width - 2)
        assert 45 <= interior / n <= 60  # ~50 interior cells per agent, like the default map
        m.check_agents(n)
    env = sedjax.make("apple_grid", map="procedural", num_agents=40, map_seed=4)
    _same(env.map, procedural_map_for_agents(40, seed=4))
    assert not np.array_equal(sedjax.make("apple_grid", map="procedural", num_agents=40, map_seed=5).map.apples,
                              env.map.apples)


def test_procedural_map_rejects_bad_arguments():
    with pytest.raises(ValueError):
        procedural_map(2, 10, 1)
    with pytest.raises(ValueError):
        procedural_map(10, 10, 1, apple_density=1.0)
    with pytest.raises(ValueError):
        procedural_map(6, 6, 20)  # too small for 40 spawn cells
    with pytest.raises(ValueError, match=r"env\.num_agents"):
        procedural_map(10, 10, 0)


def test_builtin_maps_listed():
    assert "commons_harvest_open" in maps.BUILTIN_MAPS

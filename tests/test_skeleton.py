import numpy as np
import pytest

from rpnt.atomic import atomic_path
from rpnt.cli import main
from rpnt.data.windows import covering_starts, valid_window_starts


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "rpnt" in capsys.readouterr().out


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    final = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replace(tmp_path):
    final = tmp_path / "store.zarr"
    for text in ("one", "two"):
        with atomic_path(final) as tmp:
            tmp.mkdir()
            (tmp / "x").write_text(text)
    assert (final / "x").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]


def test_valid_window_starts_matches_bruteforce():
    rng = np.random.default_rng(0)
    ok = rng.random(500) > 0.1
    for length in (1, 3, 10):
        ref = [s for s in range(500 - length + 1) if ok[s:s + length].all()]
        assert valid_window_starts(ok, length).tolist() == ref


def test_covering_starts_cover_mask():
    rng = np.random.default_rng(1)
    mask = rng.random(400) > 0.8
    starts = covering_starts(mask, 50, 25)
    covered = np.zeros(400, bool)
    for s in starts:
        covered[s:s + 50] = True
    assert covered[mask].all()

"""Logo PNGs: real images of the expected size, with the expected panels and letter colours."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from genometracks.interpret.logos import DPI, LogoError, draw_logo, draw_logo_grid, logo_grid_figure, logo_heights

# logomaker "classic" colours, RGB in 0..1
COLOURS = {"A": (0, 0.5, 0), "C": (0, 0, 1), "G": (1, 0.65, 0), "T": (1, 0, 0)}


def _pixels_of(image: np.ndarray, letter: str) -> int:
    """Number of pixels within 0.08 of a letter's colour (anti-aliased edges are not counted)."""
    return int((np.abs(image[..., :3] - np.array(COLOURS[letter])).max(axis=-1) < 0.08).sum())


def _column(letter: str, k: int = 4) -> np.ndarray:
    m = np.full((k, 4), 0.001)
    m[:, "ACGT".index(letter)] = 1.0
    return m


def test_single_logo_is_a_real_image_with_the_right_letter(tmp_path):
    path = draw_logo(_column("T", 5), tmp_path / "logos" / "L0H1.png", title="L0H1")
    assert path == tmp_path / "logos" / "L0H1.png"
    image = imread(path)
    fig = logo_grid_figure([("L0H1", _column("T", 5), "bits")], ncols=1)
    width, height = fig.get_size_inches() * DPI
    assert image.shape[:2] == (round(height), round(width))
    assert image[..., :3].var() > 0.01  # not blank
    assert _pixels_of(image, "T") > 2000 and _pixels_of(image, "A") == 0
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_uniform_matrix_in_bits_draws_no_letters_but_probability_does(tmp_path):
    flat = np.full((6, 4), 0.25)
    bits = imread(draw_logo(flat, tmp_path / "bits.png", mode="bits"))
    prob = imread(draw_logo(flat, tmp_path / "prob.png", mode="probability"))
    assert sum(_pixels_of(bits, a) for a in "ACGT") == 0
    assert all(_pixels_of(prob, a) > 200 for a in "ACGT")


@pytest.mark.slow
def test_grid_has_one_panel_per_matrix(tmp_path):
    letters = "ACGTAC"
    panels = [(f"L{i // 2}H{i % 2}", _column(a), "bits") for i, a in enumerate(letters)]
    fig = logo_grid_figure(panels, ncols=3)
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes] == [p[0] for p in panels]
    assert all(ax.get_ylim() == (0, 2) for ax in fig.axes)
    image = imread(draw_logo_grid(panels, tmp_path / "grid.png", ncols=3))
    assert image.shape[:2] == (2 * 200, image.shape[1]) and image.shape[1] == round(fig.get_size_inches()[0] * DPI)
    # each grid cell (2 rows x 3 columns) is coloured by its own panel's letter only
    rows, cols = np.array_split(np.arange(image.shape[0]), 2), np.array_split(np.arange(image.shape[1]), 3)
    for i, letter in enumerate(letters):
        cell = image[rows[i // 3]][:, cols[i % 3]]
        counts = {a: _pixels_of(cell, a) for a in "ACGT"}
        assert counts[letter] > 500 and sum(counts.values()) == counts[letter], (i, counts)


def test_heights_modes_and_errors(tmp_path):
    m = np.array([[2.0, 2.0, 0.0, 0.0]])
    np.testing.assert_allclose(logo_heights(m, "bits"), [[0.5, 0.5, 0, 0]])  # 1 bit split in two
    np.testing.assert_allclose(logo_heights(m, "probability"), [[0.5, 0.5, 0, 0]])
    raw = np.array([[0.5, -1.0, 0.2, 0.0]])
    np.testing.assert_allclose(logo_heights(raw, "raw"), raw)
    fig = logo_grid_figure([("raw", raw, "raw"), ("p", m, "probability", ["-10"])], ncols=2)
    assert fig.axes[0].get_ylim()[0] < -1.0 and fig.axes[1].get_ylim() == (0, 1)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["-10"]
    # axes say what they show: raw heights are contributions in logits; TSS-relative ticks are named
    assert fig.axes[0].get_ylabel() == "contribution (logit)" and fig.axes[0].get_xlabel() == ""
    assert fig.axes[1].get_xlabel() == "nt from the TSS (0 = +1)"
    with pytest.raises(LogoError, match=r"\[K, 4\]"):
        draw_logo(np.ones((3, 5)), tmp_path / "x.png")
    with pytest.raises(LogoError, match="mode must be"):
        draw_logo(m, tmp_path / "x.png", mode="height")
    with pytest.raises(LogoError, match="x tick labels"):
        draw_logo(m, tmp_path / "x.png", xticklabels=["a", "b"])
    assert not (tmp_path / "x.png").exists()

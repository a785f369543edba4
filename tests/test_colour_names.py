"""The colour-naming classifier: its published table, the rule, the shipped lookup tables."""
import numpy as np
import pytest
from skimage.color import rgb2lab

from soclake import colour_names as cn


def name_of(rgb) -> str:
    sure, possible = cn.shares(cn.counts_dict(cn.counts_by_label(np.array([[rgb]], np.uint8),
                                                                 np.ones((1, 1), np.int32), 1)[1]), 1)
    return next(iter(sure), "none")


def test_the_survey_table_is_the_published_one():
    names, rgb = cn.survey()
    assert len(names) == 949 and len(set(names)) == 949 and rgb.shape == (949, 3)
    table = dict(zip(names, map(tuple, rgb)))
    # a few entries of xkcd.com/color/rgb.txt
    assert table["red"] == (0xe5, 0x00, 0x00) and table["blue"] == (0x03, 0x43, 0xdf)
    assert table["brown"] == (0x65, 0x37, 0x00) and table["teal"] == (0x02, 0x93, 0x86)


@pytest.mark.parametrize("name,term", [("dark blue", "blue"), ("greenish blue", "blue"), ("blue green", None),
                                       ("blue/green", None), ("light gray", "grey"), ("teal", None),
                                       ("pale rose", None), ("yellow-green", None), ("brownish red", "red"),
                                       ("almost black", "black")])
def test_basic_term_of_a_survey_name(name, term):
    assert cn.basic_term(name) == term


def test_lab_conversion_matches_scikit_image():
    x = np.random.default_rng(0).integers(0, 256, (2000, 3)).astype(np.uint8)
    assert np.abs(cn.srgb_to_lab(x) - rgb2lab(x[None] / 255.0)[0]).max() < 0.01


@pytest.mark.parametrize("rgb,term", [((255, 0, 0), "red"), ((200, 30, 35), "red"), ((240, 130, 20), "orange"),
                                      ((235, 205, 40), "yellow"), ((50, 150, 60), "green"), ((0, 0, 255), "blue"),
                                      ((120, 50, 150), "purple"), ((255, 140, 190), "pink"),
                                      ((139, 69, 19), "brown"), ((160, 120, 80), "brown"), ((0, 0, 0), "black"),
                                      ((30, 30, 32), "black"), ((128, 128, 128), "grey"), ((240, 240, 235), "white"),
                                      ((0, 0, 128), "blue"), ((255, 255, 255), "white")])
def test_everyday_colours_get_their_names(rgb, term):
    assert name_of(rgb) == term


@pytest.mark.slow
def test_the_shipped_tables_are_current():
    names, table = cn.build_tables()
    shipped_names, shipped = cn.tables()
    assert names == shipped_names and np.array_equal(table, shipped)


def test_sure_bins_agree_with_the_rule_at_every_point():
    """A pixel counts surely for a term only if the rule gives that term anywhere in its bin:
    exact colours drawn at random never contradict a sure class."""
    names, _ = cn.tables()
    rgb = np.random.default_rng(1).integers(0, 256, (20000, 3)).astype(np.uint8)
    exact = cn.classify_lab(cn.srgb_to_lab(rgb))
    classes = [names[i].split("|") for i in cn.class_indices(rgb)]
    terms = cn.BASIC_TERMS + ("none",)
    inside = [terms[e] in c for e, c in zip(exact, classes)]
    assert np.mean(inside) > 0.999  # the rule's regions are far larger than a bin, bar slivers
    sure_wrong = sum(len(c) == 1 and terms[e] != c[0] for e, c in zip(exact, classes))
    assert sure_wrong <= 5


def test_counts_and_shares_by_label():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = (200, 30, 35)       # red
    rgb[2:] = (40, 80, 200)       # blue
    labels = np.zeros((4, 4), np.int32)
    labels[:, :2] = 1
    labels[:, 2:] = 2
    counts = cn.counts_by_label(rgb, labels, 2)
    assert counts.sum() == 16 and counts[0].sum() == 0
    one = cn.counts_dict(counts[1])
    assert one == {"red": 4, "blue": 4}
    sure, possible = cn.shares(one, 8)
    assert sure == {"red": 0.5, "blue": 0.5} and possible == sure
    sure, possible = cn.shares({"red": 3, "red|orange": 2, "none": 1}, 6)
    assert sure == {"red": 0.5} and possible == {"red": 5 / 6, "orange": 2 / 6}


def test_counts_by_label_classify_only_labelled_pixels_and_match_the_dense_count():
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (37, 41, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, (37, 41)).astype(np.int32)
    labels[:5] = 0
    k = len(cn.tables()[0])
    dense = np.bincount((labels * k + cn.class_indices(rgb)).ravel(), minlength=4 * k).reshape(4, k)
    dense[0] = 0
    assert np.array_equal(cn.counts_by_label(rgb, labels, 3), dense)
    assert np.array_equal(cn.counts_by_label(rgb[:, ::2], labels[:, ::2], 3)[1:].sum(axis=1),
                          np.bincount(labels[:, ::2].ravel(), minlength=4)[1:])


def test_the_packed_lookup_gives_every_colour_its_class():
    """box_class_indices (two OpenCV passes and one lookup) agrees with class_indices on every
    quantized colour and on random ones; counts_in_boxes agrees with counts_by_label."""
    step = 1 << (8 - cn.BITS)
    levels = np.arange(0, 256, step, dtype=np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 1, 3)
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (300, 200, 3), np.uint8)
    for img in (grid, grid + np.uint8(step - 1), noise):
        assert np.array_equal(cn.box_class_indices(img), cn.class_indices(img))
    labels = np.zeros((300, 200), np.uint8)
    labels[10:80, 5:60] = 1
    labels[50:299, 40:200][rng.random((249, 160)) < 0.5] = 2
    labels[7, 7] = 3  # a one-pixel box
    boxes = [(5, 10, 60, 80), (40, 50, 200, 299), (7, 7, 8, 8)]
    assert np.array_equal(cn.counts_in_boxes(noise, labels, boxes),
                          cn.counts_by_label(noise, labels, 3)[1:])

import pytest


def test_paired_sign_test_counts_discordant_images_and_gives_the_exact_p_value():
    from lrpe_hf.nas.benchmark import paired_sign_test

    a = [True] * 10 + [True, True, True, False] + [False] * 3
    b = [True] * 10 + [False, False, False, True] + [False] * 3
    r = paired_sign_test(a, b)
    assert (r["a_only"], r["b_only"]) == (3, 1)
    # n = 4 discordant, k = 1: P(X <= 1) = (1 + 4) / 16, two-sided 10 / 16
    assert r["p_value"] == pytest.approx(10 / 16)
    assert paired_sign_test([True] * 5, [True] * 5)["p_value"] == 1.0  # no discordant image: no evidence
    assert paired_sign_test([True] * 12, [False] * 12)["p_value"] == pytest.approx(2 / 2**12)
    with pytest.raises(ValueError, match="same images"):
        paired_sign_test([True], [True, False])

"""experiments/ldm_mnist.py's cost figures: train time to equal FID, both ways round (the
pure bookkeeping on the two FID curves, checked on hand-made curves; ratios are rounded to 4
decimals in the JSON)."""

from __future__ import annotations

import pytest


def _run(curve, per_step):
    return {"curve": [{"step": s, "train_s": s * per_step, "fid": f} for s, f in curve],
            "per_step_s": per_step, "train_s": curve[-1][0] * per_step}


def test_cost_when_the_latent_model_reaches_the_pixel_fid(load_experiment):
    mod = load_experiment("ldm_mnist")
    latent = _run([(1000, 200.0), (2000, 90.0), (3000, 60.0)], per_step=0.5)
    pixel = _run([(500, 300.0), (1000, 95.0), (1500, 80.0)], per_step=2.0)
    c = mod.cost(latent, pixel, step_latent=0.25, step_pixel=1.5)
    # the latent's first point at or below the pixel's final 80.0 is step 3000
    assert c["latent_step_at_pixel_fid"] == 3000 and c["pixel_final_fid"] == 80.0
    assert c["train_time_ratio"] == pytest.approx(3000 * 0.5 / (1500 * 2.0), abs=1e-4)
    assert c["train_time_ratio_side_by_side"] == pytest.approx(3000 * 0.25 / (1500 * 1.5), abs=1e-4)
    # the other way round: the pixel model never gets to the latent's final 60.0
    assert c["latent_final_fid"] == 60.0 and c["pixel_step_at_latent_fid"] is None
    assert c["train_time_ratio_at_latent_fid"] is None and c["train_time_ratio_at_latent_fid_side_by_side"] is None


def test_cost_when_only_the_pixel_model_gets_there(load_experiment):
    mod = load_experiment("ldm_mnist")
    latent = _run([(5000, 128.0), (10000, 77.0)], per_step=1.0)
    pixel = _run([(1500, 124.0), (2000, 99.0), (2500, 76.0), (3000, 70.0)], per_step=3.0)
    c = mod.cost(latent, pixel, step_latent=0.4, step_pixel=1.2)
    assert c["latent_step_at_pixel_fid"] is None and c["train_time_ratio"] is None
    assert c["train_time_ratio_side_by_side"] is None
    assert c["pixel_step_at_latent_fid"] == 2500  # 76.0 <= 77.0
    assert c["train_time_ratio_at_latent_fid"] == pytest.approx(10000 * 1.0 / (2500 * 3.0), abs=1e-4)
    assert c["train_time_ratio_at_latent_fid_side_by_side"] == pytest.approx(10000 * 0.4 / (2500 * 1.2), abs=1e-4)

import math

import pytest

from pixelpilot.eval.metrics import (
    mcnemar,
    proportion,
    step_metrics,
    two_proportion_z,
    wilson_interval,
)


def test_wilson_known_values():
    lo, hi = wilson_interval(8, 10)
    # Wilson 95% interval of 8/10 (Newcombe 1998): 0.490 .. 0.943
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and 0.1 < hi < 0.2
    assert proportion(3, 4)["value"] == 0.75


def test_two_proportion_and_mcnemar():
    z = two_proportion_z(50, 100, 70, 100)
    assert z["diff"] == pytest.approx(0.2)
    assert z["p_value"] == pytest.approx(math.erfc(abs(z["z"]) / math.sqrt(2)))
    assert 0.003 < z["p_value"] < 0.006
    exact = mcnemar(0, 6)
    assert exact["p_value"] == pytest.approx(2 / 64)
    assert mcnemar(5, 5)["p_value"] == 1.0
    assert mcnemar(10, 30)["method"] == "chi2"


def test_step_metrics_breakdowns():
    rows = [
        {
            "episode": "e1",
            "task": "t",
            "gold_type": "click",
            "pred_type": "click",
            "format_error": False,
            "type_match": True,
            "step_correct": True,
            "grounded": True,
        },
        {
            "episode": "e1",
            "task": "t",
            "gold_type": "type",
            "pred_type": None,
            "format_error": True,
            "type_match": False,
            "step_correct": False,
            "grounded": None,
        },
        {
            "episode": "e2",
            "task": "u",
            "gold_type": "click",
            "pred_type": "click",
            "format_error": False,
            "type_match": True,
            "step_correct": False,
            "grounded": False,
        },
        {
            "episode": "e3",
            "task": "u",
            "gold_type": "click",
            "pred_type": "click",
            "format_error": False,
            "type_match": True,
            "step_correct": True,
            "grounded": True,
        },
    ]
    m = step_metrics(rows)
    assert m["action_type_accuracy"]["k"] == 3
    assert (m["grounding_accuracy"]["k"], m["grounding_accuracy"]["n"]) == (2, 3)
    assert (m["episode_success"]["k"], m["episode_success"]["n"]) == (1, 3)
    assert m["format_error_rate"]["value"] == 0.25
    assert m["confusion"]["type"] == {"format_error": 1}
    assert m["per_task"]["u"]["step_success_rate"]["value"] == 0.5

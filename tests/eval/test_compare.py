import json

import pytest

from pixelpilot.eval.compare import compare_reports, format_comparison
from pixelpilot.eval.offline import OfflineConfig, evaluate_offline
from pixelpilot.eval.online import Job, OnlineConfig, summarize
from pixelpilot.eval.report import write_reports
from pixelpilot.vlm import ModelProfile, ScriptedVLM


def _offline(data, out, vlm=None, model="expert"):
    cfg = OfflineConfig(str(data), "screenspot", model=model, out=str(out))
    return evaluate_offline(cfg, vlm=vlm)


def test_offline_compare_is_paired_on_shared_samples(screenspot_file, tmp_path, capsys):
    _offline(screenspot_file, tmp_path / "a")
    centre = ScriptedVLM(
        lambda c: "Action: click(start_box='(500,500)')",
        ModelProfile(frame="uitars-1.0", prompt_family="uitars-1.0"),
    )
    _offline(screenspot_file, tmp_path / "b", centre, model="centre")
    result = compare_reports(tmp_path / "a", tmp_path / "b")
    step = result["metrics"]["step_success_rate"]
    assert step["test"] == "mcnemar-exact" and step["paired_items"] == 4
    assert (step["only_a"], step["only_b"]) == (2, 0)
    assert step["diff"] == pytest.approx(-0.5) and step["p_value"] == pytest.approx(0.5)
    assert not step["significant"]
    assert "step_success_rate" in format_comparison(result)

    from pixelpilot.cli import main

    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["step_success_rate"]["b"] == 0.5
    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "nope")]) == 2


def _online(tmp_path, name, wins):
    cfg = OnlineConfig("miniwob/x", episodes=len(wins), model=name)
    jobs = [Job("miniwob/x", s) for s in range(len(wins))]
    results = {
        j.key: {
            "task": j.task,
            "seed": j.seed,
            "success": w,
            "reward": float(w),
            "steps": 2,
            "error": None,
            "actions": {"click": 2},
        }
        for j, w in zip(jobs, wins, strict=True)
    }
    report = summarize(cfg, jobs, results)
    write_reports(report, tmp_path / name)
    return report


def test_online_compare_and_reports(tmp_path):
    a = _online(tmp_path, "a", [False] * 30)
    _online(tmp_path, "b", [True] * 20 + [False] * 10)
    assert a["tasks"]["miniwob/x"]["success_rate"] == 0.0
    result = compare_reports(tmp_path / "a" / "report.json", tmp_path / "b")
    m = result["metrics"]["success_rate"]
    assert m["test"] == "mcnemar-exact" and m["only_b"] == 20 and m["significant"]
    html = (tmp_path / "b" / "report.html").read_text()
    assert html.count("<img") == 3 and "miniwob/x" in html
    assert (tmp_path / "b" / "plot-steps-histogram.png").stat().st_size > 1000
    md = (tmp_path / "b" / "report.md").read_text()
    assert "66.7%" in md and "| miniwob/x | 30 |" in md

import json

import pytest

from pixelpilot.eval.offline import OfflineConfig, evaluate_offline, read_predictions
from pixelpilot.vlm import ModelProfile, ScriptedVLM

CENTRE = "Thought: the middle looks right\nAction: click(start_box='(500,500)')"

# What the always-click-the-centre model must score on each fixture (see conftest docstrings):
# (steps right, samples, type matches, grounded, grounding samples, episodes right, episodes)
CENTRE_EXPECTED = {
    "screenspot": (2, 4, 4, 2, 4, 2, 4),
    "androidcontrol": (1, 5, 2, 1, 2, 0, 2),
    "mind2web": (1, 3, 2, 1, 2, 0, 1),
    "trajectory": (1, 3, 2, 1, 2, 0, 2),
}


def centre_model(**kwargs):
    profile = ModelProfile(name="centre", frame="uitars-1.0", prompt_family="uitars-1.0")
    return ScriptedVLM(lambda conv: CENTRE, profile, **kwargs)


@pytest.fixture
def data(request, screenspot_file, androidcontrol_file, mind2web_file, trajectory_dir):
    return {
        "screenspot": screenspot_file,
        "androidcontrol": androidcontrol_file,
        "mind2web": mind2web_file,
        "trajectory": trajectory_dir,
    }


@pytest.mark.parametrize("fmt", list(CENTRE_EXPECTED))
def test_expert_answers_score_100_percent(fmt, data, tmp_path):
    report = evaluate_offline(OfflineConfig(str(data[fmt]), fmt, model="expert"))
    assert report["samples"] == CENTRE_EXPECTED[fmt][1]
    for key in ("step_success_rate", "action_type_accuracy", "episode_success"):
        assert report[key]["value"] == 1.0, key
    assert report["format_error_rate"]["k"] == 0


@pytest.mark.parametrize("fmt", list(CENTRE_EXPECTED))
def test_centre_clicker_scores_what_the_fixture_says(fmt, data, tmp_path):
    report = evaluate_offline(
        OfflineConfig(str(data[fmt]), fmt, model="centre", out=str(tmp_path / "out")),
        vlm=centre_model(),
    )
    got = (
        report["step_success_rate"]["k"],
        report["samples"],
        report["action_type_accuracy"]["k"],
        report["grounding_accuracy"]["k"],
        report["grounding_accuracy"]["n"],
        report["episode_success"]["k"],
        report["episode_success"]["n"],
    )
    assert got == CENTRE_EXPECTED[fmt]
    for name in ("report.json", "report.md", "report.html", "predictions.jsonl", "scores.jsonl"):
        assert (tmp_path / "out" / name).is_file()
    assert "Per action type" in (tmp_path / "out" / "report.md").read_text()


def test_prompt_carries_history_and_instruction(androidcontrol_file):
    vlm = centre_model()
    evaluate_offline(
        OfflineConfig(str(androidcontrol_file), "androidcontrol", batch_size=2), vlm=vlm
    )
    third = vlm.calls[2]  # episode a, step 2: two earlier steps
    assert "open the menu and search cats" in third.messages[0].text
    assistant = [m.text for m in third.messages if m.role == "assistant"]
    assert len(assistant) == 2 and "type(" in assistant[1]
    assert len(third.images) == 3


def test_interrupted_run_resumes_without_redoing(androidcontrol_file, tmp_path):
    out = tmp_path / "run"
    calls = {"n": 0}

    def dies_after_two(conv):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("model crashed")
        return CENTRE

    profile = ModelProfile(name="centre", frame="uitars-1.0", prompt_family="uitars-1.0")
    cfg = OfflineConfig(str(androidcontrol_file), "androidcontrol", out=str(out), batch_size=1)
    with pytest.raises(RuntimeError):
        evaluate_offline(cfg, vlm=ScriptedVLM(dies_after_two, profile))
    assert len(read_predictions(out / "predictions.jsonl")) == 2
    with open(out / "predictions.jsonl", "a") as f:
        f.write('{"id": "a/2", "resp')  # a write cut short by the crash
    second = centre_model()
    report = evaluate_offline(cfg, vlm=second)
    assert len(second.calls) == 3  # only the samples without an answer
    assert report["samples"] == 5 and report["step_success_rate"]["k"] == 1


def test_predictions_file_and_limit(mind2web_file, tmp_path):
    preds = tmp_path / "preds.jsonl"
    lines = [
        {"id": "t1/0", "response": "Action: click(start_box='(100,50)')", "frame": "pixels"},
        {"id": "t1/1", "response": "Action: type(content='shoes running')", "frame": "pixels"},
        {"id": "t1/2", "response": "I do not know"},
    ]
    preds.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    report = evaluate_offline(OfflineConfig(str(mind2web_file), "mind2web", predictions=str(preds)))
    assert report["step_success_rate"]["k"] == 2
    assert report["format_error_rate"]["k"] == 1
    assert report["confusion"]["click"] == {"click": 1, "format_error": 1}
    limited = evaluate_offline(
        OfflineConfig(str(mind2web_file), "mind2web", predictions=str(preds), limit=1)
    )
    assert limited["samples"] == 1


def test_cli_offline_json_and_bad_input(mind2web_file, tmp_path, capsys):
    from pixelpilot.cli import main

    out = tmp_path / "cli"
    code = main(
        [
            "eval",
            "offline",
            str(mind2web_file),
            "--format",
            "mind2web",
            "--model",
            "expert",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["step_success_rate"]["value"] == 1.0
    assert (out / "report.html").is_file()
    code = main(
        [
            "eval",
            "offline",
            str(tmp_path / "missing.json"),
            "--format",
            "mind2web",
            "--model",
            "expert",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code = main(
        [
            "eval",
            "offline",
            str(mind2web_file),
            "--format",
            "mind2web",
            "--model",
            "expert",
            "--rules",
            "loose",
        ]
    )
    assert code == 2 and "unknown matching preset 'loose'" in capsys.readouterr().err
    code = main(
        [
            "eval",
            "offline",
            str(mind2web_file),
            "--format",
            "mind2web",
            "--model",
            "expert",
            "--point-threshold",
            "-1",
        ]
    )
    assert code == 2 and "point_threshold: must be positive" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_local_model_runs_through_offline_evaluation(screenspot_file, tmp_path):
    from pixelpilot.vlm import load
    from pixelpilot.vlm.tiny import build_tiny

    vlm = load(str(build_tiny()))
    cfg = OfflineConfig(
        str(screenspot_file),
        "screenspot",
        model="tiny",
        out=str(tmp_path),
        batch_size=4,
        max_new_tokens=12,
        prompt_kind="grounding",
    )
    report = evaluate_offline(cfg, vlm=vlm)
    answers = read_predictions(tmp_path / "predictions.jsonl")
    assert sorted(answers) == ["1", "2", "3", "4"]
    assert all(a["frame"] == vlm.profile.frame for a in answers.values())
    assert report["samples"] == 4
    # Whatever the random weights say, every sample is scored one way or the other.
    m = report["format_error_rate"]["k"] + report["action_type_accuracy"]["k"]
    assert m + sum(r["pred_type"] not in (None, "click") for r in _scores(tmp_path)) == 4


def _scores(out):
    return [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]


def test_offline_prompt_is_the_agents_prompt(tmp_path):
    """Offline scoring sends the model exactly what the agent would at the same step."""
    from PIL import Image

    from pixelpilot.agent.policy import VLMPolicy
    from pixelpilot.envs.base import Observation
    from pixelpilot.eval.datasets import Sample
    from pixelpilot.eval.offline import conversation
    from pixelpilot.vlm import ModelProfile, ScriptedVLM

    shots = []
    for i in range(8):
        path = tmp_path / f"s{i}.png"
        Image.new("RGB", (64, 48), (i * 30, 0, 0)).save(path)
        shots.append(path)
    answers = [f"Thought: step {i}\nAction: click(start_box='(1,1)')" for i in range(7)]
    profile = ModelProfile(name="m", history_images=3, max_images=None)
    sample = Sample(
        id="e/7",
        episode="e",
        task="t",
        step=7,
        image=str(shots[7]),
        instruction="Do it.",
        gold=({"type": "wait"},),
        screen=(64, 48),
        history=tuple((answers[i], str(shots[i])) for i in range(7)),
        coords=profile.coords,  # the recorded answers were written by this model
    )
    offline = conversation(sample, profile)

    policy = VLMPolicy(ScriptedVLM(answers, profile))
    policy.reset("Do it.")
    for i in range(7):
        policy.act(Observation(Image.open(shots[i]).convert("RGB"), "Do it."))
    online = policy.conversation(Observation(Image.open(shots[7]).convert("RGB"), "Do it."))

    def shape(conv):
        return [(m.role, m.text, [im.getpixel((0, 0)) for im in m.images]) for m in conv.messages]

    assert shape(offline) == shape(online)
    assert sum(len(m.images) for m in offline.messages) == 3

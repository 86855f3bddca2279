import json

import pytest

from pixelpilot.eval.datasets import DatasetFormatError, load_samples


def test_screenspot_adapter(screenspot_file):
    samples = load_samples(screenspot_file, "screenspot")
    assert len(samples) == 4
    s = samples[0]
    assert s.target == (90, 40, 110, 60) and s.gold == ({"type": "click", "x": 100, "y": 50},)
    assert s.screen == (200, 100) and s.task == "web/icon"


def test_androidcontrol_adapter_history(androidcontrol_file):
    samples = load_samples(androidcontrol_file, "androidcontrol")
    assert [s.id for s in samples] == ["a/0", "a/1", "a/2", "b/0", "b/1"]
    assert samples[1].gold == ({"type": "type", "content": "cats"},)
    assert samples[2].gold == ({"type": "press_back"},)
    assert samples[3].gold[0]["direction"] == "down"
    assert len(samples[2].history) == 2 and "click" in samples[2].history[0][0]
    assert samples[1].step_instruction == "type cats"


def test_mind2web_adapter(mind2web_file):
    samples = load_samples(mind2web_file, "mind2web")
    assert [s.gold[0]["type"] for s in samples] == ["click", "type", "click"]
    assert samples[0].target == (80, 40, 120, 60) and samples[1].target is None
    assert samples[2].step == 2 and len(samples[2].history) == 2


def test_trajectory_adapter(trajectory_dir):
    samples = load_samples(trajectory_dir, "trajectory")
    assert [s.id for s in samples] == ["ep-0/0", "ep-0/1", "ep-1/0"]
    assert samples[1].history[0][0].startswith("Thought: step 0")
    assert samples[0].frame == "uitars-1.0" and samples[0].instruction == "do the thing"


def test_bad_input_is_one_clear_error(tmp_path, screenspot_file):
    with pytest.raises(DatasetFormatError, match="unknown format"):
        load_samples(screenspot_file, "aitw")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "x", "bbox": [1, 2, 3, 4]}) + "\n")
    with pytest.raises(DatasetFormatError, match="bad.jsonl:1: missing 'img_filename'"):
        load_samples(bad, "screenspot")
    bad.write_text("{not json\n")
    with pytest.raises(DatasetFormatError, match="not valid JSON"):
        load_samples(bad, "mind2web")


def test_trajectories_of_an_online_run_keep_distinct_ids(trajectory_dir, tmp_path):
    import shutil

    root = tmp_path / "run" / "episodes"
    for task in ("miniwob__a", "miniwob__b"):
        shutil.copytree(trajectory_dir / "ep-0", root / task / "seed-00000")
    samples = load_samples(root, "trajectory")
    assert [s.id for s in samples] == [
        "miniwob__a/seed-00000/0",
        "miniwob__a/seed-00000/1",
        "miniwob__b/seed-00000/0",
        "miniwob__b/seed-00000/1",
    ]
    assert load_samples(root / "miniwob__a" / "seed-00000", "trajectory")[0].id == "seed-00000/0"


def _screenspot_pro(root, shrink: int = 1):
    """A ScreenSpot-Pro folder in the released layout: annotations/<app>.json lists with
    [x1, y1, x2, y2] boxes in pixels of img_size, images under images/<app>/."""
    from PIL import Image

    records = {
        "vscode_macos": [
            ("text", [100, 50, 140, 70], "Dev", "macos", "vscode"),
            ("icon", [10, 10, 18, 18], "Dev", "macos", "vscode"),
        ],
        "photoshop_windows": [
            ("icon", [300, 200, 340, 260], "Creative", "windows", "photoshop"),
        ],
    }
    (root / "annotations").mkdir(parents=True)
    for app, rows in records.items():
        (root / "images" / app).mkdir(parents=True)
        data = []
        for i, (ui_type, bbox, group, platform, application) in enumerate(rows):
            name = f"{app}/shot_{i}.png"
            Image.new("RGB", (400 // shrink, 300 // shrink), "white").save(root / "images" / name)
            data.append(
                {
                    "img_filename": name,
                    "bbox": bbox,
                    "instruction": f"open item {i} of {application}",
                    "instruction_cn": f"打开{application}的第{i}项",
                    "id": f"{app}_{i}",
                    "application": application,
                    "platform": platform,
                    "img_size": [400, 300],
                    "ui_type": ui_type,
                    "group": group,
                }
            )
        (root / "annotations" / f"{app}.json").write_text(json.dumps(data, ensure_ascii=False))
    return root


def test_screenspot_pro_reads_x1_y1_x2_y2_boxes_in_its_release_layout(tmp_path):
    root = _screenspot_pro(tmp_path / "ScreenSpot-Pro")
    samples = {s.id: s for s in load_samples(root, "screenspot-pro")}
    assert sorted(samples) == ["photoshop_windows_0", "vscode_macos_0", "vscode_macos_1"]
    s = samples["vscode_macos_0"]
    assert s.target == (100, 50, 140, 70) and s.gold == ({"type": "click", "x": 120, "y": 60},)
    assert s.screen == (400, 300) and s.task == "vscode"
    assert s.instruction == "open item 0 of vscode"
    assert s.meta["breakdown"] == {
        "group": "Dev",
        "ui_type": "text",
        "platform": "macos",
        "group/ui_type": "Dev/text",
    }
    # the plain screenspot adapter would read the same bbox as [x, y, w, h]: a wrong target
    plain = json.loads((root / "annotations" / "vscode_macos.json").read_text())
    (root / "images" / "as-screenspot.json").write_text(json.dumps(plain))
    wrong = load_samples(root / "images" / "as-screenspot.json", "screenspot")[0]
    assert wrong.target == (100, 50, 240, 120) != s.target
    one_file = load_samples(root / "annotations" / "photoshop_windows.json", "screenspot-pro")
    assert [x.id for x in one_file] == ["photoshop_windows_0"]
    assert one_file[0].target == (300, 200, 340, 260)
    cn = load_samples(root, "screenspot-pro-cn")
    assert cn[0].instruction.startswith("打开")


def test_screenspot_pro_boxes_follow_resized_images_and_bad_records_are_errors(tmp_path):
    root = _screenspot_pro(tmp_path / "half", shrink=2)
    s = {x.id: x for x in load_samples(root, "screenspot-pro")}["photoshop_windows_0"]
    assert s.screen == (200, 150) and s.target == (150, 100, 170, 130)
    bad = tmp_path / "bad.json"
    (tmp_path / "a.png").write_bytes((root / "images/vscode_macos/shot_0.png").read_bytes())
    record = {"img_filename": "a.png", "bbox": [50, 50, 10, 10], "instruction": "x"}
    record |= {"group": "Dev", "ui_type": "icon", "platform": "macos"}
    bad.write_text(json.dumps([record]))
    with pytest.raises(DatasetFormatError, match=r"bad.json:1: bbox must be \[x1, y1, x2, y2\]"):
        load_samples(bad, "screenspot-pro")
    bad.write_text(json.dumps([{**record, "bbox": [1, 1, 5, 5], "img_size": [0, 3]}]))
    with pytest.raises(DatasetFormatError, match="img_size"):
        load_samples(bad, "screenspot-pro")
    del record["ui_type"]
    bad.write_text(json.dumps([{**record, "bbox": [1, 1, 5, 5]}]))
    with pytest.raises(DatasetFormatError, match="missing 'ui_type'"):
        load_samples(bad, "screenspot-pro")


def test_screenspot_pro_report_breaks_down_by_group_and_ui_type(tmp_path):
    from pixelpilot.eval.offline import OfflineConfig, evaluate_offline

    root = _screenspot_pro(tmp_path / "ScreenSpot-Pro")
    answers = {
        "vscode_macos_0": (120, 60),
        "vscode_macos_1": (30, 30),
        "photoshop_windows_0": (320, 210),
    }
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        "".join(
            json.dumps({"id": k, "response": f"({x},{y})", "frame": "pixels"}) + "\n"
            for k, (x, y) in answers.items()
        )
    )
    out = tmp_path / "out"
    config = OfflineConfig(str(root), "screenspot-pro", predictions=str(preds), out=str(out))
    report = evaluate_offline(config)
    assert report["step_success_rate"]["k"] == 2 and report["samples"] == 3
    by = report["per_breakdown"]
    assert {k: v["samples"] for k, v in by["group"].items()} == {"Creative": 1, "Dev": 2}
    assert by["ui_type"]["text"]["step_success_rate"]["k"] == 1
    assert by["ui_type"]["icon"]["step_success_rate"]["k"] == 1
    assert by["group/ui_type"]["Dev/icon"]["step_success_rate"]["k"] == 0
    assert set(report["per_task"]) == {"vscode", "photoshop"}
    markdown = (out / "report.md").read_text()
    assert "## Per group" in markdown and "## Per ui_type" in markdown and "Dev/icon" in markdown


# --- data files are untrusted: images stay in their folder, numbers are finite -------------


def _screenspot_row(name, bbox=(1, 2, 3, 4)):
    return {"img_filename": name, "instruction": "x", "bbox": list(bbox)}


def _data_with_image(tmp_path, name, fmt="screenspot"):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if fmt == "screenspot":
        row = _screenspot_row(name)
    else:
        row = {"annotation_id": "t", "confirmed_task": "x", "screenshot": name,
               "operation": {"op": "CLICK"}, "bbox": [1, 2, 3, 4]}  # fmt: skip
    path = data / "data.jsonl"
    path.write_text(json.dumps(row) + "\n")
    return path


@pytest.fixture
def outside_png(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30), "red").save(tmp_path / "outside.png")
    return tmp_path / "outside.png"


@pytest.mark.parametrize("fmt", ["screenspot", "mind2web"])
@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_image_paths_stay_in_the_data_folder_unless_allowed(tmp_path, outside_png, fmt, how):
    name = {"dotdot": "../outside.png", "absolute": str(outside_png), "symlink": "link.png"}[how]
    path = _data_with_image(tmp_path, name, fmt)
    if how == "symlink":
        (path.parent / "link.png").symlink_to(outside_png)
    with pytest.raises(DatasetFormatError, match="leads out of .*--allow-outside-images"):
        load_samples(path, fmt)
    samples = load_samples(path, fmt, allow_outside_images=True)
    assert samples[0].image == str(outside_png) and samples[0].screen == (40, 30)
    with pytest.raises(DatasetFormatError, match="leads out of"):
        load_samples(path, fmt)  # the permission was for that one load only


def test_a_symlink_within_the_data_folder_is_fine(tmp_path):
    from PIL import Image

    path = _data_with_image(tmp_path, "link.png")
    Image.new("RGB", (40, 30)).save(path.parent / "real.png")
    (path.parent / "link.png").symlink_to(path.parent / "real.png")
    assert load_samples(path, "screenspot")[0].image == str(path.parent / "real.png")


def _png_claiming(width, height):
    import struct
    import zlib

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * ((width + 7) // 8 + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "content",
    [b"garbage" * 20, _png_claiming(40_000, 40_000), _png_claiming(9_000, 9_000)],
    ids=["garbage", "bomb", "over-area"],
)
def test_unusable_images_are_format_errors(tmp_path, content):
    path = _data_with_image(tmp_path, "shot.png")
    (path.parent / "shot.png").write_bytes(content)
    with pytest.raises(DatasetFormatError, match="data.jsonl:1: image shot.png is not usable"):
        load_samples(path, "screenspot")


def test_deep_nesting_bad_text_and_infinite_boxes_are_format_errors(tmp_path):
    from PIL import Image

    data = tmp_path / "data.json"
    data.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DatasetFormatError, match="nested too deeply"):
        load_samples(data, "screenspot")
    data = tmp_path / "data.jsonl"
    data.write_text("{}\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DatasetFormatError, match="data.jsonl:2: JSON nested too deeply"):
        load_samples(data, "mind2web")
    data.write_bytes(b'{"img_filename": "\xa1"}\n')
    with pytest.raises(DatasetFormatError, match="data.jsonl: not UTF-8 text"):
        load_samples(data, "screenspot")
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    data.write_text('{"img_filename": "a.png", "instruction": "x", "bbox": [1e999, 0, 1, 1]}\n')
    with pytest.raises(DatasetFormatError, match="bbox must hold finite numbers"):
        load_samples(data, "screenspot")


def test_eval_offline_refuses_outside_images_with_exit_2(tmp_path, outside_png, capsys):
    from pixelpilot.cli import main

    path = _data_with_image(tmp_path, "../outside.png")
    args = ["eval", "offline", str(path), "--format", "screenspot", "--model", "expert", "--json"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "leads out of" in err[0] and "--allow-outside-images" in err[0]
    assert main([*args, "--allow-outside-images"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 1


@pytest.mark.parametrize("fmt", ["screenspot", "androidcontrol", "mind2web"])
def test_a_folder_given_for_a_one_file_format_is_exit_2(tmp_path, capsys, fmt):
    from pixelpilot.cli import main

    args = ["eval", "offline", str(tmp_path), "--format", fmt, "--model", "expert", "--json"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"the {fmt} format is one file" in err[0]

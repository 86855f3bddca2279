"""The read fit (pixelpilot.train.read_fit): a head fitted on a real tiny kimi_k25 checkpoint's
frozen embeddings of labelled screens, read back as the read guide reads it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.tiny import build_tiny

    root = tmp_path_factory.mktemp("read-fit")
    model = build_tiny(root / "m", arch="kimi_k25", size="xs-14", cache=False)
    data = write_synthetic(root / "data", 12, seed=0, kinds=("link",))
    return model, data


def test_the_fitted_head_reads_its_screens_as_the_guide_reads_it(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    import json

    from pixelpilot.train.read_fit import fit_read_head, labelled_screens, screen_features
    from pixelpilot.train.reading import label_cells
    from pixelpilot.vlm.read_guide import ReadHead
    from pixelpilot.vlm.words import bare_word, word_class

    model, data = setup
    out = tmp_path / "head.safetensors"
    figures = fit_read_head(model, data, out, span=1, hidden=32, epochs=300, lr=1e-2)
    screens = labelled_screens(data)
    texts = [(s, i, t) for s in screens for i, t in label_cells(s.meta["labels"], s.screen, 14)[0]
             if word_class(t) is not None]  # fmt: skip
    assert figures["screens"] == len(screens) == 12
    assert figures["texts"] == len(texts) > 12
    head = ReadHead(out)
    hidden = json.loads((model / "config.json").read_text())["text_config"]["hidden_size"]
    assert (head.span, head.hidden, head.inner[0].shape) == (1, hidden, (32, 3 * hidden))
    assert head.words == {bare_word(t).lower() for _, _, t in texts}
    assert (
        sorted(head.rows)
        == sorted({word_class(t) for _, _, t in texts})
        == sorted(head.rows, key=head.rows.get)
    )  # a row a class, in class order
    # the guide's reading (ReadHead.log_probs on a screen's cells) names the fitted texts:
    # the features it computes at decoding are the ones the head was fitted on
    features, _ = screen_features(str(model), screens, span=0)
    hits = 0
    by_screen = {id(s): f for s, f in zip(screens, features, strict=True)}
    for sample, index, text in texts:
        cols = -(-sample.screen[0] // 14)
        row = head.log_probs(by_screen[id(sample)], cols)[index]
        hits += int(row.argmax()) == head.target(text)
    assert hits / len(texts) > 0.8


def test_bad_input_is_a_one_line_error(setup: tuple[Path, Path], tmp_path: Path) -> None:
    import json
    import shutil

    from pixelpilot.errors import DatasetFormatError
    from pixelpilot.train.read_fit import fit_read_head

    model, data = setup
    with pytest.raises(ValueError, match="span >= 0, hidden >= 0 and epochs >= 1"):
        fit_read_head(model, data, tmp_path / "h", span=-1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFormatError, match="no samples"):
        fit_read_head(model, tmp_path / "empty", tmp_path / "h")
    bare = tmp_path / "bare"
    shutil.copytree(data, bare)
    for path in bare.rglob("trajectory.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "labels"}) + "\n"
                                for r in rows))  # fmt: skip
    with pytest.raises(ValueError, match="no recorded step with labels"):
        fit_read_head(model, bare, tmp_path / "h")
    assert not (tmp_path / "h").exists()

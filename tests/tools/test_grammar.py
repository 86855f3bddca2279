"""parse_response / format_action / format_response on the forms UI-TARS models write."""

from __future__ import annotations

import pytest

from pixelpilot.errors import ParseError
from pixelpilot.tools import (
    CallUser,
    Click,
    Drag,
    Finished,
    Hotkey,
    LeftDouble,
    LongPress,
    OpenApp,
    PressBack,
    PressHome,
    RightSingle,
    Scroll,
    Type,
    Wait,
    format_action,
    format_response,
    parse_response,
    smart_resize,
)
from pixelpilot.tools.grammar import MAX_ANSWER_CHARS

SCREEN = (1280, 720)
PWNED = "x'); import os; os.system('echo pwned'); ('"
PWNED_RAW = "'" + PWNED + "'"
PWNED_ESCAPED = "'" + PWNED.replace("'", "\\'") + "'"


def one(text: str, frame: str = "pixels", screen=SCREEN, **kw):
    response = parse_response(text, frame, screen, **kw)
    assert len(response.actions) == 1, response
    return response.actions[0]


def test_uitars_10_box_tokens_are_relative_1000():
    text = "Thought: Click OK.\nAction: click(start_box='<|box_start|>(500,250)<|box_end|>')"
    response = parse_response(text, "uitars-1.0", (1920, 1080))
    assert response.thought == "Click OK."
    assert response.actions == (Click(x=960, y=270),)
    assert not response.clamped


def test_uitars_15_point_is_absolute_on_the_resized_image():
    h, w = smart_resize(720, 1280)
    assert (w, h) == (1288, 728)
    action = one("Action: click(point='<point>644 364</point>')", "uitars-1.5")
    assert action == Click(x=640, y=360)  # the centre stays the centre


@pytest.mark.parametrize(
    "box",
    [
        "'(100,200)'",
        "'<|box_start|>(100,200)<|box_end|>'",
        "'(90,190,110,210)'",
        "'[90, 190, 110, 210]'",
        "'<bbox>90 190 110 210</bbox>'",
        "'<point>100 200</point>'",
        "'<|box_start|>(90,190),(110,210)<|box_end|>'",
        "(100, 200)",
        '"(100,200)"',
    ],
)
def test_every_point_and_box_notation_gives_the_same_point(box):
    assert one(f"Action: click(start_box={box})") == Click(x=100, y=200)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("left_single(start_box='(5,6)')", Click(x=5, y=6)),
        ("left_double(start_box='(5,6)')", LeftDouble(x=5, y=6)),
        ("right_single(start_box='(5,6)')", RightSingle(x=5, y=6)),
        ("long_press(point='<point>5 6</point>')", LongPress(x=5, y=6)),
        ("drag(start_box='(1,2)', end_box='(3,4)')", Drag(x1=1, y1=2, x2=3, y2=4)),
        ("select(start_box='(1,2)', end_box='(3,4)')", Drag(x1=1, y1=2, x2=3, y2=4)),
        (
            "drag(start_point='<point>1 2</point>', end_point='<point>3 4</point>')",
            Drag(x1=1, y1=2, x2=3, y2=4),
        ),
        ("hotkey(key='ctrl c')", Hotkey(keys=("ctrl", "c"))),
        ("hotkey(key='ctrl+c')", Hotkey(keys=("ctrl", "c"))),
        ("hotkey(key='ctrl +')", Hotkey(keys=("ctrl", "+"))),
        ("hotkey(key='ctrl++')", Hotkey(keys=("ctrl", "+"))),
        ("hotkey(key='Ctrl + Shift + T')", Hotkey(keys=("ctrl", "shift", "t"))),
        ("hotkey(hotkey='alt f4')", Hotkey(keys=("alt", "f4"))),
        ("press(key='enter')", Hotkey(keys=("enter",))),
        ("keydown(key='arrowleft')", Hotkey(keys=("left",))),
        ("type(content='hello')", Type(content="hello")),
        ("scroll(start_box='(5,6)', direction='down')", Scroll(x=5, y=6, direction="down")),
        (
            "scroll(point='<point>5 6</point>', direction='LEFT')",
            Scroll(x=5, y=6, direction="left"),
        ),
        ("scroll(direction='up')", Scroll(x=640, y=360, direction="up")),
        ("wait()", Wait()),
        ("finished()", Finished()),
        ("finished(content='All done.')", Finished(content="All done.")),
        (
            "finished(content='It\\'s done.\\nBye \\\"Al\\\"')",
            Finished(content='It\'s done.\nBye "Al"'),
        ),
        ("call_user()", CallUser()),
        ("open_app(app_name='Settings')", OpenApp(app_name="Settings")),
        ("press_home()", PressHome()),
        ("press_back()", PressBack()),
    ],
)
def test_action_names_map_to_our_types(call, expected):
    assert one(f"Thought: t\nAction: {call}") == expected


def test_reflection_and_action_summary():
    text = (
        "Reflection: The last click missed the menu.\n"
        "Action_Summary: Click the File menu.\n"
        "Action: click(start_box='(10,10)')"
    )
    response = parse_response(text, "pixels", SCREEN)
    assert response.reflection == "The last click missed the menu."
    assert response.action_summary == "Click the File menu."
    assert response.thought == "Click the File menu."


def test_missing_thought_think_prefix_and_full_width_colon():
    assert parse_response("Action: wait()", "pixels", SCREEN).thought is None
    bare = parse_response("click(start_box='(3,4)')", "pixels", SCREEN)
    assert bare.actions == (Click(x=3, y=4),)
    response = parse_response(
        "<think>The button is blue.</think>\nAction：click(start_box='(3,4)')", "pixels", SCREEN
    )
    assert response.thought == "The button is blue."
    assert response.actions == (Click(x=3, y=4),)
    both = parse_response("<think>x</think>Thought: y\nAction: wait()", "pixels", SCREEN)
    assert both.thought == "y"


@pytest.mark.parametrize("separator", ["\n\n", "\n", " ", "\n\n\n", "\nAction: ", "\n\nAction："])
def test_several_actions(separator):
    text = f"Thought: t\nAction: click(start_box='(1,2)'){separator}type(content='a\\n')"
    actions = parse_response(text, "pixels", SCREEN).actions
    assert actions == (Click(x=1, y=2), Type(content="a\n"))


@pytest.mark.parametrize(
    ("literal", "content"),
    [
        (r"'It\'s here'", "It's here"),
        (r"'say \"hi\"'", 'say "hi"'),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'line\n'", "line\n"),
        ("'two\nlines'", "two\nlines"),
        ("'breakpoint=3'", "breakpoint=3"),
        ("'see Action: click(start_box=x)'", "see Action: click(start_box=x)"),
        ("'it's fine'", "it's fine"),
        ("'call f(a') now'", "call f(a') now"),
        (r"'C:\\temp'", "C:\\temp"),
        (r"'tab\there'", "tab\there"),
        (PWNED_RAW, PWNED),
        (PWNED_ESCAPED, PWNED),
    ],
)
def test_type_content_comes_through_untouched(literal, content):
    action = one(f"Thought: t\nAction: type(content={literal})")
    assert action == Type(content=content)


def test_trailing_newline_means_submit():
    action = one(r"Action: type(content='query\n')")
    assert action.submit and action.text == "query"


def test_grounding_only_answers():
    assert one("(500,500)", "uitars-1.0", (1920, 1080)) == Click(x=960, y=540)
    assert one("<point>644 364</point>", "uitars-1.5") == Click(x=640, y=360)
    assert one("[10, 20, 30, 40]") == Click(x=20, y=30)
    assert one("<|box_start|>(7,8)<|box_end|>") == Click(x=7, y=8)


def test_end_tokens_are_ignored():
    assert one("Action: wait()<|im_end|>") == Wait()
    assert one("Action: click(start_box='(1,2)')\n[EOS]") == Click(x=1, y=2)


def test_out_of_screen_points_are_clamped_and_flagged():
    response = parse_response("Action: click(start_box='(5000,-3)')", "pixels", SCREEN)
    assert response.actions == (Click(x=1279, y=0),)
    assert response.clamped
    assert not parse_response("Action: click(start_box='(1279,719)')", "pixels", SCREEN).clamped


def test_min_and_max_pixels_are_settable():
    small = 256 * 28 * 28
    h, w = smart_resize(1080, 1920, max_pixels=small)
    assert w * h <= small
    text = f"Action: click(start_box='({w // 2},{h // 2})')"
    action = one(text, "uitars-1.5", (1920, 1080), max_pixels=small)
    assert action == Click(x=960, y=540)
    # the same text read with the default budget points somewhere else
    assert one(text, "uitars-1.5", (1920, 1080)) != action


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no action found"),
        ("I do not know.", "no action found"),
        ("Thought: nothing to do", "no action found"),
        ("Action: ", "empty action"),
        ("Action: hover(start_box='(1,2)')", "unknown action 'hover'"),
        ("Action: click()", "missing argument 'start_box'"),
        ("Action: click(start_box='(1,2,3)')", "2 or 4 numbers"),
        ("Action: click(start_box='(a,b)')", "bad coordinates"),
        ("Action: click(start_box='(1,2)', start_box='(1,2)')", "given twice"),
        ("Action: click(start_box='(1,2)', foo='x')", "unexpected argument 'foo'"),
        ("Action: type(content='abc", "unterminated string"),
        ("Action: type(content='abc')\nThat is all.", "expected '('"),
        ("Action: click(start_box=(1,2)", "expected ',' or ')'"),
        ("Action: wait(", "missing ')'"),
        ("Action: hotkey(key='ctrl blorp')", "unknown key name"),
        ("Action: hotkey(key='')", "hotkey"),
        ("Action: scroll(start_box='(1,2)', direction='sideways')", "scroll direction"),
        ("Action: open_app(app_name='  ')", "app_name"),
        ("<think>never closed", "unclosed <think>"),
        ("Action: click(start_box='(1" + "9" * 400 + ",2)')", "bad coordinates"),
    ],
)
def test_bad_answers_raise_parse_error_with_where_and_what(text, fragment):
    with pytest.raises(ParseError) as info:
        parse_response(text, "pixels", SCREEN)
    assert fragment in str(info.value)
    assert info.value.expected  # every error says what was expected
    assert info.value.text == text
    assert info.value.position is None or 0 <= info.value.position <= len(text)


def test_parse_error_position_points_at_the_problem():
    text = "Thought: t\nAction: click(start_box='(1,2)')\n\nhover(start_box='(1,2)')"
    with pytest.raises(ParseError) as info:
        parse_response(text, "pixels", SCREEN)
    assert text[info.value.position :].startswith("hover")
    assert "click" in info.value.expected


def test_screen_is_required_for_model_frames():
    with pytest.raises(ValueError, match="screen"):
        parse_response("Action: wait()", "uitars-1.5")
    with pytest.raises(ValueError, match="frame"):
        parse_response("Action: wait()", "uitars-2.0", SCREEN)


def test_format_action_in_each_frame():
    click = Click(x=640, y=360)
    assert format_action(click, "uitars-1.5", SCREEN) == "click(start_box='(644,364)')"
    assert format_action(click, "uitars-1.0", SCREEN) == "click(start_box='(500,500)')"
    assert format_action(click, "pixels") == "click(start_box='(640,360)')"
    assert format_action(Type(content="It's\n"), "pixels") == r"type(content='It\'s\n')"
    assert format_action(Hotkey(keys=("ctrl", "c")), "pixels") == "hotkey(key='ctrl c')"
    drag = format_action(Drag(x1=0, y1=0, x2=1279, y2=719), "uitars-1.0", SCREEN)
    assert drag == "drag(start_box='(0,0)', end_box='(999,999)')"
    assert format_action(Finished(), "pixels") == "finished()"


def test_format_response_joins_actions_with_blank_lines():
    text = format_response("Search.", [Click(x=1, y=2), Type(content="q\n")], "pixels", SCREEN)
    assert text == "Thought: Search.\nAction: click(start_box='(1,2)')\n\ntype(content='q\\n')"
    assert format_response(None, Wait(), "pixels") == "Action: wait()"
    with pytest.raises(ValueError, match="thought"):
        format_response("first\nAction: guess", Wait(), "pixels")
    response = parse_response(text, "pixels", SCREEN)
    assert response.thought == "Search."
    assert response.actions == (Click(x=1, y=2), Type(content="q\n"))


@pytest.mark.parametrize(
    "text",
    [
        "Action: wait()" + " " * 60_000 + "x",
        "Thought: " + " " * 60_000 + "Action: wait()",
        "(" + " " * 60_000 + ")x",
        "Action: wait()" + "[EOS] " * 10_000,
        "Thought:\n" * 7_000,
        "Action: type(content='" + "')x" * 20_000,
        "Action: " + "type(content='a') " * 3_500,
    ],
)
def test_large_hostile_answers_take_linear_time(text):
    import time

    assert len(text) <= MAX_ANSWER_CHARS  # under the cap, so the scanner really runs

    start = time.perf_counter()
    try:
        parse_response(text, "pixels", SCREEN)
    except ParseError:
        pass
    assert time.perf_counter() - start < 5.0  # quadratic scanning would take minutes here


def test_a_leading_byte_order_mark_is_dropped():
    text = "\ufeffThought: OK.\nAction: click(start_box='(3,4)')"
    response = parse_response(text, "pixels", SCREEN)
    assert response.thought == "OK." and response.actions == (Click(x=3, y=4),)
    assert parse_response("\ufeffclick(start_box='(3,4)')", "pixels", SCREEN).actions == (
        Click(x=3, y=4),
    )


def test_answers_over_the_size_cap_are_refused_before_parsing():
    ok = "Action: wait()" + " " * (MAX_ANSWER_CHARS - len("Action: wait()"))
    assert parse_response(ok, "pixels", SCREEN).actions == (Wait(),)
    with pytest.raises(ParseError, match=f"answer too long: .*limit is {MAX_ANSWER_CHARS}"):
        parse_response(ok + "x", "pixels", SCREEN)
    huge = "Thought: " + "a" * 10_000_000 + "\nAction: wait()"
    with pytest.raises(ParseError, match="10000024 characters"):
        parse_response(huge, "pixels", SCREEN)
    assert MAX_ANSWER_CHARS == 64 * 1024  # the documented limit

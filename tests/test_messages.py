"""Messages of every role and shape: content parts, images, tool calls — validated and rendered."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import promptgrid.spec.messages
from promptgrid.config import RunOptions, resolve
from promptgrid.errors import SpecError
from promptgrid.grid import expand, request_key
from promptgrid.providers.base import Request
from promptgrid.spec import Experiment

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def exp(prompt: Any, base_dir: Path | None = None, **fields: Any) -> Experiment:
    return Experiment(
        provider="echo", prompts={"p": prompt}, params={"model": "m"}, base_dir=base_dir, **fields
    )


def rendered(experiment: Experiment) -> list[tuple[dict[str, Any], ...]]:
    return [tuple(c.request.messages) for c in expand(resolve(experiment, RunOptions()))]


def test_every_role_and_a_tool_round_trip() -> None:
    messages = [
        {"role": "system", "content": "S"},
        {"role": "developer", "content": "D {{ x }}"},
        {"role": "user", "content": "U {{ x }}"},
        {"role": "assistant", "tool_calls": [
            {"id": "c1", "function": {"name": "f", "arguments": {"q": 1}}},
            {"id": "c2", "function": {"name": "g", "arguments": '{"raw": true}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "result {{ x }}"},
        {"role": "assistant", "content": [{"type": "text", "text": "T {{ x }}"}]},
    ]  # fmt: skip
    [sent] = rendered(exp(messages, vars={"x": [1]}))
    assert sent == (
        {"role": "system", "content": "S"},
        {"role": "developer", "content": "D 1"},
        {"role": "user", "content": "U 1"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}},
            {"id": "c2", "type": "function",
             "function": {"name": "g", "arguments": '{"raw": true}'}}]},
        {"role": "tool", "content": "result 1", "tool_call_id": "c1"},
        {"role": "assistant", "content": [{"type": "text", "text": "T 1"}]},
    )  # fmt: skip


def test_a_plain_message_hashes_as_it_always_did() -> None:
    # Requests written before content parts existed keep their cell ids (and their cache).
    [cell] = expand(resolve(exp("hello"), RunOptions()))
    assert cell.request.messages == ({"role": "user", "content": "hello"},)
    old_definition = Request("echo", "m", ({"role": "user", "content": "hello"},), {})
    assert cell.cell_id == request_key(old_definition, 0)


def test_the_api_kind_is_part_of_the_hash() -> None:
    chat = expand(resolve(exp("hello"), RunOptions()))
    responses = expand(resolve(exp("hello", api="responses"), RunOptions()))
    [a], [b] = list(chat), list(responses)
    assert b.request.api == "responses" and a.cell_id != b.cell_id
    assert b.cell_id == request_key(b.request, 0)  # the fast walk follows the definition


@pytest.mark.parametrize(
    ("message", "says"),
    [
        pytest.param({"role": "tool", "content": "x"}, "needs tool_call_id", id="tool-no-id"),
        pytest.param(
            {"role": "user", "content": "x", "tool_call_id": "c"},
            "takes no tool_call_id",
            id="id-on-user",
        ),
        pytest.param(
            {
                "role": "user",
                "content": "x",
                "tool_calls": [{"id": "c", "function": {"name": "f"}}],
            },
            "makes no tool calls",
            id="calls-on-user",
        ),
        pytest.param({"role": "user"}, "missing content", id="no-content"),
        pytest.param(
            {"role": "system", "content": [{"type": "image_url", "image_url": "http://x/a.png"}]},
            "an image in a system message",
            id="image-in-system",
        ),
        pytest.param(
            {"role": "user", "content": [{"type": "video", "url": "x"}]},
            "needs type: text, image_url or image_file",
            id="unknown-part",
        ),
        pytest.param(
            {"role": "user", "content": [{"type": "text", "txt": "x"}]},
            "unknown key 'txt'",
            id="misspelt-part-key",
        ),
        pytest.param({"role": "robot", "content": "x"}, "role", id="unknown-role"),
        pytest.param(
            {"role": "user", "content": [{"type": "text", "text": "{{ x"}]},
            "template syntax error",
            id="syntax-in-part",
        ),
    ],
)
def test_messages_the_apis_would_refuse_are_validation_errors(
    message: dict[str, Any], says: str
) -> None:
    with pytest.raises(SpecError, match=says):
        exp([message])


def test_an_unknown_part_key_suggests_the_right_one() -> None:
    with pytest.raises(SpecError, match=r"did you mean 'text'\?"):
        exp([{"role": "user", "content": [{"type": "text", "txt": "x"}]}])


def test_an_image_file_becomes_a_data_url(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(PNG)
    content = [{"type": "text", "text": "What is {{ x }}?"},
               {"type": "image_file", "path": "pics/a.png", "detail": "high"}]  # fmt: skip
    [sent] = rendered(exp([{"role": "user", "content": content}], tmp_path, vars={"x": [1]}))
    url = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    assert sent[0]["content"] == [
        {"type": "text", "text": "What is 1?"},
        {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
    ]


def test_image_paths_from_a_dataset_are_checked_per_cell(tmp_path: Path) -> None:
    (tmp_path / "a.webp").write_bytes(b"RIFF....WEBP")
    content = [{"type": "image_file", "path": "{{ picture }}"}]
    experiment = exp([{"role": "user", "content": content}], tmp_path,
                     cases=[{"picture": "a.webp"}, {"picture": "b.webp"}])  # fmt: skip
    cells = expand(resolve(experiment, RunOptions()))
    first = next(cells)
    assert first.request.messages[0]["content"][0]["image_url"]["url"].startswith(
        "data:image/webp;base64,"
    )
    with pytest.raises(SpecError, match=r"for cell 1 \(picture='b.webp'\): image file not found"):
        next(cells)


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("a.bmp", b"BM", "is not a PNG, JPEG, GIF or WebP image"),
        ("missing.png", None, "image file not found"),
        ("big.png", b"x" * 101, "has 101 bytes; at most 100 are sent"),
    ],
)
def test_a_literal_image_path_is_checked_at_validation(
    name: str,
    data: bytes | None,
    says: str,
    write_yaml: Callable[[str, str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(promptgrid.spec.messages, "MAX_IMAGE_BYTES", 100)
    path = write_yaml(
        f"""\
        provider: echo
        prompts:
          p:
            - role: user
              content:
                - {{type: text, text: Look}}
                - {{type: image_file, path: {name}}}
        params: {{model: m}}
        """
    )
    if data is not None:
        (path.parent / name).write_bytes(data)
    with pytest.raises(SpecError, match=says) as caught:
        Experiment.from_yaml(path)
    assert "exp.yaml:7 prompts.p[0].content[1].path" in str(caught.value)


# --------------------------------------------------------------------------- files stay inside


def _outside(tmp_path: Path) -> tuple[Path, Path]:
    """An experiment folder ``tmp_path/exp/sub`` and a real PNG outside it."""
    folder = tmp_path / "exp" / "sub"
    folder.mkdir(parents=True)
    (folder / "inside.png").write_bytes(PNG)
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "secret.png"
    secret.write_bytes(PNG + b"secret")
    return folder, secret


@pytest.mark.parametrize("kind", ["dot-dot", "absolute", "symlink-out", "symlinked-folder"])
def test_an_image_path_from_a_row_must_stay_in_the_experiment_folder(
    tmp_path: Path, kind: str
) -> None:
    folder, secret = _outside(tmp_path)
    picture = {"dot-dot": "../../outside/secret.png", "absolute": str(secret)}.get(kind)
    if kind == "symlink-out":
        (folder / "link.png").symlink_to(secret)
        picture = "link.png"
    if kind == "symlinked-folder":
        (folder / "linked").symlink_to(secret.parent, target_is_directory=True)
        picture = "linked/secret.png"
    content = [{"type": "image_file", "path": "{{ picture }}"}]
    experiment = exp([{"role": "user", "content": content}], folder,
                     cases=[{"picture": "inside.png"}, {"picture": picture}])  # fmt: skip
    cells = expand(resolve(experiment, RunOptions()))
    assert (
        next(cells)
        .request.messages[0]["content"][0]["image_url"]["url"]
        .startswith("data:image/png;base64,")
    )
    with pytest.raises(SpecError, match=r"for cell 1 .*outside the experiment's folder") as info:
        next(cells)
    assert "files: {allow: [...]}" in str(info.value)


@pytest.mark.parametrize("kind", ["loop", "nul"])
def test_a_path_that_cannot_be_looked_up_is_one_problem(tmp_path: Path, kind: str) -> None:
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    path = "a.png" if kind == "loop" else "x\0.png"
    content = [{"type": "image_file", "path": path}]
    with pytest.raises(SpecError, match="image file"):
        exp([{"role": "user", "content": content}], tmp_path)


def test_a_literal_path_outside_is_refused_at_validation(
    tmp_path: Path, write_yaml: Callable[[str, str], Path]
) -> None:
    path = write_yaml(
        """\
        provider: echo
        prompts:
          p:
            - role: user
              content:
                - {type: image_file, path: ../outside/secret.png}
        params: {model: m}
        """
    )
    (tmp_path.parent / "outside").mkdir(exist_ok=True)
    (tmp_path.parent / "outside" / "secret.png").write_bytes(PNG)
    with pytest.raises(SpecError, match="outside the experiment's folder") as caught:
        Experiment.from_yaml(path)
    assert "exp.yaml:6 prompts.p[0].content[0].path" in str(caught.value)


def test_files_allow_names_more_folders(tmp_path: Path) -> None:
    folder, _ = _outside(tmp_path)
    content = [{"type": "image_file", "path": "{{ picture }}"}]
    allowed = exp([{"role": "user", "content": content}], folder,
                  cases=[{"picture": "../../outside/secret.png"}],
                  files={"allow": ["../../outside"]})  # fmt: skip
    [sent] = rendered(allowed)
    assert sent[0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    with pytest.raises(SpecError, match=r"files\.allow\[0\]: no such folder"):
        exp("hi", folder, files={"allow": ["missing"]})


@pytest.mark.parametrize(
    ("data", "says"),
    [
        pytest.param(b"#!/bin/sh\necho hi\n", "is not a PNG, JPEG, GIF or WebP image", id="text"),
        pytest.param(b"", "is not a PNG, JPEG, GIF or WebP image", id="empty"),
        pytest.param(b"RIFF\0\0\0\0WAVE", "is not a PNG, JPEG, GIF or WebP image", id="wav"),
    ],
)
def test_an_image_file_must_be_an_image_by_its_bytes(
    tmp_path: Path, data: bytes, says: str
) -> None:
    (tmp_path / "a.png").write_bytes(data)
    content = [{"type": "image_file", "path": "{{ p }}"}]
    with pytest.raises(SpecError, match=says):
        exp([{"role": "user", "content": content}], tmp_path, vars={"p": ["a.png"]})


def test_the_media_type_comes_from_the_bytes(tmp_path: Path) -> None:
    gif = b"GIF89a" + bytes(10)
    (tmp_path / "really-a-gif.png").write_bytes(gif)
    content = [{"type": "image_file", "path": "really-a-gif.png"}]
    [sent] = rendered(exp([{"role": "user", "content": content}], tmp_path))
    url = sent[0]["content"][0]["image_url"]["url"]
    assert url == f"data:image/gif;base64,{base64.b64encode(gif).decode()}"


def test_every_image_is_recorded_by_size_and_hash_whatever_its_size(tmp_path: Path) -> None:
    import hashlib

    import promptgrid

    tiny = b"\x89PNG\r\n\x1a\n\0\0"  # 10 bytes: its base64 is shorter than 64 characters
    (tmp_path / "tiny.png").write_bytes(tiny)
    written = "data:image/gif;base64," + base64.b64encode(b"GIF89a").decode()
    content = [{"type": "image_file", "path": "tiny.png"},
               {"type": "image_url", "image_url": written}]  # fmt: skip
    df = promptgrid.run(exp([{"role": "user", "content": content}], tmp_path),
                        results_dir=tmp_path / "r", progress=False)  # fmt: skip
    shown = df["messages"].iloc[0]
    assert base64.b64encode(tiny).decode() not in shown
    for media, data in (("png", tiny), ("gif", b"GIF89a")):
        digest = hashlib.sha256(data).hexdigest()
        assert f"data:image/{media};base64,<{len(data)} bytes, sha256:{digest}>" in shown


def test_the_cli_stops_at_a_row_whose_image_lies_outside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib
    import sqlite3

    from promptgrid.cli import main

    folder, secret = _outside(tmp_path)
    (folder / "rows.csv").write_text("picture\ninside.png\n../../outside/secret.png\n")
    path = folder / "exp.yaml"
    path.write_text(
        "provider: echo\n"
        "prompts:\n"
        "  p:\n"
        "    - role: user\n"
        "      content:\n"
        "        - {type: image_file, path: '{{ picture }}'}\n"
        "cases_file: rows.csv\n"
        "params: {model: m}\n"
    )
    results = tmp_path / "r"
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--results-dir", str(results), "--no-progress"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert f"{path}:6 prompts.p[0].content[0].path: failed to render for cell 1" in err
    assert "outside the experiment's folder" in err
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    db = sqlite3.connect(results / "promptgrid.sqlite")
    try:
        stored = [row[0] for row in db.execute("SELECT request_json FROM requests")]
    finally:
        db.close()
    assert len(stored) <= 1 and not any(digest in text for text in stored)


# ---------------------------------------------------------------------------- templated tool calls


def history(arguments: Any, **call: Any) -> list[dict[str, Any]]:
    """A user question, the assistant's call of get_weather, and the tool's result."""
    return [
        {"role": "user", "content": "Weather in {{ city }}?"},
        {"role": "assistant", "tool_calls": [
            {"id": call.get("id", "c1"),
             "function": {"name": call.get("name", "get_weather"), "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call.get("id", "c1"), "content": "sunny"},
    ]  # fmt: skip


def sent_calls(experiment: Experiment) -> list[tuple[str, str, str, str]]:
    """(id, name, arguments) of the assistant's call, and the tool message's id, per cell."""
    out = []
    for messages in rendered(experiment):
        [call] = messages[1]["tool_calls"]
        name, arguments = call["function"]["name"], call["function"]["arguments"]
        out.append((call["id"], name, arguments, messages[2]["tool_call_id"]))
    return out


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"city": "{{ city }}", "days": 3}, id="mapping"),
        pytest.param('{"city": "{{ city }}", "days": 3}', id="json-text"),
    ],
)
def test_tool_call_arguments_are_rendered_as_templates_and_json_escaped(arguments: Any) -> None:
    experiment = exp(history(arguments), vars={"city": ["Paris", 'Say "hi"\\n']})
    assert [json.loads(args) for _, _, args, _ in sent_calls(experiment)] == [
        {"city": "Paris", "days": 3}, {"city": 'Say "hi"\\n', "days": 3},
    ]  # fmt: skip


def test_every_string_of_a_tool_call_is_a_template() -> None:
    experiment = exp(history({"q": 1}, id="call_{{ n }}", name="{{ tool }}"),
                     vars={"n": [7], "tool": ["lookup"], "city": ["x"]})  # fmt: skip
    assert sent_calls(experiment) == [("call_7", "lookup", '{"q": 1}', "call_7")]


def test_tool_calls_without_templates_are_sent_exactly_as_written() -> None:
    raw = '{ "spaced" :  true }'  # JSON text, kept as written (its request hash too)
    assert sent_calls(exp(history(raw), vars={"city": ["x"]}))[0][2] == raw
    text = '{"days": {{ days }}}'  # a template, but not JSON until rendered: the whole text
    assert sent_calls(exp(history(text), vars={"city": ["x"], "days": [2]}))[0][2] == '{"days": 2}'


@pytest.mark.parametrize(
    ("arguments", "says", "where"),
    [
        pytest.param({"city": "{{ town }}"}, "undefined template variable 'town'",
                     "prompts.p[1].tool_calls[0].function.arguments.city", id="undefined"),
        pytest.param({"city": "{{ city"}, "template syntax error",
                     "prompts.p[1].tool_calls[0].function.arguments.city", id="syntax"),
        pytest.param({"city": "{{ city.upper(1, 2) }}"}, "failed to render",
                     "prompts.p[1].tool_calls[0].function.arguments.city", id="render"),
    ],
)  # fmt: skip
def test_a_tool_call_template_that_cannot_render_is_refused_at_validation_where_it_is(
    arguments: Any, says: str, where: str
) -> None:
    with pytest.raises(SpecError, match=says) as found:
        exp(history(arguments), vars={"city": ["Paris"]})
    assert where in str(found.value)


def test_the_table_shows_the_rendered_tool_call_that_was_sent(tmp_path: Path) -> None:
    import promptgrid

    df = promptgrid.run(exp(history({"city": "{{ city }}"}), vars={"city": ["Oslo"]}),
                        results_dir=tmp_path, progress=False)  # fmt: skip
    [call] = json.loads(df["messages"][0])[1]["tool_calls"]
    assert call["function"]["arguments"] == '{"city": "Oslo"}'

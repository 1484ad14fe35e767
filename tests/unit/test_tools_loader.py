"""``--tools``: a module's public functions become tools with a JSON schema from their signature,
type hints and docstring; calls run with the model's arguments; bad modules are one-line errors."""

from __future__ import annotations

import asyncio
import enum
import textwrap
import threading
from pathlib import Path
from typing import Literal, TypedDict

import pytest

from processors.tools import Tool, ToolArgumentsError, function_schema, load_tools
from processors.voicelive.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "pipelines" / "examples" / "tools.py"


def module(tmp_path: Path, source: str, name: str = "my_tools.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return str(path)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(TypedDict):
    x: float
    y: float


def test_schema_comes_from_signature_hints_and_docstring() -> None:
    def find_route(
        start: str,
        stops: list[str],
        mode: Literal["walk", "drive"] = "walk",
        limit: int | None = None,
        colour: Colour = Colour.RED,
        weights: dict[str, float] | None = None,
        corner: Point | None = None,
    ) -> str:
        """Plan a route.

        Longer explanation for the model.

        Args:
            start: where the route begins.
            stops: places to pass by.
            mode: how to travel.
        """
        return ""

    schema = function_schema(find_route).to_default_dict()
    assert schema["name"] == "find_route"
    assert schema["description"] == "Plan a route.\n\nLonger explanation for the model."
    props = schema["parameters"]["properties"]
    assert props["start"] == {"type": "string", "description": "where the route begins."}
    assert props["stops"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "places to pass by.",
    }
    assert props["mode"] == {
        "type": "string",
        "enum": ["walk", "drive"],
        "description": "how to travel.",
    }
    assert props["limit"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert props["colour"] == {"enum": ["red", "blue"]}
    assert props["weights"] == {
        "anyOf": [{"type": "object", "additionalProperties": {"type": "number"}}, {"type": "null"}]
    }
    assert props["corner"]["anyOf"][0] == {
        "type": "object",
        "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
        "required": ["x", "y"],
    }
    assert schema["parameters"]["required"] == ["start", "stops"]


def test_public_functions_of_a_file_become_tools_in_order(tmp_path: Path) -> None:
    spec = module(
        tmp_path,
        '''
        from os.path import join          # imported: not a tool
        import json

        def first(a: int) -> int:
            """One."""
            return a

        def _private() -> None: ...

        class NotAFunction: ...

        async def second() -> str:
            """Two."""
            return "2"
    ''',
    )
    tools = load_tools(spec)
    assert tools.names == ["first", "second"]
    assert [t["type"] for t in tools.to_wire()] == ["function", "function"]
    assert [s.name for s in tools.schema.standard_tools] == ["first", "second"]


def test_all_decides_which_functions_are_tools(tmp_path: Path) -> None:
    """Imports from the tool file's own folder work, as they would for ``python my_tools.py``."""
    module(
        tmp_path,
        """
        def shout(text: str) -> str:
            return text.upper()
    """,
        name="tools_helper_for_all.py",
    )
    spec = module(
        tmp_path,
        """
        from tools_helper_for_all import shout
        __all__ = ["shout", "shown"]

        def shown(x: str) -> str:
            return x

        def hidden() -> None: ...
    """,
    )
    assert load_tools(spec).names == ["shout", "shown"]


def test_a_module_name_loads_like_a_path() -> None:
    by_name = load_tools("pipelines.examples.tools")
    by_path = load_tools(str(EXAMPLE))
    assert by_name.names == by_path.names == ["get_time", "get_date", "get_weather", "roll_dice"]
    assert by_name.to_wire() == by_path.to_wire()


async def test_calls_run_with_the_models_arguments_and_return_text() -> None:
    tools = load_tools(str(EXAMPLE)).handlers()
    out = await tools["get_weather"](
        '{  \n  "city": "London" \n} \n'
    )  # whitespace as the service sends it
    assert out == '{"city": "London", "forecast": "foggy, 12 degrees", "unit": "celsius"}'
    assert 1 <= int(await tools["roll_dice"]({"sides": 3})) <= 3
    assert (await tools["get_time"]("")).startswith("The clock says ")
    with pytest.raises(LookupError, match="no forecast for Atlantis"):
        await tools["get_weather"]('{"city": "Atlantis"}')


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ('{"city": "x", "town": "y"}', "unexpected keyword argument 'town'"),
        ("{}", "missing a required argument: 'city'"),
        ("{not json", "not JSON"),
        ('["London"]', "not a JSON object"),
    ],
)
async def test_arguments_that_do_not_fit_are_refused(arguments: str, problem: str) -> None:
    tool = load_tools(str(EXAMPLE)).handlers()["get_weather"]
    with pytest.raises(ToolArgumentsError, match=problem):
        await tool(arguments)


async def test_a_blocking_tool_runs_in_a_thread_while_the_loop_goes_on() -> None:
    """The tool waits for something only the event loop can do: on the loop it would deadlock."""
    loop_did_it = threading.Event()

    def wait_for_the_loop() -> str:
        """Blocks until the loop has run a callback."""
        return f"{loop_did_it.wait(timeout=5)} in {threading.current_thread().name}"

    tool = Tool(wait_for_the_loop, function_schema(wait_for_the_loop))
    asyncio.get_running_loop().call_later(0.05, loop_did_it.set)
    assert await asyncio.wait_for(tool("{}"), 10) == "True in tool-wait_for_the_loop"
    thread = [t for t in threading.enumerate() if t.name == "tool-wait_for_the_loop"]
    assert not thread or thread[0].daemon  # a stuck tool never holds the process's exit


def test_results_are_text_for_the_model() -> None:
    from processors.tools import tool_output

    assert tool_output("plain") == "plain"
    assert tool_output({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert tool_output(None) == "null"
    assert tool_output(Path("/x")) == '"/x"'


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "def f(when: 'datetime.datetime') -> None: ...\nimport datetime",
            "parameter 'when' of f(): no JSON schema for datetime",
        ),
        ("def f(x) -> None: ...", "parameter 'x' of f() has no type hint"),
        ("def f(*names: str) -> None: ...", "parameter 'names' of f(): *args and **kwargs"),
        ("def f(x: dict[int, str]) -> None: ...", "dict keys must be str"),
        ("def f(x: 'Missing') -> None: ...", "the type hints of f() cannot be read (NameError"),
        ("def _f() -> None: ...\nX = 1", "has no public functions"),
        ("__all__ = ['gone']", "lists 'gone' in __all__ but lacks it"),
        ("__all__ = ['X']\nX = 1", "'X' in the __all__ of"),
        ("import not_a_module_anywhere", "No module named 'not_a_module_anywhere'"),
        ("raise RuntimeError('no config file')", "failed: RuntimeError: no config file"),
        ("import sys\nsys.exit(3)", "failed: SystemExit: 3"),
        ("def f(:\n  pass", "my_tools.py line 1: "),
    ],
)
def test_a_bad_module_is_one_config_error(tmp_path: Path, source: str, expected: str) -> None:
    spec = module(tmp_path, source)
    with pytest.raises(ConfigError) as caught:
        load_tools(spec)
    message = str(caught.value)
    assert message.startswith("--tools: ") and expected in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("nowhere/tools.py", "--tools: 'nowhere/tools.py' not found"),
        ("no_such_tools_module", "--tools: no module named 'no_such_tools_module'"),
        ("pipelines.no_such_tools", "--tools: no module named 'pipelines.no_such_tools'"),
        ("   ", "--tools is empty"),
    ],
)
def test_a_missing_module_is_one_config_error(spec: str, expected: str) -> None:
    with pytest.raises(ConfigError, match="^" + expected.replace(".", r"\.").replace("(", r"\(")):
        load_tools(spec)


def test_the_bundled_example_is_found_by_its_short_path_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--tools examples/tools.py`` (the issue's and the README's command) from a folder that
    has no ``examples/``: the project's own example; a file of that name in the folder wins."""
    from pipelines.config import parse_config

    monkeypatch.chdir(tmp_path)
    argv = ["--local", "--model", "local", "--tools", "examples/tools.py"]
    config, _ = parse_config(argv, env={}, dotenv_path=None)
    assert config.tools is not None and "get_time" in config.tools.names
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "tools.py").write_text(
        'def shout(text: str) -> str:\n    """Upper case."""\n    return text.upper()\n'
    )
    config, _ = parse_config(argv, env={}, dotenv_path=None)
    assert config.tools is not None and config.tools.names == ["shout"]
    with pytest.raises(ConfigError, match="'examples/nothing.py' not found"):
        parse_config([*argv[:-1], "examples/nothing.py"], env={}, dotenv_path=None)

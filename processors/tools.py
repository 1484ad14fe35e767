"""Tools a user declares as plain Python functions: ``--tools my_tools.py`` (or ``package.module``).

:func:`load_tools` imports the module and turns its public functions (those in ``__all__`` if it
has one, else every function defined in the module whose name does not start with ``_``) into
:class:`Tool` objects: the JSON schema comes from the signature, the type hints and the docstring
(pipecat's :class:`FunctionSchema`), and calling a tool with the model's JSON arguments runs the
function (``async def`` on the event loop, plain ``def`` in a thread of its own so it never blocks
the loop) and returns its result as the text of a ``function_call_output``. Anything wrong with the
module is a :class:`ConfigError` of one line, raised before any connection.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import importlib.util
import inspect
import json
import re
import sys
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

import docstring_parser
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema

from processors.voicelive.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TYPES_HINT = "use str, int, float, bool, list[...], dict[str, ...], Literal, Enum or TypedDict"


class NoSchema(TypeError):
    """A type hint with no JSON schema equivalent."""


class ToolArgumentsError(ValueError):
    """The model's arguments do not fit the function's signature."""


def json_schema(hint: Any) -> dict[str, Any]:
    """The JSON schema of a parameter's type hint; raise :class:`NoSchema` when there is none."""
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    if hint is Any:
        return {}
    if hint in simple:
        return {"type": simple[hint]}
    if hint in (list, tuple, set, frozenset):
        return {"type": "array"}
    if hint is dict:
        return {"type": "object"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [m.value for m in hint]
        if not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise NoSchema(f"enum {hint.__name__} has values that are not JSON scalars")
        return {"enum": values}
    if is_typeddict(hint):
        fields = get_type_hints(hint)
        required = sorted(getattr(hint, "__required_keys__", fields))
        schema = {"type": "object", "properties": {k: json_schema(t) for k, t in fields.items()}}
        return {**schema, "required": required} if required else schema
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        kinds = {type(a) for a in args}
        if len(kinds) == 1 and kinds <= set(simple):
            return {"type": simple[kinds.pop()], "enum": list(args)}
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        return {"anyOf": [json_schema(a) for a in args]}
    if origin in (list, set, frozenset) or (origin is tuple and args[1:] == (Ellipsis,)):
        return {"type": "array", "items": json_schema(args[0])} if args else {"type": "array"}
    if origin is tuple:
        items = [json_schema(a) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(args), "maxItems": len(args)}
    if origin is dict:
        if args and args[0] is not str:
            raise NoSchema("dict keys must be str in JSON")
        if not args:
            return {"type": "object"}
        return {"type": "object", "additionalProperties": json_schema(args[1])}
    raise NoSchema(f"no JSON schema for {getattr(hint, '__name__', None) or repr(hint)}")


@dataclass(frozen=True)
class Tool:
    """One function the model may call. Calling it runs the function with the model's arguments
    and returns the text to send back as ``function_call_output`` (a handler for
    ``VoiceLiveAgentService.register_function``)."""

    function: Callable[..., Any]
    schema: FunctionSchema

    @property
    def name(self) -> str:
        """The tool's name: the function's."""
        return self.schema.name

    def to_wire(self) -> dict[str, Any]:
        """The entry of ``session.tools``: ``{type: function, name, description, parameters}``."""
        return {"type": "function", **self.schema.to_default_dict()}

    def bind(self, arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
        """The keyword arguments for the function; raise :class:`ToolArgumentsError`."""
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                raise ToolArgumentsError(f"bad arguments: not JSON ({exc})") from None
        arguments = {} if arguments is None else arguments
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError("bad arguments: not a JSON object")
        try:
            inspect.signature(self.function).bind(**arguments)
        except TypeError as exc:
            raise ToolArgumentsError(f"bad arguments: {exc}") from None
        return dict(arguments)

    async def __call__(self, arguments: Mapping[str, Any] | str | None) -> str:
        """Run the function; its exceptions propagate (the service makes them an error result)."""
        kwargs = self.bind(arguments)
        if inspect.iscoroutinefunction(self.function):
            result = await self.function(**kwargs)
        else:
            result = await _in_daemon_thread(self.function, kwargs, self.name)
            if inspect.isawaitable(result):
                result = await result
        return tool_output(result)


def tool_output(result: Any) -> str:
    """A function's result as ``function_call_output`` text: a string as it is, the rest as JSON."""
    if isinstance(result, str):
        return result
    return json.dumps(result, ensure_ascii=False, default=str)


async def _in_daemon_thread(function: Callable[..., Any], kwargs: dict[str, Any], name: str) -> Any:
    """Run a blocking function in a daemon thread of its own: a tool stuck forever costs one idle
    thread, never the event loop, the default executor or the process's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        try:
            result, error = function(**kwargs), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    threading.Thread(target=work, name=f"tool-{name}", daemon=True).start()
    return await future


@dataclass(frozen=True)
class ToolSet:
    """The tools of one module, in the module's order."""

    source: str
    tools: tuple[Tool, ...]

    @property
    def names(self) -> list[str]:
        """The tools' names, in the module's order."""
        return [t.name for t in self.tools]

    def to_wire(self) -> list[dict[str, Any]]:
        """``session.tools``."""
        return [t.to_wire() for t in self.tools]

    @property
    def schema(self) -> ToolsSchema:
        """The same tools as pipecat's :class:`ToolsSchema` (for pipecat LLM services)."""
        return ToolsSchema(standard_tools=[t.schema for t in self.tools])

    def handlers(self) -> dict[str, Tool]:
        """Tool name -> handler, for ``register_function``."""
        return {t.name: t for t in self.tools}


def function_schema(function: Callable[..., Any]) -> FunctionSchema:
    """The tool schema of ``function``; raise :class:`ConfigError` naming the bad parameter."""
    name = function.__name__
    if not _NAME.match(name):
        raise ConfigError(f"tool name {name!r} must be 1-64 letters, digits, _ or -")
    doc = docstring_parser.parse(inspect.getdoc(function) or "")
    described = {p.arg_name: (p.description or "").strip() for p in doc.params}
    try:
        hints = get_type_hints(function)
    except Exception as exc:  # an annotation naming something undefined
        problem = f"{exc.__class__.__name__}: {exc}"
        raise ConfigError(f"the type hints of {name}() cannot be read ({problem})") from None
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(function).parameters.values():
        where = f"parameter {param.name!r} of {name}()"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"{where}: *args and **kwargs cannot be described; name them")
        if param.kind is param.POSITIONAL_ONLY:
            raise ConfigError(f"{where} is positional-only; the model passes arguments by name")
        if param.name not in hints:
            raise ConfigError(f"{where} has no type hint; {_TYPES_HINT}")
        try:
            schema = json_schema(hints[param.name])
        except NoSchema as exc:
            raise ConfigError(f"{where}: {exc}; {_TYPES_HINT}") from None
        if described.get(param.name):
            schema["description"] = described[param.name]
        properties[param.name] = schema
        if param.default is param.empty:
            required.append(param.name)
    description = "\n\n".join(p for p in (doc.short_description, doc.long_description) if p)
    return FunctionSchema(name, description.strip(), properties, required)


def _import(spec: str) -> types.ModuleType:
    """Import ``spec``: a ``.py`` path (its folder goes on ``sys.path``, as ``python file.py``
    would do) or a dotted module name."""
    is_path = spec.endswith(".py") or "/" in spec or "\\" in spec
    try:
        if is_path:
            path = Path(spec).expanduser()
            if not path.is_file():
                problem = "is not a file" if path.exists() else "not found"
                raise ConfigError(f"--tools: {spec!r} {problem}")
            folder = str(path.resolve().parent)
            if folder not in sys.path:
                sys.path.insert(0, folder)
            name = "voicelive_tools_" + re.sub(r"\W", "_", path.stem)
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise ConfigError(f"--tools: {spec!r} cannot be imported as a Python module")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
            return module
        return importlib.import_module(spec)
    except ConfigError:
        raise
    except ModuleNotFoundError as exc:
        if not is_path and exc.name and (spec == exc.name or spec.startswith(exc.name + ".")):
            raise ConfigError(
                f"--tools: no module named {spec!r} (give a .py path or an importable module)"
            ) from None
        raise ConfigError(f"--tools: importing {spec!r} failed: {exc}") from None
    except SyntaxError as exc:
        where = f"{Path(exc.filename or spec).name} line {exc.lineno}" if exc.lineno else spec
        raise ConfigError(f"--tools: {where}: {exc.msg}") from None
    except BaseException as exc:  # noqa: BLE001 - a module may raise anything, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        problem = f"{exc.__class__.__name__}: {exc}"
        raise ConfigError(f"--tools: importing {spec!r} failed: {problem}") from None


def _public_functions(module: types.ModuleType, spec: str) -> list[Callable[..., Any]]:
    exported = getattr(module, "__all__", None)
    if exported is not None:
        functions = []
        for name in exported:
            value = getattr(module, name, None)
            if value is None:
                raise ConfigError(f"--tools: {spec!r} lists {name!r} in __all__ but lacks it")
            if not inspect.isfunction(value):
                raise ConfigError(f"--tools: {name!r} in the __all__ of {spec!r} is not a function")
            functions.append(value)
        return functions
    return [
        value
        for name, value in vars(module).items()
        if not name.startswith("_")
        and inspect.isfunction(value)
        and value.__module__ == module.__name__
    ]


def load_tools(spec: str) -> ToolSet:
    """Load the tools of ``spec`` (a ``.py`` path or a module name); raise :class:`ConfigError`."""
    if not spec.strip():
        raise ConfigError("--tools is empty: give a .py file or a module name")
    module = _import(spec.strip())
    functions = _public_functions(module, spec)
    if not functions:
        raise ConfigError(
            f"--tools: {spec!r} has no public functions (names that do not start with _)"
        )
    tools = []
    for function in functions:
        try:
            tools.append(Tool(function, function_schema(function)))
        except ConfigError as exc:
            raise ConfigError(f"--tools: {exc}") from None
    return ToolSet(spec, tuple(tools))

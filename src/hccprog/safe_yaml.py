"""Reading YAML that users wrote: safe tags only, a bound on alias expansion, duplicate keys
rejected, and every problem reported with its file and line.

PyYAML's ``safe_load`` accepts a 1.5 KB "billion laughs" document whose aliases expand to
billions of nodes (anything that walks the result then runs out of memory), and lets a second
``endpoints:`` silently replace the first. :func:`load_yaml` refuses both.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from hccprog.errors import InputError


class YamlError(InputError):
    """A YAML file that cannot be used; ``code`` says which check failed (yaml-encoding,
    yaml-syntax, yaml-tag, yaml-aliases, yaml-duplicate-key, file-missing)."""

    def __init__(self, code: str, message: str, **where):
        self.code = code
        super().__init__(message, **where)


#: The most nodes a document may hold once its aliases are expanded.
MAX_EXPANDED_NODES = 100_000


def read_text(path: str | os.PathLike, *, display: str | None = None) -> str:
    """A text file as UTF-8; a byte that is not UTF-8 is an error naming its line."""
    path = Path(path)
    name = display or path
    if not path.is_file():
        raise YamlError("file-missing", "file does not exist" if not path.exists() else "is a folder, not a file",
                        file=name)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlError("yaml-encoding", f"byte 0x{data[exc.start]:02x} at character {col} is not UTF-8 text: "
                        "save the file as UTF-8 (in most editors: Save As, encoding UTF-8)",
                        file=name, row=line) from None


def _expanded_size(root: yaml.Node) -> int:
    """Number of nodes once every alias is expanded (memoised: linear in the document)."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[id(node)] = 1
            continue
        children = ([c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode)
                    else list(node.value))
        if done:
            size[id(node)] = min(1 + sum(size.get(id(c), 0) for c in children), 10 * MAX_EXPANDED_NODES)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(root)]


def _duplicate_keys(root: yaml.Node) -> list[tuple[str, int, int]]:
    """(key, first line, repeated line) for every mapping that repeats a key."""
    found, seen, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if id(node) in seen or isinstance(node, yaml.ScalarNode):
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                    if k.value in first:
                        found.append((k.value, first[k.value], k.start_mark.line + 1))
                    else:
                        first[k.value] = k.start_mark.line + 1
                stack.extend((k, v))
        else:
            stack.extend(node.value)
    return sorted(found, key=lambda t: t[2])


def compose_yaml(text: str, *, file: str | os.PathLike | None = None) -> yaml.Node | None:
    """The node tree of a YAML document, checked for syntax, alias expansion and duplicate keys."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise YamlError("yaml-syntax", f"not valid YAML: {getattr(exc, 'problem', None) or exc}", file=file,
                    row=(mark.line + 1) if mark else None) from None
    if node is None:
        return None
    if _expanded_size(node) > MAX_EXPANDED_NODES:
        raise YamlError("yaml-aliases", f"its aliases (*name) expand to more than {MAX_EXPANDED_NODES:,} "
                        "values: refused (write the values out, or use fewer nested aliases)", file=file)
    dups = _duplicate_keys(node)
    if dups:
        key, first, again = dups[0]
        more = f" (and {len(dups) - 1} more repeated key(s))" if len(dups) > 1 else ""
        raise YamlError("yaml-duplicate-key", f"key {key!r} appears twice (first on line {first}): the second "
                        f"would silently replace the first; keep one{more}", file=file, row=again, column=key)
    return node


def construct(node: yaml.Node | None, *, file: str | os.PathLike | None = None):
    """Python data from a checked node tree (safe tags only: any other tag, e.g. ``!!python/object``, is a
    ``yaml-tag`` error naming the file and line)."""
    if node is None:
        return None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise YamlError("yaml-tag", f"{getattr(exc, 'problem', None) or exc}: only plain YAML (mappings, lists, "
                        "text, numbers, booleans, dates) is read", file=file,
                        row=(mark.line + 1) if mark else None) from None
    finally:
        loader.dispose()


def load_yaml(path: str | os.PathLike, *, display: str | None = None):
    """Read, check and construct a YAML file; raises :class:`YamlError` naming ``display`` (or the
    path) and the line."""
    text = read_text(path, display=display)
    return construct(compose_yaml(text, file=display or path), file=display or path)

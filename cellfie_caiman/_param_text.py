"""Parameter files' text: YAML read and written with YAML 1.2's numbers (PyYAML implements YAML 1.1), and JSON or
YAML mappings that refuse a key given twice (both parsers would keep the last one silently)."""
from __future__ import annotations

import re
from typing import Any


def _mapping_without_repeats(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A dict of ``pairs``; ``ValueError`` naming a key given twice (JSON and YAML parsers keep the last silently,
    so a group written twice would lose the settings of the first)."""
    out: dict[Any, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"{key!r} is given twice")
        out[key] = value
    return out


_YAML_INT = "tag:yaml.org,2002:int"
_YAML_FLOAT = "tag:yaml.org,2002:float"
#: Integers as YAML 1.2's core schema writes them: decimal (``010`` is ten: leading zeros are not YAML 1.1's octal),
#: ``0o`` octal, ``0x`` hexadecimal. YAML 1.1's others (``0b11``, ``1_000``, base 60 ``1:30``) are text in YAML 1.2.
_YAML12_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
#: Floats as YAML 1.2's core schema writes them (``1e3``, ``-1.5E-3``, ``.5``, ``.inf``, ``.nan``): no ``_``, no base
#: 60, and an exponent with or without a sign (YAML 1.1 needs a dot and a signed exponent: ``1e3`` was text).
_YAML12_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                           r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


def _yaml_class(base: type) -> type:
    """A subclass of PyYAML's ``SafeLoader`` or ``SafeDumper`` with YAML 1.2's numbers.

    The loader reads numbers as YAML 1.2 does (:data:`_YAML12_INT`, :data:`_YAML12_FLOAT`) instead of as YAML 1.1
    (PyYAML), which reads ``010`` as octal 8, ``1:30`` as 90, and ``1e3`` as text. The dumper quotes text that
    either YAML 1.1 or YAML 1.2 would read as a number, so a saved file reads back the same in both.
    """
    import yaml

    reading = issubclass(base, yaml.constructor.BaseConstructor)

    class WithNumbers(base):
        pass

    # a copy of the base's resolvers, less YAML 1.1's numbers when reading (first match wins: they would come first)
    WithNumbers.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if not (reading and tag in (_YAML_INT, _YAML_FLOAT))]
        for first, resolvers in base.yaml_implicit_resolvers.items()}
    WithNumbers.add_implicit_resolver(_YAML_INT, _YAML12_INT, list("-+0123456789"))
    WithNumbers.add_implicit_resolver(_YAML_FLOAT, _YAML12_FLOAT, list("-+0123456789."))
    if reading:
        WithNumbers.add_constructor(_YAML_INT, _yaml12_int)
    return WithNumbers


def _yaml12_int(loader: Any, node: Any) -> int:
    """The integer a YAML scalar tagged int writes, as YAML 1.2 reads it: ``0o`` octal, ``0x`` hexadecimal, else
    decimal (``010`` is ten)."""
    text = loader.construct_scalar(node)
    sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
    base = {"0o": 8, "0x": 16}.get(digits[:2].lower(), 10)
    return sign * int(digits[2:] if base != 10 else digits, base)


def _parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses a key given twice in one mapping (:func:`_mapping_without_repeats`)."""
    import yaml

    _Loader = _yaml_class(yaml.SafeLoader)

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        # the keys written in this mapping, not those merged in with << (which its own keys may override)
        _mapping_without_repeats([(loader.construct_object(k, deep=True), None) for k, _ in node.value
                                  if k.tag != "tag:yaml.org,2002:merge"])
        return yaml.SafeLoader.construct_mapping(loader, node, deep=True)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass

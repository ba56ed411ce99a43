"""The YAML dialect procure reads: PyYAML's safe loader with YAML 1.2 numbers.

PyYAML follows YAML 1.1, where ``2.0e9`` and ``1e9`` are strings (1.1 wants ``2.0e+9``) and
``1:30`` is the base-60 integer 90. Users write numbers the YAML 1.2 / JSON way, and a strict
schema refuses strings where numbers belong, so this loader resolves floats with the YAML 1.2
core-schema pattern and leaves base-60 scalars as strings (which the schema then refuses).
"""

from __future__ import annotations

import re

import yaml

# YAML 1.2 core schema floats (https://yaml.org/spec/1.2.2/#1023-core-schema), plus the 1.1
# spellings of infinity and NaN so that the schema, not the parser, refuses them by name.
_FLOAT_1_2 = re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                              |[-+]?\.(?:inf|Inf|INF)
                              |\.(?:nan|NaN|NAN))$""", re.X)
_INT_1_2 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")


class SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 ints and floats (no base 60, no ``1_000`` digit groups)."""


# Rebuild the implicit resolvers for this class only: drop 1.1 int/float, add the 1.2 patterns.
SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SafeLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_1_2, list("-+0123456789"))
SafeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_1_2, list("-+0123456789."))


def _int_1_2(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)  # decimal; a leading 0 is decimal in YAML 1.2, not octal


SafeLoader.add_constructor("tag:yaml.org,2002:int", _int_1_2)


def load(text: str) -> object:
    """Parse one YAML document with :class:`SafeLoader`."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - SafeLoader subclass

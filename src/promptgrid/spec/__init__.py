"""The experiment file: YAML with line marks -> validated, frozen values. Imports nothing from
run time (config, grid, engine, store), so a reader finds every rule about the file here.

- ``schema``      pydantic models of the file and its JSON Schema
- ``yamlmarks``   ``yaml.safe_load`` that remembers each key's line and rejects duplicate keys
- ``cases``       case rows, inline or from a CSV/JSONL file
- ``templates``   sandboxed Jinja2 message templates
- ``experiment``  the ``Experiment`` value and the checks that need the whole file
"""

from __future__ import annotations

from .experiment import Experiment
from .schema import json_schema

__all__ = ["Experiment", "json_schema"]

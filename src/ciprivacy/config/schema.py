"""config.yaml's JSON schema, generated from the typed model (``ciprivacy.config.model``).

The model is the one definition; the schema file the workflow validates with
(workflow/schemas/config.schema.json) is written from it by
``python -m ciprivacy.config.schema > workflow/schemas/config.schema.json``, and a test fails
when the two disagree. Blocks owned by registry entries (a defense's settings, an
architecture's model arguments, a source's options, an attack's settings) are mappings here:
their keys are checked against each entry's signature when the workflow starts.
"""

from __future__ import annotations

import json
from typing import Any

from ciprivacy.config.model import Config


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": "Configuration of the SiftFunnel reproduction workflow (config.yaml); generated from "
        "ciprivacy.config.model by python -m ciprivacy.config.schema",
        **schema,
    }


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2, sort_keys=True))

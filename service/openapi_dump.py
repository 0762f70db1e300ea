"""Write the app's OpenAPI schema to openapi.yaml (the contract): `python -m service.openapi_dump [path]`.
`--check` exits 1 when the file differs from the app."""
import argparse
import sys
from pathlib import Path

import yaml

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"


def current_schema() -> dict:
    from sdhrnet.settings import ServiceSettings

    from .app import create_app

    # fixed settings and no keys: the schema must not depend on the environment it is dumped in
    return create_app(ServiceSettings(), registry=object(), jobs=object(), api_keys=frozenset()).openapi()


def render(schema: dict) -> str:
    return yaml.safe_dump(schema, sort_keys=False, allow_unicode=True, width=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = render(current_schema())
    if args.check:
        same = args.path.exists() and yaml.safe_load(args.path.read_text()) == yaml.safe_load(text)
        print(f"{args.path}: {'up to date' if same else 'differs from the app; run python -m service.openapi_dump'}")
        return 0 if same else 1
    args.path.write_text(text)
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

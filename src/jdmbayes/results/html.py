"""Self-contained HTML pages from Jinja2 templates (``templates/``): images are embedded as
data URIs and the pages carry no scripts, fonts or links that would leave the file."""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def render(template: str, **context) -> str:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                     autoescape=jinja2.select_autoescape(["html", "j2"]),
                                     undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     lstrip_blocks=True)
    return environment.get_template(template).render(**context)

"""/openapi.json describes every route, validly; /docs serves Swagger UI from local files only."""

from __future__ import annotations

import re

import httpx
from openapi_spec_validator import validate
from starlette.routing import Mount, Route

from asr_server.config import Settings
from asr_server.http.app import create_app
from asr_server.http.openapi import spec


def test_the_description_is_valid_openapi(server):
    validate(httpx.get(server.url + "/openapi.json").json())


def test_every_route_is_described_with_its_methods(tmp_path):
    app = create_app(Settings(server={"data_dir": str(tmp_path)}))
    paths = spec()["paths"]
    undocumented = {"/openapi.json", "/docs", "/docs/init.js"}
    for route in app.routes:
        if isinstance(route, Mount) or route.path in undocumented:
            continue
        assert isinstance(route, Route)
        path = re.sub(r"{(\w+):path}", r"{\1}", route.path)
        assert path in paths, path
        for method in route.methods - {"HEAD"}:
            assert method.lower() in paths[path], (path, method)


def test_the_docs_page_loads_its_assets_from_this_server(server):
    page = httpx.get(server.url + "/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references and all(ref.startswith("/") for ref in references), references
    for ref in references + ["/docs/init.js"]:
        assert httpx.get(server.url + ref).status_code == 200, ref


def test_the_task_forms_fields_are_the_ones_the_server_parses_with_the_models_constraints():
    from asr_server.config import DecodingOptions
    from asr_server.service.task_options import FORM_FIELDS

    form = spec()["paths"]["/api/v1/asr/task"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(form["properties"]) == {"file", *FORM_FIELDS}
    beam = DecodingOptions.model_json_schema()["properties"]["beam_size"]
    assert (form["properties"]["beam_size"]["minimum"], form["properties"]["beam_size"]["maximum"]) == (
        beam["minimum"], beam["maximum"])

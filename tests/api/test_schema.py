"""The OpenAPI document at /api/v1/schema/ and the docs pages: every route and method of the API is
described, with its errors in the one shape, its auth, the sync parameters and bulk bodies; the
generator raises no warning; the docs load nothing from another host."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from drf_spectacular.generators import SchemaGenerator

from api.engine import ApiView, SyncedSerializer, SyncedViewSet

API = "/api/v1/"
NOT_OPERATIONS = {"schema", "docs", "redoc"}
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
ERROR = {"$ref": "#/components/schemas/Error"}


def generate() -> dict:
    return SchemaGenerator(api_version="v1").get_schema(request=None, public=True)


@pytest.fixture(scope="module")
def schema() -> dict:
    return generate()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def api_routes(patterns=None, prefix: str = ""):
    """(example URL, view callback) of every route under /api/v1/ that is an operation of the API."""
    if patterns is None:
        patterns = next(p for p in get_resolver().url_patterns if str(p.pattern) == API.strip("/") + "/")
        yield from api_routes(patterns.url_patterns, API)
        return
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from api_routes(pattern.url_patterns, prefix + example_path(str(pattern.pattern)))
        elif isinstance(pattern, URLPattern) and pattern.name not in NOT_OPERATIONS and pattern.name:
            yield prefix + example_path(str(pattern.pattern)), pattern.callback


def example_path(route: str) -> str:
    """A concrete path matching a route (router regexes or path() converters), "1" for each value."""
    route = re.sub(r"\(\?P<\w+>[^)]*\)", "1", route)
    route = re.sub(r"<(?:\w+:)?\w+>", "1", route)
    return route.lstrip("^").rstrip("$").replace("\\.", ".")


def methods_of(callback) -> set[str]:
    actions = getattr(callback, "actions", None)
    if actions is not None:
        return {method for method in actions if method in HTTP_METHODS}
    cls = callback.cls
    return {method for method in HTTP_METHODS if method in cls.http_method_names and hasattr(cls, method)}


def view_of(url: str):
    """The route a URL resolves to, and the view's actions by method (a viewset's) or None."""
    match = resolve(url)
    return match.route, getattr(match.func, "actions", None)


def test_the_generator_raises_no_warning_and_the_document_is_valid_openapi(tmp_path):
    out = tmp_path / "schema.yaml"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(out)],
        cwd=Path(settings.BASE_DIR),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == ""
    assert yaml.safe_load(out.read_text())["openapi"].startswith("3.")


@pytest.mark.django_db
def test_the_served_document_is_the_generated_one(client, schema):
    response = client.get(f"{API}schema/?format=json")
    assert response.status_code == 200
    served = response.json()
    assert served["paths"].keys() == schema["paths"].keys()
    assert served["components"]["schemas"].keys() == schema["components"]["schemas"].keys()
    assert f"{API}schema/" not in served["paths"]


def test_every_route_and_method_of_the_api_is_documented(schema):
    documented: dict[tuple, set[str]] = {}
    for path, method, _operation in operations(schema):
        url = re.sub(r"\{\w+\}", "1", path)
        documented.setdefault(view_of(url)[0], set()).add(method)
    routes = list(api_routes())
    assert len(routes) >= 3
    for url, callback in routes:
        key = view_of(url)[0]
        expected = methods_of(callback)
        assert expected <= documented.get(key, set()), f"{url}: {expected - documented.get(key, set())} undocumented"


def test_every_operation_documents_its_errors_in_the_one_shape(schema):
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        label = f"{method.upper()} {path}"
        expected = {"400", "401", "403", "406", "429"}
        if "{" in path:
            expected.add("404")
        if "requestBody" in operation:
            expected |= {"409", "413", "415"}
        if method == "post":
            expected.add("422")
        assert expected <= responses.keys(), f"{label}: {expected - responses.keys()} undocumented"
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == ERROR, f"{label} {code}"
                assert response["description"], f"{label} {code}"
        retry_after = responses["429"]["headers"]["Retry-After"]
        assert retry_after["required"] is True
        assert retry_after["schema"]["type"] == "integer"
        assert any(code.startswith("2") for code in responses), label


def test_the_error_shape(schema):
    components = schema["components"]["schemas"]
    assert components["Error"]["required"] == ["error"]
    detail = components["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message"}
    assert detail["properties"]["fields"]["additionalProperties"] == {"type": "array", "items": {"type": "string"}}
    assert detail["properties"]["items"]["items"] == {"$ref": "#/components/schemas/ItemError"}
    assert set(components["ItemError"]["required"]) == {"index", "status", "error"}


def test_every_post_takes_an_idempotency_key_and_every_operation_both_auths(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["partnerKey"]["type"] == "http"
    assert schemes["partnerKey"]["scheme"] == "bearer"
    assert (schemes["cookieAuth"]["type"], schemes["cookieAuth"]["in"]) == ("apiKey", "cookie")
    for path, method, operation in operations(schema):
        label = f"{method.upper()} {path}"
        assert {"partnerKey": []} in operation["security"], label
        assert {"cookieAuth": []} in operation["security"], label
        assert {} not in operation["security"], f"{label} must not be anonymous"
        headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        assert ("Idempotency-Key" in headers) == (method == "post"), label
        assert operation.get("summary"), label


def test_every_list_is_a_sync_list(schema):
    """The list of every resource on the router pages with the cursor and takes the sync parameters."""
    components = schema["components"]["schemas"]
    lists = 0
    for path, method, operation in operations(schema):
        _route, actions = view_of(re.sub(r"\{\w+\}", "1", path))
        if method != "get" or not actions or actions.get("get") != "list":
            continue
        lists += 1
        parameters = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        assert parameters["updated_since"]["schema"] == {"type": "string", "format": "date-time"}, path
        assert parameters["include_deleted"]["schema"] == {"type": "boolean"}, path
        assert parameters["cursor"]["schema"] == {"type": "string"}, path
        assert parameters["limit"]["schema"]["maximum"] == 1000, path
        page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        envelope = components[page]
        assert envelope["required"] == ["next", "next_cursor", "results"], path
        assert envelope["properties"]["next_cursor"] == {
            "type": "string",
            "nullable": True,
            "description": "The cursor of the next page.",
        }
        assert envelope["properties"]["results"]["type"] == "array", path
    assert lists >= 1


def test_the_filters_documented_on_a_list_are_the_ones_it_applies(schema):
    sync = {"cursor", "limit", "updated_since", "include_deleted"}
    for path, method, operation in operations(schema):
        match = resolve(re.sub(r"\{\w+\}", "1", path))
        if method != "get" or (getattr(match.func, "actions", None) or {}).get("get") != "list":
            continue
        filterset_class = getattr(match.func.cls, "filterset_class", None)
        applied = set(filterset_class(data={}, request=None).filters) if filterset_class else set()
        documented = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        assert documented - sync == applied, path


def test_every_bulk_operation_takes_an_array_and_reports_each_item(schema):
    components = schema["components"]["schemas"]
    bulks = [(path, operation) for path, method, operation in operations(schema) if path.endswith("/bulk/")]
    assert bulks
    for path, operation in bulks:
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body["type"] == "array", path
        assert operation["requestBody"]["required"] is True, path
        names = {p["name"] for p in operation["parameters"]}
        assert {"all_or_none", "Idempotency-Key"} <= names, path
        result = operation["responses"]["200"]["content"]["application/json"]["schema"]
        result = components[result["$ref"].split("/")[-1]] if "$ref" in result else result
        assert result["properties"]["results"]["type"] == "array", path


def test_request_and_response_components_are_apart(schema):
    """Clients send no read-only field and see every field they get back."""
    components = schema["components"]["schemas"]
    for path, method, operation in operations(schema):
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if not content:
            continue
        ref = content["schema"].get("$ref") or content["schema"].get("items", {}).get("$ref")
        if not ref:
            continue
        component = components[ref.split("/")[-1]]
        read_only = [name for name, field in component.get("properties", {}).items() if field.get("readOnly")]
        assert read_only == [], f"{method.upper()} {path}: {read_only}"


def test_component_names_are_stable_and_descriptions_are_the_resources_own(schema):
    assert list(generate()["components"]["schemas"]) == list(schema["components"]["schemas"])
    text = yaml.safe_dump(schema)
    for internal in (ApiView, SyncedViewSet, SyncedSerializer):
        if internal.__doc__:
            first_line = internal.__doc__.strip().splitlines()[0]
            assert first_line not in text, internal


def test_bulk_item_status_has_its_own_name(schema):
    components = schema["components"]["schemas"]
    assert components["BulkItemStatus"]["enum"] == ["created", "updated", "error"]
    assert components["BulkItemResult"]["properties"]["status"] == {"$ref": "#/components/schemas/BulkItemStatus"}


# --- the docs pages -----------------------------------------------------------------------------

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)|@import\s+["']([^"']+)""")


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["docs/", "redoc/"])
def test_docs_pages_load_everything_from_this_server(client, settings, page):
    # What `collectstatic` gives whitenoise in production, found in the apps' static folders here.
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    response = client.get(f"{API}{page}")
    assert response.status_code == 200
    html = response.content.decode()
    assets = [next(group for group in match if group) for match in ASSET.findall(html)]
    assert assets
    outside = [url for url in assets if re.match(r"(?:[a-z]+:)?//", url, re.IGNORECASE)]
    assert outside == []
    assert "<script" in html
    for url in assets:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert b"".join(asset.streaming_content if asset.streaming else [asset.content])
    assert client.get(f"{API}schema/").status_code == 200


@pytest.mark.django_db
def test_any_other_path_under_the_api_is_a_json_404(client_all):
    for method in ("get", "post", "patch", "delete"):
        response = getattr(client_all, method)(f"{API}no-such-thing/1/")
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}

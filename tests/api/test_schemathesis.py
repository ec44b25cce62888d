"""Property-based run of schemathesis over our own OpenAPI schema: every operation, valid and invalid
input (wrong types, huge numbers, bad dates, missing fields), through the WSGI application.

Checks: no 5xx, and every response conforms to the schema (its status code documented, its body and
headers as described, its content type). A partner key of scope `all` authenticates; a few objects of
every resource are seeded with known external ids, and the generated path lookups and body references
name them part of the time, so requests reach the services and not only the 404 path.
"""

import zlib

import hypothesis
import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.value import GeneratedValue
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import Partner
from accounts.services import partner_key_create
from api.engine import Reference, ReferenceList
from api.urls import router
from csm.wsgi import application
from tests import factories

# Bounds that keep the run near half a minute on SQLite: fuzzed cases per operation, and the share
# of the coverage phase's boundary cases (wrong types, huge numbers, bad formats, missing fields) sent.
MAX_EXAMPLES = 10
COVERAGE_SHARE = 5
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
    no_shrink=True,
    database="none",
)


def seeded_key(prefix: str) -> str:
    """The external id the run seeds for the resource at /api/v1/<prefix>/."""
    return f"st-{prefix}-1"


ROUTES = {prefix: viewset for prefix, viewset, _basename in router.registry}
SEEDED_PK = 4242  # the primary key of the seeded object of a resource looked up by id


def model_of(viewset):
    return getattr(viewset, "model", None) or getattr(getattr(viewset, "queryset", None), "model", None)


def reference_values() -> dict[str, object]:
    """For each reference field of any resource, a key of a seeded object of its kind."""
    keys = {"accounts.Account": seeded_key("accounts"), "accounts.Tier": "low-touch"}
    keys[get_user_model()._meta.label] = "st-csm"
    for prefix, viewset in ROUTES.items():
        model = model_of(viewset)
        if model is not None:
            keys.setdefault(model._meta.label, seeded_key(prefix))
    values: dict[str, object] = {}
    for viewset in ROUTES.values():
        serializer_class = getattr(viewset, "serializer_class", None)
        if serializer_class is None:
            continue
        for name, field in serializer_class().fields.items():
            if isinstance(field, Reference) and field.target_model()._meta.label in keys:
                key = keys[field.target_model()._meta.label]
                values[name] = [key] if isinstance(field, ReferenceList) else key
    return values


REFERENCES = reference_values()


def with_seeded_references(body):
    if isinstance(body, dict):
        return {**body, **{name: value for name, value in REFERENCES.items() if name in body}}
    if isinstance(body, list):
        return [with_seeded_references(item) for item in body]
    return body


# Text a hostile or careless client sends: a NUL, a lone surrogate (as a JSON escape), emoji, a spreadsheet
# formula, markup, a very long string. Each is stored as given or refused with a 4xx, never a 5xx.
HOSTILE_TEXT = ["a\x00b", "\ud800", "🚀" * 100, "=cmd|' /C calc'!A0", "<script>alert(1)</script>", "x" * 5000]


def with_hostile_text(body):
    """`body` with each text value but the references replaced by hostile text, chosen by its field name."""
    if isinstance(body, dict):
        return {
            name: HOSTILE_TEXT[zlib.crc32(name.encode()) % len(HOSTILE_TEXT)]
            if isinstance(value, str) and name not in REFERENCES
            else with_hostile_text(value)
            for name, value in body.items()
        }
    if isinstance(body, list):
        return [with_hostile_text(item) for item in body]
    return body


def mapped(strategy, function):
    """`strategy` with `function` applied to each generated value (kept in schemathesis's wrapper)."""
    return strategy.map(
        lambda drawn: drawn.map_value(function) if isinstance(drawn, GeneratedValue) else function(drawn)
    )


@schema.hook
def before_generate_path_parameters(context, strategy):
    """Half the lookups name a seeded object (the other half stay random: mostly 404s)."""
    prefix = context.operation.path.removeprefix("/api/v1/").split("/")[0]
    if prefix not in ROUTES:
        return strategy

    def seeded(params):
        if not isinstance(params, dict):
            return params
        if "external_id" in params:
            return {**params, "external_id": seeded_key(prefix)}
        if "id" in params:
            return {**params, "id": SEEDED_PK}
        return params

    return st.one_of(strategy, mapped(strategy, seeded))


@schema.hook
def before_generate_body(context, strategy):
    """Two bodies in three reference seeded objects, so writes reach the services; one of those has hostile
    text in every other text field."""
    hostile = mapped(strategy, lambda body: with_hostile_text(with_seeded_references(body)))
    return st.one_of(strategy, mapped(strategy, with_seeded_references), hostile)


def seed() -> str:
    """The objects lookups and references name, and a key of an all-scope partner; returns the raw key."""
    user = factories.UserFactory(username="st-csm")
    account = factories.AccountFactory(external_id=seeded_key("accounts"), owner=user)
    factories.AccountFactory(external_id="st-accounts-2", owner=user)
    for prefix, viewset in ROUTES.items():
        model = model_of(viewset)
        factory = getattr(factories, f"{model.__name__}Factory", None) if model is not None else None
        if factory is None or prefix == "accounts":
            continue
        names = {f.name for f in model._meta.get_fields()}
        fields = {"external_id": seeded_key(prefix)} if "external_id" in names else {"pk": SEEDED_PK}
        if "account" in names:
            fields["account"] = account
        factory(**fields)
    partner = factories.PartnerFactory(name="Schemathesis", scope=Partner.Scope.ALL)
    _key, raw = partner_key_create(partner=partner, name="schemathesis")
    return raw


@pytest.fixture
def raw_key(db):
    return seed()


@pytest.fixture(autouse=True)
def keep_test_connection():
    """The WSGI handler closes the database connection after each request; in a test it is the test's
    transaction, so keep it open, as Django's test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@hypothesis.settings(
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    max_examples=MAX_EXAMPLES,
)
def test_api_conforms_to_its_schema(case, raw_key, django_capture_on_commit_callbacks):
    if case.meta and case.meta.phase.name == "coverage" and zlib.crc32(repr(case).encode()) % COVERAGE_SHARE:
        return
    cache.clear()  # no throttling within the run
    with django_capture_on_commit_callbacks(execute=True):
        case.call_and_validate(headers={"Authorization": f"Bearer {raw_key}"}, checks=CHECKS)

"""A client generated from our OpenAPI schema by openapi-python-client works unmodified: it upserts an
account, pages through the changes with the cursor, and sees a deletion as a tombstone."""

import datetime
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from accounts.models import Account, Partner
from accounts.services import partner_key_create
from tests import factories

PACKAGE = "partner_api_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The client package, generated offline into a temporary directory and importable."""
    root = tmp_path_factory.mktemp("generated")
    schema = SchemaGenerator(api_version="v1").get_schema(request=None, public=True)
    (root / "schema.json").write_bytes(OpenApiJsonRenderer().render(schema))
    config = {"project_name_override": PACKAGE, "package_name_override": PACKAGE, "post_hooks": []}
    (root / "config.json").write_text(json.dumps(config))
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("openapi-python-client")),
            "generate",
            "--path",
            str(root / "schema.json"),
            "--config",
            str(root / "config.json"),
            "--meta",
            "none",
            "--output-path",
            str(root / PACKAGE),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_a_generated_client_syncs_accounts(transactional_db, generated, live_server):
    from partner_api_client import AuthenticatedClient
    from partner_api_client.api.accounts import (
        accounts_create,
        accounts_destroy,
        accounts_list,
        accounts_update,
    )
    from partner_api_client.models import Account as AccountModel
    from partner_api_client.models import AccountRequest, PaginatedAccountList

    partner = factories.PartnerFactory(name="Billing", scope=Partner.Scope.ALL)
    _key, raw = partner_key_create(partner=partner, name="generated client")
    client = AuthenticatedClient(base_url=live_server.url, token=raw, raise_on_unexpected_status=True)
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)

    # Upsert by external id: created, then the same call changes it.
    created = accounts_update.sync_detailed(
        "gen-001", client=client, body=AccountRequest(name="Generated One", industry="Retail")
    )
    assert created.status_code == 201
    assert isinstance(created.parsed, AccountModel)
    assert (created.parsed.external_id, created.parsed.name) == ("gen-001", "Generated One")
    again = accounts_update.sync_detailed(
        "gen-001", client=client, body=AccountRequest(name="Generated One, renamed", industry="Retail")
    )
    assert again.status_code == 200
    for external_id in ("gen-002", "gen-003"):
        response = accounts_create.sync_detailed(
            client=client,
            body=AccountRequest(name=f"Account {external_id}", external_id=external_id),
            idempotency_key=f"create-{external_id}",
        )
        assert response.status_code == 201
    assert Account.objects.get(external_id="gen-001").name == "Generated One, renamed"
    assert Account.objects.get(external_id="gen-001").industry == "Retail"

    # Page through the changes two at a time, following next_cursor.
    seen, cursor, pages = [], None, 0
    while True:
        kwargs = {"cursor": cursor} if cursor else {}
        page = accounts_list.sync(client=client, updated_since=start, limit=2, **kwargs)
        assert isinstance(page, PaginatedAccountList)
        pages += 1
        seen += [account.external_id for account in page.results]
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages == 2
    assert seen == ["gen-001", "gen-002", "gen-003"]

    # A deletion is a tombstone: gone from the list, there with include_deleted.
    deleted = accounts_destroy.sync_detailed("gen-002", client=client)
    assert deleted.status_code == 204
    assert Account.objects.get(external_id="gen-002").deleted_at is not None
    live = accounts_list.sync(client=client, updated_since=start)
    assert [account.external_id for account in live.results] == ["gen-001", "gen-003"]
    everything = accounts_list.sync(client=client, updated_since=start, include_deleted=True)
    tombstones = [account for account in everything.results if account.deleted_at is not None]
    assert [account.external_id for account in tombstones] == ["gen-002"]
    assert isinstance(tombstones[0].deleted_at, datetime.datetime)

"""Formula injection: every export (the admin's, in each format, and the workspace's accounts CSV) prefixes a
text cell that starts with =, +, -, @, tab or CR with a single quote, so a spreadsheet shows it as text;
numbers stay numbers, and the database keeps the values as they were given."""

import csv
import html
import io
import json
import re
from decimal import Decimal

import openpyxl
import pytest
import yaml
from django.contrib import admin
from django.urls import reverse
from import_export.formats import base_formats

from accounts.admin import SubscriptionResource
from accounts.models import Account, Contact, Subscription
from tests import factories
from tests.admin.test_admin import admin_url

FORMULA = "=cmd|' /C calc'!A0"
# Values as stored, and as a spreadsheet-safe export writes them.
HOSTILE = {
    "name": (FORMULA, "'" + FORMULA),
    "industry": ("+1 555 0100", "'+1 555 0100"),
    "region": ("-2+3", "'-2+3"),
    "country": ("@S", "'@S"),
    "domain": ("\tx.test", "'\tx.test"),
    "churn_reason": ("\rCR", "'\rCR"),
}


@pytest.fixture
def hostile_account(db):
    fields = {field: stored for field, (stored, _) in HOSTILE.items()}
    return factories.AccountFactory(external_id="hostile", mrr=Decimal("1250.50"), **fields)


def admin_export(client, model, file_format) -> bytes:
    url = admin_url(model, "export")
    form = client.get(url).context["form"]
    index = [type(f()) for f in admin.site._registry[model].get_export_formats()].index(file_format)
    prefix = f"{model._meta.model_name}resource_"
    data = {"resource": "0", "format": str(index)}
    data.update({name: "on" for name in form.fields if name.startswith(prefix)})
    response = client.post(url, data)
    assert response.status_code == 200
    return response.content


def exported_rows(content: bytes, file_format) -> list[dict]:
    """The exported rows as dicts of column to cell, read back with each format's own reader."""
    if file_format is base_formats.XLSX:
        sheet = openpyxl.load_workbook(io.BytesIO(content)).active
        header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
        return [dict(zip(header, row, strict=True)) for row in rows]
    text = content.decode("utf-8-sig")
    if file_format in (base_formats.CSV, base_formats.TSV):
        delimiter = "\t" if file_format is base_formats.TSV else ","
        return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))
    if file_format is base_formats.JSON:
        return json.loads(text)
    if file_format is base_formats.YAML:
        return yaml.safe_load(text)
    cells = lambda row: [html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", row, re.S)]  # noqa: E731
    header, *rows = [cells(row) for row in re.findall(r"<tr>(.*?)</tr>", text, re.S)]
    return [dict(zip(header, row, strict=True)) for row in rows]


EXPORT_FORMATS = [base_formats.CSV, base_formats.XLSX, base_formats.TSV, base_formats.JSON, base_formats.YAML]
EXPORT_FORMATS += [base_formats.HTML]


def test_every_admin_export_format_is_covered():
    offered = {type(f()) for f in admin.site._registry[Account].get_export_formats()}
    assert offered == set(EXPORT_FORMATS)


@pytest.mark.parametrize("file_format", EXPORT_FORMATS, ids=lambda f: f.__name__)
def test_admin_account_exports_neutralise_formula_cells(admin_client, hostile_account, file_format):
    factories.AccountFactory(external_id="plain", name="Plain name", industry="a=b")

    content = admin_export(admin_client, Account, file_format)
    rows = {row["external_id"]: row for row in exported_rows(content, file_format)}

    hostile = rows["hostile"]
    for field, (_stored, exported) in HOSTILE.items():
        if file_format is base_formats.XLSX:
            exported = exported.replace("\r", "\n")  # XML reads a carriage return as a line feed
        assert hostile[field] == exported, field
    assert (rows["plain"]["name"], rows["plain"]["industry"]) == ("Plain name", "a=b")
    # A number is never quoted: a native number where the format has them, else its digits.
    assert hostile["mrr"] in (Decimal("1250.50"), 1250.5, "1250.50", "1250.5")
    hostile_account.refresh_from_db()
    assert hostile_account.name == FORMULA  # exports change nothing stored


@pytest.mark.parametrize("file_format", [base_formats.CSV, base_formats.XLSX], ids=lambda f: f.__name__)
def test_admin_contact_and_subscription_exports_neutralise_formula_cells(admin_client, file_format):
    account = factories.AccountFactory(external_id="=acct")
    factories.ContactFactory(account=account, name="@SUM(A1)", title="-x", external_id="c-1")
    factories.SubscriptionFactory(account=account, product=FORMULA, external_id="s-1", mrr=Decimal("7.50"))

    (contact,) = exported_rows(admin_export(admin_client, Contact, file_format), file_format)
    (subscription,) = exported_rows(admin_export(admin_client, Subscription, file_format), file_format)

    assert (contact["account"], contact["name"], contact["title"]) == ("'=acct", "'@SUM(A1)", "'-x")
    assert (subscription["account"], subscription["product"]) == ("'=acct", "'" + FORMULA)
    assert subscription["mrr"] in (Decimal("7.50"), 7.5, "7.50")


def test_the_xlsx_export_keeps_numbers_as_numbers(admin_client, hostile_account):
    (row,) = exported_rows(admin_export(admin_client, Account, base_formats.XLSX), base_formats.XLSX)
    assert isinstance(row["mrr"], int | float) and row["mrr"] == 1250.5
    assert isinstance(row["employees"], int)


@pytest.mark.parametrize("file_format", [base_formats.CSV, base_formats.XLSX], ids=lambda f: f.__name__)
def test_a_negative_number_is_exported_as_a_number(file_format):
    # Stored amounts are never negative (check constraints), so an unsaved line shows how -5 would export.
    line = Subscription(external_id="s-1", product="-5", mrr=Decimal("-5.00"), quantity=-5)
    resource = SubscriptionResource()
    cells = resource.export_resource(line, force_native_type=file_format is base_formats.XLSX)
    row = dict(zip(resource.get_export_headers(), cells, strict=True))
    assert (row["mrr"], row["quantity"]) in ((Decimal("-5.00"), -5), ("-5.00", "-5"))
    assert row["product"] == "'-5"  # text that starts with "-" is text


def test_the_workspace_export_neutralises_formula_cells_and_keeps_numbers(csm_client, hostile_account):
    response = csm_client.get(reverse("accounts:export"))
    body = b"".join(response.streaming_content).decode("utf-8")
    header, row = list(csv.reader(io.StringIO(body.removeprefix("\ufeff"), newline="")))
    cells = dict(zip(header, row, strict=True))

    assert cells["Name"] == "'" + FORMULA
    assert (cells["Industry"], cells["Region"]) == ("'+1 555 0100", "'-2+3")
    assert (cells["MRR"], cells["ARR"]) == ("1250.50", "15006.00")  # numbers are not quoted

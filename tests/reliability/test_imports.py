"""Bad files in the admin's CSV/XLSX imports: each gets a clear message on the import page, naming its row or
line, and nothing is written: no row in any table, no admin log entry, no recompute queued."""

import io
from decimal import Decimal

import openpyxl
import pytest
from django.apps import apps
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from import_export.formats.base_formats import CSV, XLSX

from accounts.models import Account, Contact, Subscription
from tests import factories
from tests.accounts.conftest import task_runs  # noqa: F401 (a fixture)
from tests.admin.test_admin import admin_url

ACCOUNT_HEADER = "external_id,name,owner,tier,employees,renewal_date\n"
SUBSCRIPTION_HEADER = "external_id,account,product,mrr,quantity,start_date,end_date\n"
CONTACT_HEADER = "external_id,account,name,email,role,is_primary\n"
FORMULA = "=cmd|' /C calc'!A0"


def table_counts() -> dict[str, int]:
    """Rows in every table of the project's models (history tables included), read one by one."""
    tables = set(connection.introspection.table_names())
    return {
        model._meta.label: model._base_manager.count()
        for model in apps.get_models(include_auto_created=True)
        if model._meta.db_table in tables and model._meta.managed
    }


def format_index(model, file_format) -> str:
    return str(admin.site._registry[model].get_import_formats().index(file_format))


def upload(client, model, data: bytes, *, file_format=CSV, name: str = "rows.csv"):
    return client.post(
        admin_url(model, "import"),
        {"resource": "0", "format": format_index(model, file_format), "import_file": SimpleUploadedFile(name, data)},
    )


def xlsx(rows: list[list]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.fixture
def refused(admin_client, task_runs, django_capture_on_commit_callbacks):  # noqa: F811
    """Upload a file, check the page refuses it and writes nothing; returns the page's text and result."""

    def check(model, data: bytes, **kwargs):
        before = table_counts()
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = upload(admin_client, model, data, **kwargs)
        assert response.status_code == 200
        assert "confirm_form" not in response.context
        assert table_counts() == before
        assert callbacks == [] and task_runs == []
        return response.content.decode(), response.context.get("result")

    return check


def row_errors(result) -> dict[int, dict[str, list[str]]]:
    """Each invalid row's errors by field, and each failed row's messages under "row"."""
    errors = {row.number: {k: list(v) for k, v in row.field_specific_errors.items()} for row in result.invalid_rows}
    for number, failures in result.row_errors():
        errors.setdefault(number, {})["row"] = [str(failure.error) for failure in failures]
    return errors


# --- the file itself -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The submitted file is empty."),
        ("external_id,name\na-1,Caf\xe9\n".encode("latin-1"), "Line 2 is not UTF-8 text (byte 0xE9)."),
        (bytes(range(128, 256)) * 8, "Line 1 is not UTF-8 text (byte 0x80)."),
        (b"external_id,name\na-1,ok\na-2,X\x00Y\n", "Line 3 contains a NUL byte: this is not a CSV text file."),
    ],
    ids=["empty", "latin-1", "binary", "nul"],
)
def test_an_unreadable_csv_is_refused_with_its_line(refused, data, message):
    page, _result = refused(Account, data)
    assert message in page


def test_a_row_with_more_cells_than_the_header_is_refused_with_its_line(refused):
    page, _result = refused(Account, b"external_id,name\na-1,Initech\na-2,Globex,extra\n")
    assert "Line 3 has 3 cells where the header has 2." in page


def test_a_utf8_file_with_a_byte_order_mark_is_read(admin_client, csm):
    data = ("\ufeff" + ACCOUNT_HEADER + "a-1,Café Ünïcode 🚀,casey,high-touch,10,\n").encode()
    response = upload(admin_client, Account, data)
    assert "confirm_form" in response.context
    admin_client.post(admin_url(Account, "process_import"), response.context["confirm_form"].initial)
    assert Account.objects.get(external_id="a-1").name == "Café Ünïcode 🚀"


def test_an_xlsx_that_is_not_a_zip_is_refused(refused):
    page, _result = refused(Account, b"PK\x03\x04 not really a zip", file_format=XLSX, name="rows.xlsx")
    assert "This is not an XLSX workbook (an XLSX file is a zip archive)." in page


def test_a_damaged_xlsx_is_refused(refused):
    data = xlsx([["external_id", "name"], ["a-1", "Initech"]])
    page, _result = refused(Account, data[: len(data) // 2] + data[: len(data) // 2], file_format=XLSX, name="a.xlsx")
    assert "This is not an XLSX workbook" in page or "The XLSX workbook could not be read" in page


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(refused, settings):
    settings.CSM_IMPORT_MAX_BYTES = 1024
    data = (ACCOUNT_HEADER + "".join(f"a-{n},Account {n},,,,\n" for n in range(100))).encode()
    assert len(data) > 1024
    page, _result = refused(Account, data)
    assert "an import takes at most 1.0\xa0KB. Split it into smaller files." in page


@pytest.mark.parametrize("file_format", [CSV, XLSX], ids=["csv", "xlsx"])
def test_a_file_over_the_row_limit_is_refused(refused, settings, file_format):
    settings.CSM_IMPORT_MAX_ROWS = 5
    rows = [["external_id", "name"]] + [[f"a-{n}", f"Account {n}"] for n in range(6)]
    data = xlsx(rows) if file_format is XLSX else "".join(",".join(row) + "\n" for row in rows).encode()
    page, _result = refused(Account, data, file_format=file_format, name=f"rows.{file_format().get_extension()}")
    assert "The file has more than 5 rows; an import takes at most 5. Split it." in page


def test_a_file_at_the_row_limit_is_read(admin_client, settings):
    settings.CSM_IMPORT_MAX_ROWS = 5
    data = ("external_id,name\n" + "".join(f"a-{n},Account {n}\n" for n in range(5))).encode()
    assert "confirm_form" in upload(admin_client, Account, data).context


# --- columns ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("name,tier\n", "The file has no “external_id” column."),
        ("external_id,name,bogus\n", "Unknown columns: bogus."),
        ("external_id,name,name\n", "Columns named more than once: name."),
    ],
    ids=["missing-id", "unknown", "repeated"],
)
def test_wrong_columns_are_refused_in_one_message(refused, header, message):
    cells = ",".join(f"v{n}" for n in range(header.count(",") + 1))
    page, result = refused(Account, (header + cells + "\n").encode())
    assert message in page
    assert "The columns an import reads are: external_id, name," in page
    assert len(result.base_errors) == 1 and list(result.row_errors()) == [] and result.invalid_rows == []
    assert "Traceback" not in page and "ValidationError" not in page


def test_wrong_columns_in_an_xlsx_are_refused(refused):
    page, _result = refused(Account, xlsx([["name", None], ["Initech", 1]]), file_format=XLSX, name="a.xlsx")
    assert "The file has no “external_id” column." in page and "Unknown columns: (empty)." in page


def test_a_missing_value_column_leaves_a_new_row_invalid(refused):
    _page, result = refused(Account, b"external_id,domain\na-1,initech.test\n")
    assert row_errors(result) == {1: {"name": ["This field cannot be blank."]}}


# --- values -------------------------------------------------------------------------------------


def test_bad_account_values_are_refused_by_row(refused, csm):
    factories.AccountFactory(external_id="taken", name="Taken")
    content = ACCOUNT_HEADER + (
        "a-1,Fine,casey,high-touch,10,2026-01-31\n"
        "a-2,Bad date,casey,high-touch,10,2026-13-45\n"
        "a-3,Unknown owner,nobody,no-such-tier,10,\n"
        f"a-4,{'x' * 201},,,10,\n"
        "a-5,Negative staff,,,-5,\n"
        "a-6,Not a number,,,many,\n"
        "a-7,Fraction,,,2.5,\n"
        "a-1,Same id twice,,,1,\n"
        ",No id,,,1,\n"
    )

    _page, result = refused(Account, content.encode())

    errors = row_errors(result)
    assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert errors[2] == {"renewal_date": ["Value could not be parsed using defined formats."]}
    assert errors[3] == {"owner": ["No user with username “nobody”."], "tier": ["No tier with slug “no-such-tier”."]}
    assert errors[4] == {"name": ["Ensure this value has at most 200 characters (it has 201)."]}
    assert errors[5] == {"employees": ["Ensure this value is greater than or equal to 0."]}
    assert errors[6] == {"employees": ["“many” is not a number."]}
    assert errors[7] == {"employees": ["“2.5” is not a whole number."]}
    assert errors[8] == {"external_id": ["External id “a-1” appears more than once."]}
    assert errors[9]["external_id"] == ["Every row needs an external id."]


@pytest.mark.parametrize(
    ("mrr", "quantity", "field", "message"),
    [
        ("-5", "1", "mrr", "Ensure this value is greater than or equal to 0."),
        ("NaN", "1", "mrr", "“NaN” is not a number."),
        ("Infinity", "1", "mrr", "“Infinity” is not a number."),
        ("-Infinity", "1", "mrr", "“-Infinity” is not a number."),
        ("1e30", "1", "mrr", "Ensure that there are no more than 14 digits in total."),
        ("five", "1", "mrr", "“five” is not a number."),
        ("5", "abc", "quantity", "“abc” is not a number."),
        ("5", "1.5", "quantity", "“1.5” is not a whole number."),
        ("5", "1e400", "quantity", "“1e400” is too large."),
        ("5", "1" + "0" * 20, "quantity", "“100000000000000000000” is too large."),
    ],
)
def test_bad_subscription_numbers_are_refused_by_row(refused, mrr, quantity, field, message):
    factories.AccountFactory(external_id="acme")
    content = SUBSCRIPTION_HEADER + f"s-0,acme,Fine,10,1,2025-01-01,\ns-1,acme,Platform,{mrr},{quantity},2025-01-01,\n"
    _page, result = refused(Subscription, content.encode())
    errors = row_errors(result)
    assert list(errors) == [2]
    assert errors[2] == {field: [message]}


def test_subscription_references_and_dates_are_refused_by_row(refused):
    factories.AccountFactory(external_id="acme")
    content = SUBSCRIPTION_HEADER + (
        "s-1,nope,Platform,10,1,2025-01-01,\n"
        "s-2,acme,Platform,10,1,2025-03-01,2025-02-01\n"
        "s-3,acme,Platform,10,1,2025-02-30,\n"
    )
    _page, result = refused(Subscription, content.encode())
    errors = row_errors(result)
    assert errors[1] == {"account": ["No account with external id “nope”."]}
    assert sorted(errors) == [1, 2, 3]
    assert errors[3] == {"start_date": ["Value could not be parsed using defined formats."]}


def test_bad_contact_values_are_refused_by_row(refused):
    factories.AccountFactory(external_id="acme")
    content = CONTACT_HEADER + (
        "c-1,acme,Ann,ann@acme.test,champion,maybe\n"
        "c-2,acme,Bob,not-an-email,champion,0\n"
        "c-3,acme,Cy,cy@acme.test,overlord,0\n"
    )
    _page, result = refused(Contact, content.encode())
    errors = row_errors(result)
    assert errors[1] == {"is_primary": ["“maybe” is not one of 1, 0, true or false."]}
    assert errors[2] == {"email": ["Enter a valid email address."]}
    assert errors[3] == {"role": ["Value 'overlord' is not a valid choice."]}


def test_a_bad_row_in_an_xlsx_is_refused_by_row(refused):
    factories.AccountFactory(external_id="acme")
    rows = [SUBSCRIPTION_HEADER.strip().split(","), ["s-1", "acme", "Platform", -5, 1, "2025-01-01", None]]
    _page, result = refused(Subscription, xlsx(rows), file_format=XLSX, name="subs.xlsx")
    assert row_errors(result) == {1: {"mrr": ["Ensure this value is greater than or equal to 0."]}}


# --- values kept as given -------------------------------------------------------------------------


def test_formula_like_values_are_imported_as_given(admin_client):
    factories.AccountFactory(external_id="acme")
    content = f'external_id,name,industry,region\na-1,"{FORMULA}",+1 555 0100,-Europe\na-2,@handle,=1+1,\tTabbed\n'
    preview = upload(admin_client, Account, content.encode())
    admin_client.post(admin_url(Account, "process_import"), preview.context["confirm_form"].initial)

    first, second = Account.objects.filter(external_id__in=["a-1", "a-2"]).order_by("external_id")
    assert (first.name, first.industry, first.region) == (FORMULA, "+1 555 0100", "-Europe")
    assert (second.name, second.industry, second.region) == ("@handle", "=1+1", "\tTabbed")


def test_an_xlsx_import_of_valid_rows_writes_them(admin_client):
    factories.AccountFactory(external_id="acme")
    rows = [SUBSCRIPTION_HEADER.strip().split(","), ["s-1", "acme", "Platform", 120.5, 3, "2025-01-01", None]]
    preview = upload(admin_client, Subscription, xlsx(rows), file_format=XLSX, name="subs.xlsx")
    admin_client.post(admin_url(Subscription, "process_import"), preview.context["confirm_form"].initial)

    line = Subscription.objects.get(external_id="s-1")
    assert (line.mrr, line.quantity, line.product) == (Decimal("120.50"), 3, "Platform")


def test_only_csv_and_xlsx_are_offered_for_import():
    for model in (Account, Contact, Subscription):
        assert admin.site._registry[model].get_import_formats() == [CSV, XLSX]

"""The accounts list, its CSV export and logging a touch, as the personas use them."""

import csv
import datetime
import io
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from accounts.models import Account, Touch
from tests import factories
from tests.accounts.conftest import recomputed

pytestmark = pytest.mark.django_db

LIST = reverse("accounts:list")
EXPORT = reverse("accounts:export")


def account_page(pk: int) -> str | None:
    try:
        return reverse("metrics:account", args=[pk])
    except NoReverseMatch:
        return None


def listed(response) -> list[str]:
    return [account.name for account in response.context["accounts"]]


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


# --- the list -----------------------------------------------------------------------------------


def test_the_list_shows_each_column(csm_client, csm_user):
    account = factories.AccountFactory(
        name="Acme Analytics",
        owner=csm_user,
        tier=factories.default_tier("high-touch"),
        health_band="yellow",
        health_score=Decimal("61.5"),
        mrr=Decimal("1250.00"),
        last_touch_at=datetime.datetime(2026, 3, 4, 10, 0, tzinfo=datetime.UTC),
        renewal_date=datetime.date(2027, 1, 31),
    )
    response = csm_client.get(LIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<title>Accounts" in page
    assert "1 account" in page
    assert "High touch" in page
    assert "Priya Khan" in page
    assert '<span class="badge band-yellow">Yellow 61.5</span>' in page
    assert "USD 15,000" in page  # 12 x 1,250
    assert 'datetime="2027-01-31"' in page
    assert "03/04/2026" in page  # last touch, SHORT_DATE_FORMAT in English
    url = account_page(account.pk)
    if url:
        assert f'<a href="{url}">Acme Analytics</a>' in page
    else:
        assert "<td>Acme Analytics</td>" in page


def test_the_empty_states(csm_client):
    assert "No accounts yet." in csm_client.get(LIST).content.decode()
    factories.AccountFactory(region="EMEA")
    assert (
        "No accounts match these filters." in csm_client.get(LIST, {"region": "EMEA", "q": "nothing"}).content.decode()
    )


def test_filters_from_the_query_string_with_mine(csm_client, csm_user, other_csm):
    factories.AccountFactory(name="Mine in EMEA", owner=csm_user, region="EMEA")
    factories.AccountFactory(name="Mine in APAC", owner=csm_user, region="APAC")
    factories.AccountFactory(name="Sam's in EMEA", owner=other_csm, region="EMEA")
    response = csm_client.get(LIST, {"owner": "mine", "region": "EMEA"})
    assert listed(response) == ["Mine in EMEA"]
    assert listed(csm_client.get(LIST, {"q": "in apac"})) == ["Mine in APAC"]
    assert listed(csm_client.get(LIST, {"owner": str(other_csm.pk)})) == ["Sam's in EMEA"]


def test_bad_filter_values_are_shown_on_the_page(csm_client):
    factories.AccountFactory(name="Acme")
    response = csm_client.get(LIST, {"owner": "everyone", "renewal_after": "tomorrow", "ordering": "secret"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Some filters could not be used" in page
    assert "CSM: No one in the workspace is called “everyone”." in page
    assert "Renewal from: Enter a valid date." in page
    assert listed(response) == []  # nothing rather than more than was asked for


def test_column_headers_toggle_the_order_and_keep_the_filters(csm_client):
    for name, mrr in (("Alpha", "300"), ("Bravo", "100"), ("Charlie", "200")):
        factories.AccountFactory(name=name, mrr=Decimal(mrr), region="EMEA")
    response = csm_client.get(LIST, {"region": "EMEA", "ordering": "arr", "page": "1"})
    assert listed(response) == ["Bravo", "Charlie", "Alpha"]
    page = response.content.decode()
    assert 'aria-sort="ascending"' in page
    assert 'href="?region=EMEA&amp;ordering=-arr"' in page  # the sorted column turns descending
    assert 'href="?region=EMEA&amp;ordering=name"' in page  # others sort ascending; the page resets
    descending = csm_client.get(LIST, {"region": "EMEA", "ordering": "-arr"})
    assert listed(descending) == ["Alpha", "Charlie", "Bravo"]
    assert 'aria-sort="descending"' in descending.content.decode()
    assert 'href="?region=EMEA&amp;ordering=arr"' in descending.content.decode()


def test_pages_of_fifty(csm_client):
    for number in range(55):
        factories.AccountFactory(name=f"Account {number:02d}", region="EMEA")
    first = csm_client.get(LIST, {"region": "EMEA", "ordering": "-name"})
    assert len(first.context["accounts"]) == 50
    assert listed(first)[0] == "Account 54"
    page = first.content.decode()
    assert "55 accounts" in page
    assert "Page 1 of 2" in page
    assert 'href="?region=EMEA&amp;ordering=-name&amp;page=2"' in page
    second = csm_client.get(LIST, {"region": "EMEA", "ordering": "-name", "page": "2"})
    assert listed(second) == ["Account 04", "Account 03", "Account 02", "Account 01", "Account 00"]
    assert csm_client.get(LIST, {"page": "not-a-number"}).status_code == 200


def test_the_list_runs_the_same_queries_for_3_or_30_accounts(client, csm_user, django_assert_max_num_queries):
    client.force_login(csm_user)
    owners = [csm_user, *(factories.csm_user(username=f"owner{n}") for n in range(2))]

    def count(accounts: int) -> int:
        for number in range(accounts - Account.objects.count()):
            factories.AccountFactory(
                owner=owners[number % 3], industry=f"Industry {number}", last_touch_at=timezone.now()
            )
        # Per page: session, user, role; tier, industry and region choices; the count; the rows (tier and
        # owner joined); the second page also reads the tier named in the filter. No query lists the people.
        with django_assert_max_num_queries(17) as queries:
            response = client.get(LIST, {"owner": "mine", "ordering": "-health"})
            assert response.status_code == 200
            response = client.get(LIST, {"tier": "low-touch", "industry": "Industry 1", "region": "EMEA"})
            assert response.status_code == 200
        return len(queries)

    few = count(3)
    assert few == count(30) == 17


# --- the owner picker ----------------------------------------------------------------------------


def test_the_owner_picker_writes_no_person_and_asks_for_suggestions(csm_client, csm_user, other_csm):
    for number in range(30):
        factories.csm_user(username=f"csm{number:02d}", first_name="Casey", last_name=f"{number:02d}")
    factories.AccountFactory(name="Acme", owner=other_csm)
    page = csm_client.get(LIST).content.decode()
    picker = re.search(r'<input type="search" name="owner"[^>]*>', page).group(0)
    assert f'hx-get="{reverse("accounts:owner_options")}"' in picker
    assert 'list="id_owner-options"' in picker
    datalist = re.search(r'<datalist id="id_owner-options">(.*?)</datalist>', page, re.DOTALL).group(1)
    assert re.findall(r'<option value="([^"]*)">', datalist) == ["mine", "none"]
    assert "Casey" not in page and "csm29" not in page


def test_owner_suggestions_for_what_was_typed(csm_client, csm_user, other_csm):
    for number in range(12):
        factories.csm_user(username=f"casey{number:02d}", first_name="Casey", last_name=f"{number:02d}")
    response = csm_client.get(reverse("accounts:owner_options"), {"owner": "cas"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    options = re.findall(r'<option value="([^"]*)">([^<]*)</option>', response.content.decode())
    assert options == [("mine", "Mine"), ("none", "No CSM")] + [
        (f"casey{number:02d}", f"Casey {number:02d}") for number in range(10)
    ]
    sam = csm_client.get(reverse("accounts:owner_options"), {"owner": "ito"}).content.decode()
    assert '<option value="sam">Sam Ito</option>' in sam


def test_owner_suggestions_take_one_query_whatever_the_number_of_people(csm_client, django_assert_num_queries):
    for number in range(15):
        factories.csm_user(username=f"casey{number:02d}")
    # Session, user, role; the people matching.
    with django_assert_num_queries(4):
        csm_client.get(reverse("accounts:owner_options"), {"owner": "cas"})


def test_typing_a_user_name_filters_without_javascript_and_links_by_id_show_it(csm_client, csm_user, other_csm):
    factories.AccountFactory(name="Sam's", owner=other_csm)
    factories.AccountFactory(name="Priya's", owner=csm_user)
    assert listed(csm_client.get(LIST, {"owner": "sam"})) == ["Sam's"]
    assert listed(csm_client.get(LIST, {"owner": "Priya Khan"})) == ["Priya's"]
    # A link from another page names the owner by id; the picker shows their user name, which filters the same.
    page = csm_client.get(LIST, {"owner": str(other_csm.pk)}).content.decode()
    assert re.search(r'<input type="search" name="owner" value="sam"', page)


def test_the_picker_and_its_suggestions_need_a_workspace_role(client, outsider):
    client.force_login(outsider)
    assert client.get(reverse("accounts:owner_options"), {"owner": "sa"}).status_code == 403


# --- the CSV export -----------------------------------------------------------------------------


def test_the_export_has_the_filtered_rows(csm_client, csm_user, other_csm):
    factories.AccountFactory(
        name="Acme Analytics",
        external_id="EXT-1",
        tier=factories.default_tier("high-touch"),
        owner=csm_user,
        health_band="red",
        health_score=Decimal("32.5"),
        mrr=Decimal("1250.50"),
        last_touch_at=datetime.datetime(2026, 3, 4, 9, 30, tzinfo=datetime.UTC),
        renewal_date=datetime.date(2027, 1, 31),
        lifecycle_stage="adoption",
        industry="Software",
        region="EMEA",
    )
    factories.AccountFactory(
        name="Birch Bank",
        external_id=None,
        tier=None,
        owner=None,
        health_band="",
        health_score=None,
        mrr=Decimal("0.00"),
        last_touch_at=None,
        renewal_date=None,
        lifecycle_stage="onboarding",
        industry="",
        region="EMEA",
    )
    factories.AccountFactory(name="Cedar Clinic", owner=other_csm, region="APAC")
    factories.AccountFactory(name="Acme Gone", region="EMEA", deleted_at=timezone.now())
    response = csm_client.get(EXPORT, {"region": "EMEA"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="accounts-{timezone.localdate()}.csv"'
    assert csv_rows(response) == [
        [
            "External id",
            "Name",
            "Tier",
            "CSM",
            "Health band",
            "Health score",
            "ARR",
            "MRR",
            "Last touch",
            "Renewal date",
            "Lifecycle stage",
            "Industry",
            "Region",
        ],
        [
            "EXT-1",
            "Acme Analytics",
            "High touch",
            "Priya Khan",
            "Red",
            "32.5",
            "15006.00",
            "1250.50",
            "2026-03-04 09:30",
            "2027-01-31",
            "Adoption",
            "Software",
            "EMEA",
        ],
        ["", "Birch Bank", "", "", "", "", "0.00", "0.00", "", "", "Onboarding", "", "EMEA"],
    ]


def test_the_export_follows_the_sort_order(csm_client):
    for name, mrr in (("Alpha", "300"), ("Bravo", "100")):
        factories.AccountFactory(name=name, mrr=Decimal(mrr))
    rows = csv_rows(csm_client.get(EXPORT, {"ordering": "-arr"}))
    assert [row[1] for row in rows[1:]] == ["Alpha", "Bravo"]


def test_the_export_neutralises_formulas(csm_client):
    factories.AccountFactory(name="=HYPERLINK(1)", external_id="+1", industry="-2+3", region="@SUM(A1)")
    factories.AccountFactory(name="Plain name", external_id="a=b", industry="Software", region="EMEA")
    rows = csv_rows(csm_client.get(EXPORT))
    assert [[row[0], row[1], row[11], row[12]] for row in rows[1:]] == [
        ["'+1", "'=HYPERLINK(1)", "'-2+3", "'@SUM(A1)"],
        ["a=b", "Plain name", "Software", "EMEA"],
    ]


def test_the_export_with_bad_filters_shows_the_errors(csm_client):
    response = csm_client.get(EXPORT, {"health_band": "blue"})
    assert response.status_code == 400
    assert "Some filters could not be used" in response.content.decode()


def test_the_export_runs_the_same_queries_for_3_or_30_accounts(csm_client):
    def count(accounts: int) -> int:
        for _number in range(accounts - Account.objects.count()):
            factories.AccountFactory()
        with CaptureQueriesContext(connection) as queries:
            rows = csv_rows(csm_client.get(EXPORT))
        assert len(rows) == accounts + 1
        return len(queries)

    assert count(3) == count(30)


# --- access -------------------------------------------------------------------------------------


def test_an_outsider_gets_the_no_access_page(client, outsider):
    account = factories.AccountFactory()
    client.force_login(outsider)
    new_touch = reverse("accounts:new_touch", args=[account.pk])
    log_touch = reverse("accounts:log_touch", args=[account.pk])
    for response in (
        client.get(LIST),
        client.get(EXPORT),
        client.get(new_touch),
        client.post(log_touch, {"kind": "call", "subject": "Hello", "occurred_at": "2026-01-01T10:00"}),
    ):
        assert response.status_code == 403
        assert "No access yet" in response.content.decode()
    assert not Touch.objects.exists()


def test_an_anonymous_visitor_is_sent_to_sign_in():
    response = Client().get(LIST)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- logging a touch ----------------------------------------------------------------------------


@pytest.fixture
def account(other_csm):
    """An account Priya does not own: any CSM may log a touch anywhere."""
    return factories.AccountFactory(name="Acme Analytics", owner=other_csm, last_touch_at=None)


def local_input(moment: datetime.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M")


def test_logging_a_touch(csm_client, csm_user, account, task_runs, django_capture_on_commit_callbacks):
    champion = factories.ContactFactory(account=account, name="Chris Champion")
    factories.ContactFactory(account=account, name="Bea Buyer")
    occurred = (timezone.now() - datetime.timedelta(hours=2)).replace(second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = csm_client.post(
            reverse("accounts:log_touch", args=[account.pk]),
            {
                "kind": "meeting",
                "occurred_at": local_input(occurred),
                "contacts": [champion.pk],
                "sentiment": "-1",
                "subject": "Renewal risk review",
                "notes": "Budget cut announced.",
                "next_step": "Send the ROI summary",
                "next_step_due": "2027-01-15",
                "next": f"{LIST}?owner=mine",
            },
        )
    assert response.status_code == 302
    assert response["Location"] == f"{LIST}?owner=mine"
    touch = Touch.objects.get()
    assert (touch.account, touch.csm, touch.kind, touch.occurred_at) == (account, csm_user, "meeting", occurred)
    assert (touch.subject, touch.notes, touch.sentiment) == ("Renewal risk review", "Budget cut announced.", -1)
    assert (touch.next_step, touch.next_step_due) == ("Send the ROI summary", datetime.date(2027, 1, 15))
    assert touch.source == "workspace"
    assert list(touch.contacts.all()) == [champion]
    account.refresh_from_db()
    assert account.last_touch_at == occurred
    assert len(callbacks) >= 1
    assert recomputed(task_runs) == [[account.pk]]
    followed = csm_client.get(response["Location"])
    assert "Touch logged on Acme Analytics: Renewal risk review." in followed.content.decode()


def test_a_leader_logs_a_touch_and_lands_on_the_account_page(leader_client, leader, account):
    response = leader_client.post(
        reverse("accounts:log_touch", args=[account.pk]),
        {"kind": "call", "occurred_at": local_input(timezone.now()), "subject": "Exec check-in"},
    )
    assert response.status_code == 302
    assert response["Location"] == (account_page(account.pk) or LIST)
    assert Touch.objects.get().csm == leader


@pytest.mark.parametrize("unsafe", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_next_must_stay_on_this_site(csm_client, account, unsafe):
    response = csm_client.post(
        reverse("accounts:log_touch", args=[account.pk]),
        {"kind": "call", "occurred_at": local_input(timezone.now()), "subject": "Hi", "next": unsafe},
    )
    assert response["Location"] == (account_page(account.pk) or LIST)


def post_touch(client, account, **fields):
    data = {"kind": "call", "occurred_at": local_input(timezone.now()), "subject": "Check-in", **fields}
    return client.post(reverse("accounts:log_touch", args=[account.pk]), data)


def test_a_touch_in_the_future_is_refused_with_the_services_message(csm_client, account):
    response = post_touch(csm_client, account, occurred_at=local_input(timezone.now() + datetime.timedelta(days=1)))
    assert response.status_code == 400
    page = response.content.decode()
    assert "The touch was not saved" in page
    assert "A touch cannot be logged in the future." in page
    assert not Touch.objects.exists()


def test_a_subject_is_required(csm_client, account):
    response = post_touch(csm_client, account, subject="  ")
    assert response.status_code == 400
    assert response.context["form"].errors == {"subject": ["This field is required."]}
    assert not Touch.objects.exists()


def test_only_the_accounts_live_contacts_can_be_named(csm_client, account):
    stranger = factories.ContactFactory(name="Someone Else")
    gone = factories.ContactFactory(account=account, name="Gone Away", deleted_at=timezone.now())
    for contact in (stranger, gone):
        response = post_touch(csm_client, account, contacts=[contact.pk])
        assert response.status_code == 400
        assert response.context["form"].errors == {
            "contacts": [f"Select a valid choice. {contact.pk} is not one of the available choices."]
        }
    assert not Touch.objects.exists()


def test_a_due_date_needs_a_next_step(csm_client, account):
    response = post_touch(csm_client, account, next_step_due="2027-01-15")
    assert response.context["form"].errors == {"next_step": ["Say what the next step is, or clear its due date."]}


def test_with_htmx_errors_come_back_in_the_form_fragment(csm_client, account):
    response = csm_client.post(
        reverse("accounts:log_touch", args=[account.pk]),
        {"kind": "call", "occurred_at": local_input(timezone.now()), "subject": ""},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200  # htmx swaps successful responses only
    page = response.content.decode()
    assert page.lstrip().startswith('<div class="touch-form" id="touch-form-')
    assert "<html" not in page
    assert "This field is required." in page
    assert "HX-Trigger" not in response


def test_with_htmx_a_logged_touch_returns_a_notice_and_a_fresh_form(csm_client, account):
    response = csm_client.post(
        reverse("accounts:log_touch", args=[account.pk]),
        {"kind": "email", "occurred_at": local_input(timezone.now()), "subject": "Sent the deck"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    touch = Touch.objects.get()
    page = response.content.decode()
    assert "<html" not in page
    assert "Touch logged: Sent the deck." in page
    assert 'name="subject" maxlength="200" required' in page  # a blank form for the next one
    assert response["HX-Trigger"] == f'{{"touchLogged": {{"account": {account.pk}, "touch": {touch.pk}}}}}'


def test_the_touch_page_shows_the_form_with_csrf_and_the_accounts_contacts(csm_client, account):
    factories.ContactFactory(account=account, name="Chris Champion")
    factories.ContactFactory(name="Someone Else")
    factories.ContactFactory(account=account, name="Gone Away", deleted_at=timezone.now())
    response = csm_client.get(reverse("accounts:new_touch", args=[account.pk]), {"next": "/accounts/?q=acme"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "<title>Log a touch · Acme Analytics" in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert f'action="{reverse("accounts:log_touch", args=[account.pk])}"' in page
    assert '<input type="hidden" name="next" value="/accounts/?q=acme">' in page
    assert "Chris Champion" in page
    assert "Someone Else" not in page
    assert "Gone Away" not in page
    assert 'type="datetime-local"' in page


def test_posting_without_the_csrf_token_is_refused(csm_user, account):
    client = Client(enforce_csrf_checks=True)
    client.force_login(csm_user)
    response = post_touch(client, account)
    assert response.status_code == 403
    assert not Touch.objects.exists()


def test_a_deleted_account_takes_no_touch(csm_client):
    gone = factories.AccountFactory(deleted_at=timezone.now())
    assert post_touch(csm_client, gone).status_code == 404
    assert csm_client.get(reverse("accounts:new_touch", args=[gone.pk])).status_code == 404


def test_the_touch_page_runs_the_same_queries_with_2_or_8_contacts(csm_client, account):
    url = reverse("accounts:new_touch", args=[account.pk])

    def count(contacts: int) -> int:
        for _number in range(contacts - account.contacts.count()):
            factories.ContactFactory(account=account)
        with CaptureQueriesContext(connection) as queries:
            assert csm_client.get(url).status_code == 200
        return len(queries)

    assert count(2) == count(8)

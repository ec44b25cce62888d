"""The metrics admin: health model versions, the alert queue's actions, read-only usage, recompute issues."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from metrics.models import Alert, HealthComponent, HealthModel, HealthSnapshot, UsageRecord
from tests import factories
from tests.admin.test_admin import form_data, messages_of

pytestmark = pytest.mark.django_db


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def weights(model: HealthModel) -> dict[str, Decimal]:
    return dict(model.components.values_list("kind", "weight"))


@pytest.fixture
def scored() -> HealthModel:
    """The seeded model (version 1, active, six components) once it has scored an account."""
    return factories.HealthSnapshotFactory().model_version


SEEDED = {
    "usage_trend": Decimal(25),
    "usage_level": Decimal(20),
    "engagement": Decimal(20),
    "sentiment": Decimal(15),
    "plan_progress": Decimal(10),
    "renewal_proximity": Decimal(10),
}


# --- a component's own pages --------------------------------------------------------------------


class TestComponentPagesOfAScoredModel:
    def test_changing_a_component_publishes_a_new_version(self, admin_client, scored):
        component = scored.components.get(kind="sentiment")
        page = url(HealthComponent, "change", component.pk)
        data = form_data(admin_client.get(page))
        data["weight"] = "30"

        response = admin_client.post(page, data, follow=True)

        assert "Version 1 has scored accounts, so the change was saved as version 2." in messages_of(response)
        scored.refresh_from_db()
        new = HealthModel.objects.get(version=2)
        assert (scored.is_active, new.is_active) == (False, True)
        assert weights(scored) == SEEDED
        assert weights(new) == {**SEEDED, "sentiment": Decimal(30)}
        assert HealthSnapshot.objects.get().model_version == scored
        # The page now shows the new version's component.
        assert response.redirect_chain and new.components.filter(kind="sentiment").exists()

    def test_adding_a_component_publishes_a_new_version(self, admin_client, scored):
        data = form_data(admin_client.get(url(HealthComponent, "add")))
        data.update(model=str(scored.pk), kind="usage_level", weight="5", bad="1", good="10", metric="logins")

        response = admin_client.post(url(HealthComponent, "add"), data, follow=True)

        assert "Version 1 has scored accounts, so the change was saved as version 2." in messages_of(response)
        new = HealthModel.objects.get(version=2)
        assert scored.components.count() == 6
        assert new.components.count() == 7
        assert new.components.filter(kind="usage_level", metric="logins", weight=5).exists()

    def test_deleting_a_component_publishes_a_new_version(self, admin_client, scored):
        component = scored.components.get(kind="renewal_proximity")

        response = admin_client.post(url(HealthComponent, "delete", component.pk), {"post": "yes"}, follow=True)

        assert "Version 1 has scored accounts, so the change was saved as version 2." in messages_of(response)
        assert weights(scored) == SEEDED
        new = HealthModel.objects.get(version=2)
        assert weights(new) == {k: v for k, v in SEEDED.items() if k != "renewal_proximity"}
        assert new.is_active

    def test_the_bulk_delete_action_is_not_offered(self, admin_client):
        response = admin_client.get(url(HealthComponent, "changelist"))
        assert response.status_code == 200 and "delete_selected" not in response.content.decode()

    def test_a_component_of_an_unused_model_is_edited_in_place(self, admin_client):
        model = HealthModel.objects.get(is_active=True)
        component = model.components.get(kind="sentiment")
        page = url(HealthComponent, "change", component.pk)
        data = form_data(admin_client.get(page))
        data["weight"] = "30"
        admin_client.post(page, data)
        assert HealthModel.objects.count() == 1
        assert weights(model)["sentiment"] == Decimal(30)

    def test_weights_summing_to_zero_are_refused(self, admin_client):
        model = factories.HealthModelFactory()
        component = factories.HealthComponentFactory(model=model, weight=1)
        page = url(HealthComponent, "change", component.pk)
        data = form_data(admin_client.get(page))
        data["weight"] = "0"

        response = admin_client.post(page, data)

        assert response.status_code == 200
        assert "A health model needs at least one component with a weight above zero." in str(
            response.context["adminform"].form.errors
        )
        assert HealthComponent.objects.get(pk=component.pk).weight == 1

    def test_deleting_the_last_weighted_component_is_refused(self, admin_client):
        model = factories.HealthModelFactory()
        component = factories.HealthComponentFactory(model=model, weight=1)
        factories.HealthComponentFactory(model=model, weight=0, kind="sentiment", bad=-1, good=1)

        response = admin_client.post(url(HealthComponent, "delete", component.pk), {"post": "yes"}, follow=True)

        assert "A health model needs at least one component with a weight above zero." in messages_of(response)
        assert HealthComponent.objects.filter(pk=component.pk).exists()


# --- the health model page ----------------------------------------------------------------------


class TestHealthModelPage:
    def test_unticking_active_on_a_scored_model_deactivates_it(self, admin_client, scored):
        page = url(HealthModel, "change", scored.pk)
        data = form_data(admin_client.get(page))
        del data["is_active"]

        response = admin_client.post(page, data, follow=True)

        assert HealthModel.objects.count() == 1
        scored.refresh_from_db()
        assert not scored.is_active
        assert weights(scored) == SEEDED
        assert "Version 1 is no longer active." in " ".join(messages_of(response))

    def test_ticking_active_on_an_older_scored_version_brings_it_back(self, admin_client, scored):
        newer = factories.HealthModelFactory(version=2)
        factories.HealthComponentFactory(model=newer)
        HealthModel.objects.filter(pk=scored.pk).update(is_active=False)
        HealthModel.objects.filter(pk=newer.pk).update(is_active=True)
        page = url(HealthModel, "change", scored.pk)
        data = form_data(admin_client.get(page))
        data["is_active"] = "on"

        admin_client.post(page, data)

        assert list(HealthModel.objects.filter(is_active=True)) == [scored]
        assert HealthModel.objects.count() == 2

    def test_editing_weights_and_unticking_active_publishes_an_inactive_version(self, admin_client, scored):
        page = url(HealthModel, "change", scored.pk)
        data = form_data(admin_client.get(page))
        del data["is_active"]
        weight_key = next(key for key in data if key.endswith("-weight"))
        data[weight_key] = "50"

        admin_client.post(page, data)

        assert not HealthModel.objects.filter(is_active=True).exists()
        assert HealthModel.objects.get(version=2).components.count() == 6

    def test_weights_summing_to_zero_are_refused(self, admin_client, scored):
        page = url(HealthModel, "change", scored.pk)
        data = form_data(admin_client.get(page))
        for key in data:
            if key.endswith("-weight"):
                data[key] = "0"

        response = admin_client.post(page, data)

        assert response.status_code == 200
        assert "A health model needs at least one component with a weight above zero." in str(
            [formset.formset.non_form_errors() for formset in response.context["inline_admin_formsets"]]
        )
        assert HealthModel.objects.count() == 1
        assert weights(scored) == SEEDED

    def test_a_new_model_without_weight_is_refused(self, admin_client):
        data = form_data(admin_client.get(url(HealthModel, "add")))
        data.update(
            {
                "name": "Draft",
                "version": "7",
                "components-TOTAL_FORMS": "1",
                "components-0-kind": "sentiment",
                "components-0-weight": "0",
                "components-0-bad": "-1",
                "components-0-good": "1",
                "components-0-order": "0",
            }
        )
        response = admin_client.post(url(HealthModel, "add"), data)
        assert response.status_code == 200
        assert not HealthModel.objects.filter(version=7).exists()

    def test_a_new_model_saved_active_retires_the_active_one(self, admin_client):
        old = HealthModel.objects.get(is_active=True)
        data = form_data(admin_client.get(url(HealthModel, "add")))
        data.update(
            {
                "name": "Sentiment only",
                "version": "7",
                "is_active": "on",
                "components-TOTAL_FORMS": "1",
                "components-0-kind": "sentiment",
                "components-0-weight": "1",
                "components-0-bad": "-1",
                "components-0-good": "1",
                "components-0-order": "0",
            }
        )

        admin_client.post(url(HealthModel, "add"), data)

        assert list(HealthModel.objects.filter(is_active=True).values_list("version", flat=True)) == [7]
        old.refresh_from_db()
        assert not old.is_active and weights(old) == SEEDED

    def test_the_change_page_reads_its_components_in_one_query(self, admin_client, django_assert_max_num_queries):
        few = factories.HealthModelFactory()
        factories.HealthComponentFactory(model=few)
        many = factories.HealthModelFactory()
        factories.HealthComponentFactory.create_batch(8, model=many)
        admin_client.get(url(HealthModel, "change", few.pk))  # warm per-process caches

        with CaptureQueriesContext(connection) as one_row:
            assert admin_client.get(url(HealthModel, "change", few.pk)).status_code == 200
        # session, user, the model, its components
        with django_assert_max_num_queries(4):
            response = admin_client.get(url(HealthModel, "change", many.pk))
        assert len(response.context["inline_admin_formsets"][0].formset.forms) == 8
        with CaptureQueriesContext(connection) as eight_rows:
            admin_client.get(url(HealthModel, "change", many.pk))
        assert len(eight_rows) == len(one_row)

    def test_the_changelist_warns_while_a_recompute_issue_is_open(self, admin_client):
        factories.RecomputeIssueFactory(message="No health model is active (test).")
        factories.RecomputeIssueFactory(message="Resolved long ago.", resolved_at=timezone.now())

        response = admin_client.get(url(HealthModel, "changelist"))

        assert messages_of(response) == ["No health model is active (test)."]

    def test_recompute_issues_are_listed(self, admin_client):
        factories.RecomputeIssueFactory(message="No health model is active (listed).", occurrences=3)
        page = admin_client.get(url(HealthModel._meta.apps.get_model("metrics", "RecomputeIssue"), "changelist"))
        assert "No health model is active (listed)." in page.content.decode()


# --- alerts -------------------------------------------------------------------------------------


class TestAlertActions:
    def test_mark_done(self, admin_client, django_assert_max_num_queries):
        alerts = factories.AlertFactory.create_batch(3)
        kept = factories.AlertFactory()
        selected = [a.pk for a in alerts]

        response = admin_client.post(
            url(Alert, "changelist"), {"action": "mark_done", "_selected_action": selected}, follow=True
        )

        assert "3 alerts marked done." in messages_of(response)
        assert set(Alert.objects.filter(pk__in=selected).values_list("status", "closed_reason")) == {
            ("done", "Marked done")
        }
        assert Alert.objects.get(pk=kept.pk).status == "open"

    def test_snooze_for_seven_days_or_until_a_chosen_date(self, admin_client):
        first, second = factories.AlertFactory.create_batch(2)
        done = factories.AlertFactory(status="done", closed_at=timezone.now())
        today = timezone.localdate()

        response = admin_client.post(
            url(Alert, "changelist"),
            {"action": "snooze", "_selected_action": [first.pk, done.pk]},
            follow=True,
        )
        week = today + datetime.timedelta(days=7)
        assert messages_of(response) == [f"1 alert snoozed until {date_format(week)}."]
        assert Alert.objects.get(pk=first.pk).snoozed_until == week
        assert Alert.objects.get(pk=done.pk).status == "done"

        chosen = today + datetime.timedelta(days=30)
        admin_client.post(
            url(Alert, "changelist"),
            {"action": "snooze", "_selected_action": [second.pk], "snooze_until": chosen.isoformat()},
        )
        assert (Alert.objects.get(pk=second.pk).status, Alert.objects.get(pk=second.pk).snoozed_until) == (
            "snoozed",
            chosen,
        )

    def test_snoozing_into_the_past_is_refused_with_the_services_message(self, admin_client):
        alert = factories.AlertFactory()
        response = admin_client.post(
            url(Alert, "changelist"),
            {"action": "snooze", "_selected_action": [alert.pk], "snooze_until": timezone.localdate().isoformat()},
            follow=True,
        )
        assert "Snooze until a day after today." in messages_of(response)
        assert Alert.objects.get(pk=alert.pk).status == "open"

    def test_status_and_closing_fields_are_read_only_on_the_change_page(self, admin_client):
        alert = factories.AlertFactory()
        page = url(Alert, "change", alert.pk)
        form = admin_client.get(page).context["adminform"].form
        assert not {"status", "snoozed_until", "closed_at", "closed_reason"} & set(form.fields)
        data = form_data(admin_client.get(page))
        admin_client.post(page, {**data, "status": "done", "closed_reason": "typed by hand"})
        alert.refresh_from_db()
        assert (alert.status, alert.closed_reason) == ("open", "")


# --- usage --------------------------------------------------------------------------------------


def test_usage_records_are_read_only(admin_client):
    record = factories.UsageRecordFactory()
    assert admin_client.get(url(UsageRecord, "add")).status_code == 403
    page = admin_client.get(url(UsageRecord, "change", record.pk))
    assert page.status_code == 200 and not page.context["has_change_permission"]
    response = admin_client.post(url(UsageRecord, "change", record.pk), {"value": "1"})
    assert response.status_code == 403
    assert admin_client.post(url(UsageRecord, "delete", record.pk), {"post": "yes"}).status_code == 403
    assert UsageRecord.objects.get(pk=record.pk).value == Decimal(42)

"""Each audited object's admin History page lists its versions with the fields changed, who and when;
old versions can be viewed but not reverted; other models keep Django's history of admin actions."""

import pytest

from accounts.models import Account, Partner
from accounts.services import account_update
from audit.context import ActorKind, acting_as
from metrics.models import AlertRule
from tests import factories
from tests.admin.test_admin import admin_url
from tests.audit.conftest import history_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(db):
    account = factories.AccountFactory(name="Initech", lifecycle_stage="onboarding")
    with acting_as(ActorKind.PARTNER_KEY, "Billing (key production)"):
        account_update(account=account, data={"lifecycle_stage": "adoption"})
    return account


def test_the_history_page_lists_each_change_with_its_actor(admin_client, account):
    response = admin_client.get(admin_url(Account, "history", account.pk))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Billing (key production)" in html
    assert "partner key: Billing (key production)" in html
    # The change is spelled out: the field, then the old and new values.
    changes = response.context["page_obj"].object_list[0].history_delta_changes
    assert [(str(c["field"]).lower(), c["old"], c["new"]) for c in changes] == [
        ("lifecycle stage", "onboarding", "adoption")
    ]
    assert "onboarding" in html and "adoption" in html
    assert [row.history_type for row in response.context["page_obj"].object_list] == ["~", "+"]


def test_an_old_version_can_be_viewed_but_not_reverted(admin_client, account):
    first = history_of(account)[0]
    url = admin_url(Account, "simple_history", account.pk, first.history_id)

    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"name": "Reverted", "lifecycle_stage": "onboarding"}).status_code == 403
    account.refresh_from_db()
    assert (account.name, account.lifecycle_stage) == ("Initech", "adoption")
    assert len(history_of(account)) == 2


def test_models_without_history_keep_the_admin_action_log(admin_client):
    partner = factories.PartnerFactory(name="Billing")
    assert admin_client.get(admin_url(Partner, "history", partner.pk)).status_code == 200


def test_deleting_in_the_admin_records_the_last_version_by_the_admin(admin_client, admin_user):
    rule = factories.alert_rule()
    name = rule.name
    url = admin_url(AlertRule, "delete", rule.pk)

    assert admin_client.post(url, {"post": "yes"}).status_code == 302

    assert not AlertRule.objects.filter(pk=rule.pk).exists()
    deleted = AlertRule.history.filter(id=rule.pk).latest("history_date")
    assert (deleted.history_type, deleted.name, deleted.actor_kind) == ("-", name, "user")
    assert deleted.history_user_id == admin_user.pk

"""One visibility rule for partners and users, and API keys made from the command line."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import Account, Contact, Partner, PartnerKey, Subscription, Touch
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def book():
    own = factories.PartnerFactory(name="Reseller", scope=Partner.Scope.OWN)
    other = factories.PartnerFactory(name="Other reseller", scope=Partner.Scope.OWN)
    everyone = factories.PartnerFactory(name="Billing", scope=Partner.Scope.ALL)
    mine = factories.AccountFactory(partner=own)
    gone = factories.AccountFactory(partner=own, deleted_at=timezone.now())
    theirs = factories.AccountFactory(partner=other)
    nobody = factories.AccountFactory()
    for account in (mine, theirs, nobody):
        factories.ContactFactory(account=account)
        factories.SubscriptionFactory(account=account)
        factories.TouchFactory(account=account)
    return own, other, everyone, mine, gone, theirs, nobody


def ids(queryset) -> set[int]:
    return set(queryset.values_list("pk", flat=True))


def test_partners_see_their_scope(book):
    own, other, everyone, mine, gone, theirs, nobody = book
    assert ids(Account.objects.visible_to(own)) == {mine.pk, gone.pk}  # tombstones included
    assert ids(Account.objects.visible_to(other)) == {theirs.pk}
    assert ids(Account.objects.visible_to(everyone)) == {mine.pk, gone.pk, theirs.pk, nobody.pk}
    own.is_active = False
    assert not Account.objects.visible_to(own).exists()


def test_rows_of_an_account_are_visible_with_it(book):
    own, _other, _everyone, mine, _gone, _theirs, _nobody = book
    for model in (Contact, Subscription, Touch):
        assert set(model.objects.visible_to(own).values_list("account_id", flat=True)) == {mine.pk}, model


def test_users_with_a_role_see_every_account_and_others_none(book, csm_user, leader, outsider):
    everything = ids(Account.objects.all())
    assert ids(Account.objects.visible_to(csm_user)) == everything
    assert ids(Account.objects.visible_to(leader)) == everything
    assert not Account.objects.visible_to(outsider).exists()


def run(*args) -> list[str]:
    out = StringIO()
    call_command("create_partner_key", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_create_partner_key_prints_the_key_last_and_stores_its_hash():
    lines = run("Billing", "--scope", "all", "--key-name", "production")
    raw = lines[-1]
    partner = Partner.objects.get(name="Billing")
    assert partner.scope == Partner.Scope.ALL
    key = PartnerKey.objects.get(partner=partner)
    assert key.name == "production"
    assert key.key_hash == PartnerKey.hash_key(raw)
    assert raw not in key.key_hash and raw.startswith("csm_")
    # A second key for the same partner; the partner keeps its scope.
    second = run("Billing")[-1]
    assert second != raw
    assert PartnerKey.objects.filter(partner=partner).count() == 2


def test_create_partner_key_refuses_what_it_cannot_do():
    run("Reseller")
    assert Partner.objects.get(name="Reseller").scope == Partner.Scope.OWN
    with pytest.raises(CommandError, match="exists with scope own"):
        run("Reseller", "--scope", "all")
    Partner.objects.filter(name="Reseller").update(is_active=False)
    with pytest.raises(CommandError, match="inactive"):
        run("Reseller")
    with pytest.raises(CommandError, match="name"):
        run("   ")
    assert PartnerKey.objects.count() == 1

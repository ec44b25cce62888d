import pytest

from tests import factories


@pytest.fixture
def csm(db):
    return factories.UserFactory(username="casey")


@pytest.fixture
def admin_user(db):
    return factories.StaffUserFactory(username="admin")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client

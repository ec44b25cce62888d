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


# --- personas: two CSMs, a CS leader, and a signed-in user with no role --------------------------


@pytest.fixture
def csm_user(db):
    return factories.csm_user(username="priya", first_name="Priya", last_name="Khan")


@pytest.fixture
def other_csm(db):
    return factories.csm_user(username="sam", first_name="Sam", last_name="Ito")


@pytest.fixture
def leader(db):
    return factories.leader(username="lee", first_name="Lee", last_name="Park")


@pytest.fixture
def outsider(db):
    return factories.UserFactory(username="olga")


@pytest.fixture
def csm_client(client, csm_user):
    client.force_login(csm_user)
    return client


@pytest.fixture
def leader_client(client, leader):
    client.force_login(leader)
    return client


@pytest.fixture(autouse=True, scope="session")
def celery_eager():
    """Tasks run in-process in tests, even when a broker is configured; worker tests opt out."""
    from csm.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing():
    """Factories hash passwords; the production hasher is deliberately slow."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield

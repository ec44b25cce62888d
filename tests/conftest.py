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

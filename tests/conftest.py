import pytest

from tests import factories


def _transactional(item) -> bool:
    """Whether the test runs on a transactional database (threads, a live server, other processes)."""
    marker = item.get_closest_marker("django_db")
    marked = marker is not None and (marker.kwargs.get("transaction") or (marker.args and marker.args[0]))
    return bool(marked) or "transactional_db" in getattr(item, "fixturenames", ())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """A test on a transactional database commits, so its teardown empties every table, the rows the
    migrations seed (roles, tiers, the health model, alert rules, playbooks) included, and makes the content
    types and permissions again with new ids. Put the seeded rows back, as they were, for the tests after."""
    try:
        return (yield)
    finally:
        if nextitem is not None and _transactional(item):
            from django.contrib.contenttypes.models import ContentType
            from django.db import connections
            from pytest_django.plugin import blocking_manager_key

            with item.config.stash[blocking_manager_key].unblock():
                for connection in connections.all():
                    seeded = getattr(connection, "_test_serialized_contents", None)
                    if seeded:
                        ContentType.objects.using(connection.alias).all().delete()  # their permissions go too
                        connection.creation.deserialize_db_from_string(seeded)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Keep the seeded rows of every test database for the teardown above to put back, whether or not a
    test asks for serialized_rollback (pytest-django serializes only for those that do)."""
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all():
            if getattr(connection, "_test_serialized_contents", None) is None:
                connection._test_serialized_contents = connection.creation.serialize_db_to_string()


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


@pytest.fixture(autouse=True)
def worker_left_behind(request):
    """A worker started in this process marks it as a worker for good, and Celery then refuses to wait on a
    result here (eager chains, the bench's chords): undo that after each worker test."""
    yield
    if request.node.get_closest_marker("worker") is not None:
        from celery._state import _set_task_join_will_block

        _set_task_join_will_block(False)


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing():
    """Factories hash passwords; the production hasher is deliberately slow."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield

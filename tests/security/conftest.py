"""The API's personas (two `own` partners, an `all` partner, their keys and accounts) and the scope tests'
world, for the isolation tests here; every test starts with no throttle count."""

from tests.api.conftest import (  # noqa: F401
    account_a,
    account_b,
    client_a,
    client_all,
    client_b,
    fresh_throttle,
    partner_a,
    partner_all,
    partner_b,
)
from tests.api.test_scope import world  # noqa: F401
from tests.e2e.conftest import book, browser, page  # noqa: F401, E402 -- the browser tests' fixtures

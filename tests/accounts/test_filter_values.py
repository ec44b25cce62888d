"""Odd values in the accounts list's query string are refused as form errors, never a server error."""

import pytest
from django.urls import reverse


@pytest.mark.parametrize("owner", ["²", "１２", "9" * 40, "-3"])
def test_an_owner_that_is_not_a_user_id_is_a_form_error(csm_client, owner):
    response = csm_client.get(reverse("accounts:list"), {"owner": owner})
    assert response.status_code == 400
    assert "owner" in response.context["filter"].form.errors

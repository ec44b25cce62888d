"""My day: the signed-in CSM's book, alerts, renewals, overdue touches and plan work."""

urlpatterns: list = []

"""Account 360: header, health trend and "why did health change", timeline, contacts, revenue, plans."""

urlpatterns: list = []

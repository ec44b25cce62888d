"""Reads over health snapshots: why a score changed between two dates, the trend, band changes.

Every selector costs a fixed number of queries whatever the number of snapshots and components.
"""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.utils.translation import gettext as _

from accounts.models import Account
from metrics.models import HealthComponent, HealthSnapshot

ZERO = Decimal("0.00")
CONTRIBUTION_PLACES = Decimal("0.01")
ROUNDING = "rounding"


def _decimal(value) -> Decimal | None:
    """A JSON number as the Decimal it was written from (via its shortest repr, not its binary value)."""
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def kind_label(kind: str) -> str:
    """A component kind's label as `HealthComponent.Kind` names it (the kind itself when unknown)."""
    try:
        return str(HealthComponent.Kind(kind).label)
    except ValueError:
        return kind


# --- a snapshot's components ---------------------------------------------------------------------


def in_snapshot_order(components: Iterable[HealthComponent]) -> list[HealthComponent]:
    """A model version's components in the order its snapshots list them: (order, id)."""
    return sorted(components, key=lambda c: (c.order, c.pk))


def version_components(model_ids: Iterable[int]) -> dict[int, list[HealthComponent]]:
    """The components of these model versions, each in snapshot order (one query)."""
    found: dict[int, list[HealthComponent]] = {pk: [] for pk in model_ids}
    if not found:
        return {}
    for component in HealthComponent.objects.filter(model_id__in=list(found)):
        found[component.model_id].append(component)
    return {pk: in_snapshot_order(components) for pk, components in found.items()}


def component_entries(stored: list | None, components: list[HealthComponent]) -> list[dict]:
    """A snapshot's stored components as dicts: kind, metric, per_metric, raw, score, weight.

    A snapshot stores one entry per component of its model version, in snapshot order: `[raw, score,
    weight]`, or null when the component had no data (then raw and score None, weight 0). The labels come
    from the version's `components`. An entry that is a dict (the form before metrics 0010) is read as it
    stands. Entries that do not line up with the version's components (edited by hand) are left out rather
    than misnamed.
    """
    entries = []
    for position, entry in enumerate(stored or []):
        if isinstance(entry, dict):
            entries.append(entry)
            continue
        if position >= len(components) or not (entry is None or (isinstance(entry, list) and len(entry) == 3)):
            continue
        component = components[position]
        raw, score, weight = entry if entry is not None else (None, None, 0.0)
        entries.append(
            {
                "kind": component.kind,
                "metric": component.metric,
                "per_metric": component.per_metric,
                "raw": raw,
                "score": score,
                "weight": weight,
            }
        )
    return entries


def snapshots_entries(snapshots: Iterable[HealthSnapshot | None]) -> list[list[dict]]:
    """`component_entries` of each snapshot (None: no entries), their versions' components read once (one
    query, none when no snapshot has compact entries)."""
    snapshots = list(snapshots)
    compact = (s for s in snapshots if s is not None and not all(isinstance(e, dict) for e in s.components or []))
    versions = version_components({s.model_version_id for s in compact})
    return [
        [] if s is None else component_entries(s.components, versions.get(s.model_version_id, [])) for s in snapshots
    ]


@dataclass(frozen=True)
class ComponentPart:
    """One component as one snapshot stored it: raw measure, score 0–100 and weight (a share of 1) as
    stored, and its contribution to the score in points (score x weight, to 0.01). No data: score None,
    weight and contribution 0."""

    raw: Decimal | None
    score: Decimal | None
    weight: Decimal
    contribution: Decimal

    @property
    def has_data(self) -> bool:
        return self.score is not None


def component_part(entry: dict) -> ComponentPart:
    score = _decimal(entry.get("score"))
    weight = _decimal(entry.get("weight")) or ZERO
    contribution = ZERO if score is None else (score * weight).quantize(CONTRIBUTION_PLACES, ROUND_HALF_UP)
    return ComponentPart(raw=_decimal(entry.get("raw")), score=score, weight=weight, contribution=contribution)


@dataclass(frozen=True)
class ComponentChange:
    """One line of the split: a component (or the rounding line), its contribution before and after in
    points, and the change. A contribution is None when that side has no snapshot; a component missing
    from a snapshot (its model version did not have it) or without data there contributes 0.

    `before` / `after` are the component as stored on each side (None when absent: not in that model
    version, or no snapshot on that side, or the rounding line).
    """

    key: tuple[str, str, str]
    kind: str
    label: str
    metric: str
    before: ComponentPart | None
    after: ComponentPart | None
    before_contribution: Decimal | None
    after_contribution: Decimal | None

    @property
    def is_rounding(self) -> bool:
        return self.kind == ROUNDING

    @property
    def change(self) -> Decimal | None:
        if self.before_contribution is None or self.after_contribution is None:
            return None
        return self.after_contribution - self.before_contribution

    @property
    def before_has_data(self) -> bool:
        return self.before is not None and self.before.has_data

    @property
    def after_has_data(self) -> bool:
        return self.after is not None and self.after.has_data

    @property
    def data_change(self) -> str:
        """ "gained" (no data before, data after), "lost" (the reverse) or "" (no change, or a side missing)."""
        if self.is_rounding or self.before_contribution is None or self.after_contribution is None:
            return ""
        if self.after_has_data and not self.before_has_data:
            return "gained"
        if self.before_has_data and not self.after_has_data:
            return "lost"
        return ""


@dataclass(frozen=True)
class HealthSide:
    """The snapshot read for one of the two dates: on that date, or the latest before it."""

    date: datetime.date
    score: Decimal
    band: str
    model_id: int
    model_name: str


@dataclass(frozen=True)
class HealthChange:
    """Why an account's health changed between `first` and `second` (see `health_change`)."""

    first: datetime.date
    second: datetime.date
    before: HealthSide | None
    after: HealthSide | None
    components: list[ComponentChange]
    rounding: ComponentChange | None

    @property
    def lines(self) -> list[ComponentChange]:
        """The components, then the rounding line: they add up to the stored scores and their difference."""
        return [*self.components, *([self.rounding] if self.rounding else [])]

    @property
    def complete(self) -> bool:
        return self.before is not None and self.after is not None

    @property
    def difference(self) -> Decimal | None:
        return self.after.score - self.before.score if self.complete else None

    @property
    def model_changed(self) -> bool:
        return self.complete and self.before.model_id != self.after.model_id

    @property
    def same_snapshot(self) -> bool:
        """Both dates read the same snapshot (none was taken between them)."""
        return self.complete and self.before.date == self.after.date


def _snapshot_on_or_before(account: Account, day: datetime.date) -> HealthSnapshot | None:
    return (
        HealthSnapshot.objects.filter(account=account, date__lte=day)
        .select_related("model_version")
        .order_by("-date")
        .first()
    )


def _side(snapshot: HealthSnapshot | None) -> HealthSide | None:
    if snapshot is None:
        return None
    return HealthSide(
        date=snapshot.date,
        score=snapshot.score,
        band=snapshot.band,
        model_id=snapshot.model_version_id,
        model_name=str(snapshot.model_version),
    )


def _parts(entries: list[dict]) -> dict[tuple[str, str, str], tuple[dict, ComponentPart]]:
    parts = {}
    for entry in entries:
        key = (entry.get("kind", ""), entry.get("metric") or "", entry.get("per_metric") or "")
        parts[key] = (entry, component_part(entry))
    return parts


def health_change(*, account: Account, first: datetime.date, second: datetime.date) -> HealthChange:
    """The difference between the account's health on `first` and on `second`, split by component.

    Each side reads the snapshot on that date or, without one, the latest before it (two queries, and
    one for their model versions' components); the dates are taken in order, so `first` is the earlier.
    A side without a snapshot is None and its contributions are None: the page says there is no data
    rather than guess.

    Method: a snapshot stores, per component, its score (0–100, to 0.1) and its weight (its share of
    the weights of the components with data, to six places); the stored score is the weighted sum
    rounded to 0.1 (`metrics.services.health.combine`). A component's contribution is its stored score
    x stored weight, rounded half-up to 0.01 points; a component without data, or absent from that
    snapshot's model version, contributes 0. What the contributions leave over is its own line,
    "rounding": stored score - sum of the contributions, so on each side

        sum(contributions) + rounding = stored score   (exactly, in Decimal)

    and the changes (after - before, rounding included) add up exactly to the difference of the two
    stored scores. Components are matched by (kind, metric, divided-by metric), so a model version
    that changes a component's metric shows one component losing data and another gaining it.
    """
    first, second = sorted((first, second))
    before_snapshot = _snapshot_on_or_before(account, first)
    after_snapshot = _snapshot_on_or_before(account, second)
    before_entries, after_entries = snapshots_entries([before_snapshot, after_snapshot])
    return _change(first, second, before_snapshot, after_snapshot, before_entries, after_entries)


def _change(
    first: datetime.date,
    second: datetime.date,
    before_snapshot: HealthSnapshot | None,
    after_snapshot: HealthSnapshot | None,
    before_entries: list[dict],
    after_entries: list[dict],
) -> HealthChange:
    before_parts, after_parts = _parts(before_entries), _parts(after_entries)

    keys = list(after_parts) + [key for key in before_parts if key not in after_parts]
    components = []
    for key in keys:
        before = before_parts.get(key, (None, None))[1]
        after = after_parts.get(key, (None, None))[1]
        components.append(
            ComponentChange(
                key=key,
                kind=key[0],
                label=kind_label(key[0]),
                metric=key[1],
                before=before,
                after=after,
                before_contribution=None if before_snapshot is None else (before.contribution if before else ZERO),
                after_contribution=None if after_snapshot is None else (after.contribution if after else ZERO),
            )
        )

    def remainder(snapshot: HealthSnapshot | None, parts: dict) -> Decimal | None:
        if snapshot is None:
            return None
        return snapshot.score - sum((part.contribution for _entry, part in parts.values()), ZERO)

    rounding = None
    if before_snapshot is not None or after_snapshot is not None:
        rounding = ComponentChange(
            key=(ROUNDING, "", ""),
            kind=ROUNDING,
            label=_("Rounding"),
            metric="",
            before=None,
            after=None,
            before_contribution=remainder(before_snapshot, before_parts),
            after_contribution=remainder(after_snapshot, after_parts),
        )
    return HealthChange(
        first=first,
        second=second,
        before=_side(before_snapshot),
        after=_side(after_snapshot),
        components=components,
        rounding=rounding,
    )


# --- trend and band changes -----------------------------------------------------------------------


@dataclass(frozen=True)
class HealthPoint:
    date: datetime.date
    score: Decimal
    band: str


def health_history(*, account: Account, since: datetime.date, until: datetime.date | None = None) -> list[HealthPoint]:
    """The account's snapshots from `since` to `until` (inclusive), oldest first: one query, at most one
    row a day, so a bounded window reads a bounded list."""
    snapshots = HealthSnapshot.objects.filter(account=account, date__gte=since)
    if until is not None:
        snapshots = snapshots.filter(date__lte=until)
    return [
        HealthPoint(date=day, score=score, band=band)
        for day, score, band in snapshots.order_by("date").values_list("date", "score", "band")
    ]


@dataclass(frozen=True)
class BandChange:
    date: datetime.date
    previous: str
    band: str
    score: Decimal


def band_changes(points: list[HealthPoint]) -> list[BandChange]:
    """The days (oldest first) whose band differs from the snapshot before, over `points` (oldest first).

    The first point has nothing before it in the window, so it is never a change.
    """
    return [
        BandChange(date=point.date, previous=previous.band, band=point.band, score=point.score)
        for previous, point in zip(points, points[1:], strict=False)
        if point.band != previous.band
    ]


def latest_snapshot(*, account: Account) -> HealthSnapshot | None:
    """The account's latest snapshot with its model version (one query)."""
    return HealthSnapshot.objects.filter(account=account).select_related("model_version").order_by("-date").first()


def latest_health(
    *, account: Account, change: tuple[datetime.date, datetime.date] | None = None
) -> tuple[HealthSnapshot | None, list[dict], HealthChange | None]:
    """The account's latest snapshot, its components for display (`snapshot_components`) and, with
    `change`, why health changed between its two dates (`health_change`): one query per snapshot read,
    and one for the components of their model versions."""
    snapshot = latest_snapshot(account=account)
    if change is None:
        return snapshot, snapshot_components(snapshot), None
    first, second = sorted(change)
    before, after = _snapshot_on_or_before(account, first), _snapshot_on_or_before(account, second)
    shown, before_entries, after_entries = snapshots_entries([snapshot, before, after])
    return snapshot, _display_rows(shown), _change(first, second, before, after, before_entries, after_entries)


def snapshot_components(snapshot: HealthSnapshot | None) -> list[dict]:
    """A snapshot's components for display: label (the Kind's), metric, raw, score, weight, contribution
    (one query for its model version's components; none without a snapshot)."""
    if snapshot is None:
        return []
    return _display_rows(snapshots_entries([snapshot])[0])


def _display_rows(entries: list[dict]) -> list[dict]:
    rows = []
    for entry in entries:
        part = component_part(entry)
        rows.append(
            {
                "kind": entry.get("kind", ""),
                "label": kind_label(entry.get("kind", "")),
                "metric": entry.get("metric") or "",
                "per_metric": entry.get("per_metric") or "",
                "raw": part.raw,
                "score": part.score,
                "weight": part.weight,
                "contribution": part.contribution,
                "has_data": part.has_data,
            }
        )
    return rows

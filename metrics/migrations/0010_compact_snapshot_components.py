"""Snapshots keep only each component's raw value, score and weight, in the order of their model
version's components (order, id); what each component is stays with the model version.

A stored entry `{"kind", "metric", "per_metric", "raw", "score", "weight"}` becomes `[raw, score, weight]`,
or null when the component had no data. A snapshot whose entries do not line up with its version's
components (same kind, metric and divided-by metric, in order) is left as it is: readers read such
entries as they stand. Rows are converted BATCH at a time, in id order.
"""

from django.db import migrations, models

BATCH = 2_000


def _version_keys(apps) -> dict[int, list[tuple[str, str, str]]]:
    """Per model version, its components' (kind, metric, per_metric) in snapshot order."""
    HealthComponent = apps.get_model("metrics", "HealthComponent")
    keys: dict[int, list] = {}
    for model_id, kind, metric, per_metric in HealthComponent.objects.order_by("model_id", "order", "id").values_list(
        "model_id", "kind", "metric", "per_metric"
    ):
        keys.setdefault(model_id, []).append((kind, metric or "", per_metric or ""))
    return keys


def _compact(entries, keys: list) -> list | None:
    """The compact form of a snapshot's entries, or None when they do not line up with `keys`."""
    if not isinstance(entries, list) or len(entries) != len(keys):
        return None
    compact = []
    for entry, key in zip(entries, keys, strict=True):
        if not isinstance(entry, dict):
            return None
        if (entry.get("kind", ""), entry.get("metric") or "", entry.get("per_metric") or "") != key:
            return None
        raw, score = entry.get("raw"), entry.get("score")
        compact.append(None if raw is None and score is None else [raw, score, entry.get("weight") or 0.0])
    return compact


def _expanded(entries, keys: list) -> list | None:
    """The self-describing form of compact entries, or None when they are not compact or do not fit `keys`."""
    if not isinstance(entries, list) or len(entries) != len(keys):
        return None
    if any(isinstance(entry, dict) for entry in entries):
        return None
    expanded = []
    for entry, (kind, metric, per_metric) in zip(entries, keys, strict=True):
        raw, score, weight = entry if entry is not None else (None, None, 0.0)
        expanded.append(
            {"kind": kind, "metric": metric, "per_metric": per_metric, "raw": raw, "score": score, "weight": weight}
        )
    return expanded


def _convert(apps, convert) -> None:
    HealthSnapshot = apps.get_model("metrics", "HealthSnapshot")
    keys = _version_keys(apps)
    last = 0
    while True:
        batch = list(
            HealthSnapshot.objects.filter(pk__gt=last)
            .order_by("pk")
            .only("pk", "model_version_id", "components")[:BATCH]
        )
        if not batch:
            return
        last = batch[-1].pk
        changed = []
        for snapshot in batch:
            converted = convert(snapshot.components, keys.get(snapshot.model_version_id, []))
            if converted is not None and converted != snapshot.components:
                snapshot.components = converted
                changed.append(snapshot)
        HealthSnapshot.objects.bulk_update(changed, ["components"])


def compact(apps, schema_editor):
    _convert(apps, _compact)


def expand(apps, schema_editor):
    _convert(apps, _expanded)


class Migration(migrations.Migration):
    dependencies = [("metrics", "0009_csm_without_partner_view")]

    operations = [
        migrations.AlterField(
            model_name="healthsnapshot",
            name="components",
            field=models.JSONField(
                default=list,
                help_text=(
                    "One entry per component of the model version, in its order (order, id): [raw value, score, "
                    "weight], or null when the component had no data."
                ),
                verbose_name="components",
            ),
        ),
        migrations.RunPython(compact, expand, elidable=True),
    ]

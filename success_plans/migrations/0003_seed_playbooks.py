"""Seed three playbooks: onboarding (High touch), adoption (Low touch) and renewal readiness."""

from decimal import Decimal

from django.db import migrations

# (name, tier slug, lifecycle stage, days, description, goals)
# goal: (title, description, priority, due in days, targets, initiatives)
# target: (name, unit, baseline, target, due in days, usage metric); initiative: (title, due in days)
PLAYBOOKS = [
    (
        "Onboarding (High touch)",
        "high-touch",
        "onboarding",
        90,
        "The first quarter of a high-touch customer: live, trained, and at a first measurable result.",
        [
            (
                "Go live",
                "First production use by the core team.",
                1,
                30,
                [("Active users", "users", 0, 25, 30, "active_users")],
                [
                    ("Kick-off with the executive sponsor", 3),
                    ("Configure the workspace and single sign-on", 14),
                    ("Import historical data", 21),
                    ("Go-live sign-off", 30),
                ],
            ),
            (
                "Train the core team",
                "Admins and power users can run the product without help.",
                2,
                45,
                [("Admins and power users trained", "people", 0, 10, 45, "")],
                [("Admin training", 21), ("Power-user training", 35)],
            ),
            (
                "Reach first value",
                "The customer sees the result they bought the product for.",
                1,
                90,
                [("Days to first insight", "days", 30, 7, 90, "")],
                [("Agree success criteria with the sponsor", 7), ("First business review", 85)],
            ),
        ],
    ),
    (
        "Adoption (Low touch)",
        "low-touch",
        "adoption",
        120,
        "Broaden use across teams and replace manual work, with pooled webinars and office hours.",
        [
            (
                "Roll out to every team",
                "Every team uses the product in its weekly routine.",
                1,
                60,
                [("Active users", "users", 0, 50, 60, "active_users")],
                [("Team onboarding webinars", 14), ("Publish an internal how-to guide", 30)],
            ),
            (
                "Automate weekly reporting",
                "Scheduled dashboards replace spreadsheet reports.",
                2,
                90,
                [("Automated reports", "reports", 0, 10, 90, "")],
                [("Build the weekly dashboard", 45), ("Schedule report delivery", 60)],
            ),
            (
                "Fewer how-to tickets",
                "Users find answers without opening a ticket.",
                3,
                120,
                [("Support tickets per month", "tickets", 30, 10, 120, "")],
                [("Share the FAQ on the intranet", 30), ("Admin office hours", 60)],
            ),
        ],
    ),
    (
        "Renewal readiness",
        None,
        "renewal",
        90,
        "The last quarter before renewal: value documented, sponsor engaged, risks closed.",
        [
            (
                "Document the value delivered",
                "Leadership sees the outcomes in their own numbers.",
                1,
                30,
                [("Business outcomes documented", "outcomes", 0, 3, 30, "")],
                [("Build the value summary", 21), ("Review it with the executive sponsor", 30)],
            ),
            (
                "Keep adoption up to renewal",
                "Usage holds or grows through the renewal quarter.",
                2,
                75,
                [("Active users", "users", 0, 40, 75, "active_users")],
                [("Re-train teams whose usage lapsed", 40)],
            ),
            (
                "Close the open risks",
                "Nothing unresolved stands in the way of the renewal.",
                1,
                90,
                [("Open risks", "risks", 5, 0, 80, "")],
                [
                    ("Risk review with the account team", 14),
                    ("Executive business review", 45),
                    ("Send the renewal proposal", 60),
                ],
            ),
        ],
    ),
]


def seed_playbooks(apps, schema_editor):
    Tier = apps.get_model("accounts", "Tier")
    PlanTemplate = apps.get_model("success_plans", "PlanTemplate")
    TemplateGoal = apps.get_model("success_plans", "TemplateGoal")
    TemplateTarget = apps.get_model("success_plans", "TemplateTarget")
    TemplateInitiative = apps.get_model("success_plans", "TemplateInitiative")
    for name, tier_slug, stage, days, description, goals in PLAYBOOKS:
        if PlanTemplate.objects.filter(name=name).exists():
            continue
        template = PlanTemplate.objects.create(
            name=name,
            tier=Tier.objects.filter(slug=tier_slug).first() if tier_slug else None,
            lifecycle_stage=stage,
            duration_days=days,
            description=description,
        )
        for order, (title, goal_description, priority, due, targets, initiatives) in enumerate(goals):
            goal = TemplateGoal.objects.create(
                template=template,
                title=title,
                description=goal_description,
                priority=priority,
                due_in_days=due,
                order=order,
            )
            for position, (target, unit, baseline, value, target_due, metric) in enumerate(targets):
                TemplateTarget.objects.create(
                    goal=goal,
                    name=target,
                    unit=unit,
                    baseline=Decimal(baseline),
                    target_value=Decimal(value),
                    due_in_days=target_due,
                    usage_metric=metric,
                    order=position,
                )
            for position, (initiative, initiative_due) in enumerate(initiatives):
                TemplateInitiative.objects.create(goal=goal, title=initiative, due_in_days=initiative_due, order=position)


def remove_unused_playbooks(apps, schema_editor):
    PlanTemplate = apps.get_model("success_plans", "PlanTemplate")
    PlanTemplate.objects.filter(name__in=[p[0] for p in PLAYBOOKS], plans__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_default_tiers"),
        ("success_plans", "0002_measurements_reasons_and_order"),
    ]

    operations = [migrations.RunPython(seed_playbooks, remove_unused_playbooks)]

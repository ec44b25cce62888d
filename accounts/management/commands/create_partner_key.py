"""`manage.py create_partner_key NAME [--scope all|own]`: an API key for a partner system, printed once."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Partner
from accounts.services import partner_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for the partner NAME (created too when it does not exist yet, with --scope, "
        "default own). The key is printed on the last line, once: only its hash is stored."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="The partner's name, e.g. 'Billing' or 'Reseller Acme'.")
        parser.add_argument(
            "--scope",
            choices=Partner.Scope.values,
            help="For a new partner: 'own' sees and changes only the accounts it manages (default), 'all' "
            "every account. An existing partner keeps its scope; change it in the admin.",
        )
        parser.add_argument("--key-name", default="", help="A label for the key, e.g. 'production'.")

    @transaction.atomic
    def handle(self, *args, name: str, scope: str | None, key_name: str, **options) -> None:
        name = name.strip()
        if not name:
            raise CommandError("Give the partner a name.")
        partner = Partner.objects.filter(name=name).first()
        if partner is None:
            partner = Partner.objects.create(name=name, scope=scope or Partner.Scope.OWN)
            self.stdout.write(f"Partner “{partner.name}” created with scope {partner.scope}.")
        elif scope is not None and scope != partner.scope:
            raise CommandError(
                f"The partner “{partner.name}” exists with scope {partner.scope}; change its scope in the admin."
            )
        elif not partner.is_active:
            raise CommandError(f"The partner “{partner.name}” is inactive; activate it in the admin first.")
        key, raw = partner_key_create(partner=partner, name=key_name)
        self.stdout.write(f"Key {key.prefix}… created for “{partner.name}” (scope {partner.scope}). Copy it now:")
        self.stdout.write(raw)

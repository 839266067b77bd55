"""python manage.py features [--clear]: the feature store's size, or empty it."""

from django.core.management.base import BaseCommand

from scoring.services import feature_store


class Command(BaseCommand):
    help = "Report the size of the feature store (network inputs per candidate and recipe), or clear it."

    def add_arguments(self, parser):
        parser.add_argument("--clear", action="store_true",
                            help="Delete every entry; train, score and evaluate recompute what they need.")

    def handle(self, *args, **o):
        store = feature_store()
        entries = sum(1 for _ in store.entries())
        self.stdout.write(f"feature store {store.root}: {entries} entries, {store.size_bytes() / 1e6:.1f} MB")
        if o["clear"]:
            self.stdout.write(f"cleared {store.clear()} entries")

"""`manage.py db_worker`: django-tasks-db's worker, after marking failed the jobs of workers that died."""

from django_tasks_db.management.commands.db_worker import Command as DatabaseWorker

from workbench.jobs import reap


class Command(DatabaseWorker):
    help = DatabaseWorker.help + " (first marks failed the jobs whose worker died)"

    def handle(self, *args, **options):
        reaped = reap()
        if reaped:
            self.stderr.write(f"marked failed: jobs {', '.join(map(str, reaped))} (their worker had stopped)")
        return super().handle(*args, **options)

"""``ptnudge db upgrade``: Alembic migrations to head."""

from __future__ import annotations

from sqlalchemy import make_url

from service import db
from service.cli import output
from service.cli.app import db_app
from service.cli.context import settings_or_exit


@db_app.command("upgrade")
def upgrade() -> None:
    """Migrate the database (PTNUDGE_DATABASE_URL) to the newest schema."""
    settings = settings_or_exit()
    with output.input_errors():
        db.upgrade(settings.database_url)
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    output.say(f"database {shown} is up to date")

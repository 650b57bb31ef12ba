"""Operator commands: `flask --app api.wsgi migrate`."""

from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = url
    return config


def register(app: Flask) -> None:
    @app.cli.command("migrate")
    def migrate() -> None:
        """Apply the database migrations up to the newest."""
        command.upgrade(alembic_config(current_app.config["DATABASE_URL"]), "head")
        click.echo("database schema is up to date")

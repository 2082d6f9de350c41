"""Entry point: `flask --app wsgi ...` and `gunicorn 'wsgi:app'`."""

from ledger import create_app

app = create_app()

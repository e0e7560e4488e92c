"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi ...``."""

import gc

from reviewapp import create_app

app = create_app()

# The app's modules, SQLAlchemy mappers and Jinja environment live as long as the process: move
# them out of the garbage collector's reach. Otherwise every full collection in a worker walks
# them all (100-200 ms pauses measured on the queue page under load), and with gunicorn
# --preload it would also touch, and so copy, the pages the workers share with the arbiter.
gc.collect()
gc.freeze()

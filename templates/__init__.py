"""Message templates: ``sms/<locale>/<message>.txt`` and ``email/<locale>/<message>/``.

Rendered only through ``service.delivery.rendering``; ``service.cli.templates_check`` proves
every one fits.
"""

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent

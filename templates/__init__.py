"""Message templates: ``sms/<locale>/<message>.txt`` and ``email/<locale>/<message>/``;
and the adherence report's page, ``reports/adherence.html``.

Messages are rendered only through ``service.delivery.rendering``, the report page only by
``service.reporting.reports``; ``service.cli.templates_check`` proves every message fits.
"""

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent

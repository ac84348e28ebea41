"""Reporting: adherence figures, the report's data and the weekly clinic digest.

May import the base modules and the other core packages; never tasks, web or cli."""

"""Reports: ptnudge report adherence."""

"""Operations commands: tick, run, demo, status."""

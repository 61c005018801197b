"""Typed facades over register profiles: measurements in internal conventions, and command
translation (setpoint -> device registers)."""

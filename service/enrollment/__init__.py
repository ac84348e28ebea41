"""Enrollment: clinics, patients, programs, plans, the scheduler and the opt-out ledger.

May import the base modules and delivery's rendering; never tasks, web or cli."""

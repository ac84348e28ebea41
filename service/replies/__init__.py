"""Replies: what a patient's text means and what it does (outcomes, opt-outs, alerts).

May import the base modules, enrollment and delivery; never tasks, web or cli."""

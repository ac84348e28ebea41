"""Delivery: from due plan items to messages at the provider, and what became of them.

May import the base modules, enrollment and replies; never tasks, web or cli."""

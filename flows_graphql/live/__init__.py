"""Live updates: the event log read once per process and handed to subscriptions."""

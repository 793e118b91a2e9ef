"""data=support_tickets."""

"""The HTTP routes of the dashboard, one module per area; ``dashboard.app`` includes them."""

"""Web service: the page, its config, policy pages and first-party analytics."""

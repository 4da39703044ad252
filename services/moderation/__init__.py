"""The moderation service: reports, ban decisions, the ban store, the admin API and retention purges."""

"""Code that every Calln service imports: events, codec, subjects, settings, logging, ip_key."""

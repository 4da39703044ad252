"""The signalling gateway: Socket.IO for browsers, NATS for the matcher and other gateways."""

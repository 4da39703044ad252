"""The matcher: waiting queues in memory, pairing, and leader election through a NATS KV lease."""

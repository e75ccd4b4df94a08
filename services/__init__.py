"""The four backorder services; each talks to the others only through Kafka events."""

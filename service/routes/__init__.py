"""One router module per group of endpoints; `service.app` includes them all."""

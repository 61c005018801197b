"""The gateway core: cycle, process image, safety guard, controllers, audit, multi-site."""

"""The core's own hook implementations, registered through its entry points like any plugin's."""

"""Built-in notifiers (registered by the blocks issue's work): registered like any plugin's."""

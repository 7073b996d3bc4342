"""Built-in block types (registered by the blocks issue's work): registered like any plugin's."""

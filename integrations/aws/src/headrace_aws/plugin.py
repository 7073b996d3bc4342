"""headrace-aws hook implementations (filled in by issue 6)."""

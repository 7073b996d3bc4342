"""headrace-dask hook implementations (filled in by issue 7)."""

"""Tools: specs, the allow-listed toolset, reference loan tools, the bureau simulator."""

"""Where events come from: the DI API, the simulator, files."""

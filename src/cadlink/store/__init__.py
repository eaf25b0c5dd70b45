"""All I/O: the event stores and the metadata store."""

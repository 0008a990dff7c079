"""DAG time: config, sessions sheet, metadata cache, NWB metadata check, results layout, resources."""

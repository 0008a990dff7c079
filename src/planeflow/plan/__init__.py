"""DAG-time planning: config, sessions, layout, resources."""

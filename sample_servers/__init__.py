"""Real MCP servers on 127.0.0.1 for tests, the demo, benchmarks and notebooks.

Start one with `sample_servers.launch.start(kind, **options)`; see README.md in this package.
"""

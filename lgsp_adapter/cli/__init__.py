"""The ``lgsp-adapter`` command line: one module per command group (``main`` holds the group
and the small commands), and the demo.

The top layer: it may import anything, and nothing imports it.
"""

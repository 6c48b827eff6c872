"""canteen-ops: field toolkit for school-canteen (明厨亮灶) video surveillance."""

__version__ = "0.1.0"

"""RTSP probing and image-quality metrics (PyAV, numpy)."""

"""Simulated cameras and NVRs speaking the real protocols over loopback, with fault injection."""

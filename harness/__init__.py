"""aiconform: a local-first emulator and conformance harness for Kubernetes clusters that run AI workloads."""

__version__ = "0.1.0"

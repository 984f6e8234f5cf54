"""Reference workloads the conformance scenarios run: code and manifests, no harness internals."""

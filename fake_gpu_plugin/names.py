"""The GPU-side names every layer of aiconform shares, in one place: the extended resource, the DRA driver, the
driver version the fake reports, the label that declares the fake on a node, and the port of the DCGM-named metrics.

The fake GPU stack is their owner (it advertises, publishes and serves them); the harness, the scenarios, the
reference workloads, the benchmarks and the tests import them from here (or through :mod:`harness.contract`).
Plain constants only: this module imports nothing, so importing it never pulls in gRPC stubs.  The shell script
``deploy/nvidia-smi`` repeats :data:`FAKE_DRIVER_VERSION` and :data:`FAKE_CUDA_DRIVER_VERSION` (it cannot import
Python).
"""

from __future__ import annotations

GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource of a whole GPU (or of a MIG device under the ``single`` strategy), NVIDIA's own name."""
DRA_DRIVER = "gpu.nvidia.com"
"""The DRA driver name (NVIDIA's own), also the attribute domain and the name of the whole-GPU DeviceClass."""
FAKE_DRIVER_VERSION = "550.54.15"
"""The driver version the fake reports (DRA attribute ``driverVersion``, the fake nvidia-smi)."""
FAKE_CUDA_DRIVER_VERSION = "12.4"
"""The CUDA version the fake's driver supports (DRA attribute ``cudaDriverVersion`` as ``12.4.0``, the fake
nvidia-smi's "CUDA Version")."""
FAKE_GPU_LABEL = "aiconform.io/fake-gpu"
"""``true`` on every node whose GPUs the fake plays (real kubelet nodes and simulated nodes alike)."""
DCGM_EXPORTER_PORT = 9400
"""The port of ``/metrics`` (DCGM-exporter metric names), as NVIDIA's dcgm-exporter uses it."""
UTILIZATION_ANNOTATION = "aiconform.io/gpu-utilization"
"""A pod annotation (0-100) the fake's DCGM exporter reports as ``DCGM_FI_DEV_GPU_UTIL`` of the GPUs the pod holds:
how a workload on fake GPUs says how busy it keeps them (a check reads the value back through Prometheus)."""

"""The fake GPU stack: the one declared fake in aiconform.  Everything the cluster decides about these GPUs is
decided by real Kubernetes components; this package only plays the hardware and the vendor's device plugin."""

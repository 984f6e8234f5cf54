"""Reference training workload: JAX data-parallel training across processes (gloo CPU collectives), checkpointed
atomically to a shared volume and resumed from it, run as a Kubeflow Trainer v2 TrainJob.

- :mod:`.train`: the training script (``python3 -m reference_workloads.training.train``); JAX is imported only inside
  :func:`.train.run`, so its pure parts (settings, data, checkpoints) import without JAX;
- :mod:`.checkpoint`: the atomic ``.npz`` checkpoint (write to a temporary file, fsync, rename);
- :mod:`.logs`: the JSON lines every rank prints, parsed back into what a check asserts on;
- :mod:`.manifests`: the ClusterTrainingRuntime, TrainJob, PV and PVC as plain dicts (pure).
"""

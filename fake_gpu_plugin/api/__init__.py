"""Generated gRPC stubs (do not edit by hand; regenerate with ``python -m fake_gpu_plugin.gen_stubs``).

- ``deviceplugin_pb2`` / ``deviceplugin_pb2_grpc``: kubelet device plugin API v1beta1 (package ``v1beta1``).
- ``podresources_pb2`` / ``podresources_pb2_grpc``: kubelet PodResources API v1 (package ``v1``).
"""

"""The published CNCF Kubernetes AI Conformance checklists, as data: per checklist version, every requirement
(category key, id, level, description) in the order the program publishes them.

Source: github.com/cncf/k8s-ai-conformance.  v1.33-v1.35 from ``docs/AIConformance-1.3x.md`` (generated there from
the checklist YAML), v1.37 from ``docs/AIConformance-1.37.yaml``.  ``docs/AIConformance-1.36.yaml`` is not in the index
this project reads; v1.36 is the requirement lines of the accepted submissions ``v1.36/gke/PRODUCT.yaml`` and
``v1.36/aks/PRODUCT.yaml`` (identical, and checked by the program's validator against that file).  The texts are the
program's spec, copied verbatim (``tests/unit/test_cncf_checklists.py`` holds them to the source texts stored in
``tests/unit/data/cncf/``); never edit one by hand, add a version when the program publishes it.

Pure data: imports nothing.  ``harness.report.requirements`` builds the checklist lookups on it.
"""

from __future__ import annotations

SOURCE_REPO = "https://github.com/cncf/k8s-ai-conformance"

# -- description texts (one constant per distinct text; a text that changed between versions has a suffix) ----------

DRA_SUPPORT = (
    'Support Dynamic Resource Allocation (DRA) APIs to enable more flexible and fine-grained resource requests '
    'beyond simple counts.'
)
AI_INFERENCE = (
    'Support the Kubernetes Gateway API with an implementation for advanced traffic management for inference '
    'services, which enables capabilities like weighted traffic splitting, header-based routing (for OpenAI '
    'protocol headers), and optional integration with service meshes.'
)
GANG_SCHEDULING = (
    'The platform must allow for the installation and successful operation of at least one gang scheduling solution'
    ' that ensures all-or-nothing scheduling for distributed AI workloads (e.g. Kueue, Volcano, etc.) To be '
    'conformant, the vendor must demonstrate that their platform can successfully run at least one such solution.'
)
CLUSTER_AUTOSCALING = (
    'If the platform provides a cluster autoscaler or an equivalent mechanism, it must be able to scale up/down '
    'node groups containing specific accelerator types based on pending pods requesting those accelerators.'
)
POD_AUTOSCALING = (
    'If the platform supports the HorizontalPodAutoscaler, it must function correctly for pods utilizing '
    'accelerators. This includes the ability to scale these Pods based on custom metrics relevant to AI/ML '
    'workloads.'
)
ACCELERATOR_METRICS = (
    'For supported accelerator types, the platform must allow for the installation and successful operation of at '
    'least one accelerator metrics solution that exposes fine-grained performance metrics via a standardized, '
    'machine-readable metrics endpoint. This must include a core set of metrics for per-accelerator utilization and'
    ' memory usage. Additionally, other relevant metrics such as temperature, power draw, and interconnect '
    'bandwidth should be exposed if the underlying hardware or virtualization layer makes them available. The list '
    'of metrics should align with emerging standards, such as OpenTelemetry metrics, to ensure interoperability. '
    'The platform may provide a managed solution, but this is not required for conformance.'
)
AI_SERVICE_METRICS = (
    'Provide a monitoring system capable of discovering and collecting metrics from workloads that expose them in a'
    ' standard format (e.g. Prometheus exposition format). This ensures easy integration for collecting key metrics'
    ' from common AI frameworks and servers.'
)
SECURE_ACCELERATOR_ACCESS = (
    'Ensure that access to accelerators from within containers is properly isolated and mediated by the Kubernetes '
    'resource management framework (device plugin or DRA) and container runtime, preventing unauthorized access or '
    'interference between workloads.'
)
ROBUST_CONTROLLER = (
    'The platform must prove that at least one complex AI operator with a CRD (e.g., Ray, Kubeflow) can be '
    "installed and functions reliably. This includes verifying that the operator's pods run correctly, its webhooks"
    ' are operational, and its custom resources can be reconciled.'
)
DRIVER_RUNTIME_MANAGEMENT = (
    'Provide a verifiable mechanism for ensuring that compatible accelerator drivers and corresponding container '
    'runtime configurations are correctly installed and maintained on nodes with accelerators. Once the accelerator'
    ' supports exposing driver and runtime version information as part of DRA, then the platform should use the DRA'
    ' mechanism for verification.'
)
GPU_SHARING = (
    'For accelerators that support static GPU sharing, provide well-defined mechanisms for at least one GPU sharing'
    ' strategy to improve utilization for workloads that do not require a full dedicated GPU. If hardware-level '
    'partitioning is supported, then these fractional GPU resources should be exposed as schedulable resources. If '
    'software-based sharing (e.g. time-slicing) is supported, then oversubscription of GPUs should be allowed. '
    'Forward-looking: Once the accelerator supports static GPU sharing as part of DRA, the platform should expose '
    'the DRA mechanism to allow users to leverage static GPU sharing. Once the accelerator supports dynamic GPU '
    'sharing as part of DRA and the partitionable devices feature is GA, the platform should expose the DRA '
    'mechanism to allow users to leverage dynamic GPU sharing.'
)
VIRTUALIZED_ACCELERATOR = (
    'For accelerators that support virtualized accelerator technologies (e.g. vGPU), provide well-defined '
    'mechanisms for these to be exposed and managed, maintaining consistency with physical fractional GPUs. '
    'Forward-looking: Once the accelerator supports virtualized accelerator technologies as part of DRA, then the '
    'platform should use the DRA mechanism.'
)
ADVANCED_INFERENCE_INGRESS = (
    'Support an implementation of the Gateway API Inference Extension (GAIE), which can route requests to models '
    'hosted on Kubernetes. The implementation supports serving LLMs and making advanced routing decisions (e.g., '
    'K/V cache-aware routing) based on metrics and capabilities advertised by the underlying model serving '
    'platform.'
)
HIGH_PERFORMANCE_NETWORKING = (
    'If high performance pod-to-pod communication is needed, then provide well-defined mechanisms for these '
    'specialized network resources to be managed and exposed such that their characteristics should be discoverable'
    ' to enable informed scheduling or workload configuration and to enable pods to attach to multiple network '
    'interfaces. Platforms should use DRA as the mechanism to manage and expose these specialized network resources'
    ' (e.g., DRANET).'
)
DISAGGREGATED_INFERENCE = (
    'Support the deployment and operation of disaggregated inference architectures. To be conformant, the platform '
    'should demonstrate that it can successfully install and run a disaggregated inference solution (e.g., vLLM, '
    'SGLang, llm-d, or Dynamo, with separate instances for distinct phases like prefill and decode). Disaggregated '
    'serving splits phases such as prefill and decode into separately scalable components so each phase can match '
    'different compute/memory/network needs, improving GPU utilization and tail latency while enabling higher '
    'throughput under mixed and bursty LLM workloads.'
)
ACCELERATOR_METRICS_1_37 = (  # v1.37 reads "makes they available" where earlier versions read "them"
    'For supported accelerator types, the platform must allow for the installation and successful operation of at '
    'least one accelerator metrics solution that exposes fine-grained performance metrics via a standardized, '
    'machine-readable metrics endpoint. This must include a core set of metrics for per-accelerator utilization and'
    ' memory usage. Additionally, other relevant metrics such as temperature, power draw, and interconnect '
    'bandwidth should be exposed if the underlying hardware or virtualization layer makes they available. The list '
    'of metrics should align with emerging standards, such as OpenTelemetry metrics, to ensure interoperability. '
    'The platform may provide a managed solution, but this is not required for conformance.'
)
WORKLOAD_SANDBOXING = (
    'Provide a mechanism to run workloads in a sandbox that provides strong isolation from the host node kernel. '
    'This is crucial for AI agent use cases that may execute untrusted code. The sandbox should isolate the '
    "workload's process, memory, filesystem, and network access from the host node and other co-located pods."
)

PUBLISHED: dict[tuple[int, int], tuple[tuple[str, str, str, str], ...]] = {
    # docs/AIConformance-1.33.md
    (1, 33): (
        ('accelerators', 'dra_support', 'SHOULD', DRA_SUPPORT),
        ('networking', 'ai_inference', 'MUST', AI_INFERENCE),
        ('schedulingOrchestration', 'gang_scheduling', 'MUST', GANG_SCHEDULING),
        ('schedulingOrchestration', 'cluster_autoscaling', 'MUST', CLUSTER_AUTOSCALING),
        ('schedulingOrchestration', 'pod_autoscaling', 'MUST', POD_AUTOSCALING),
        ('observability', 'accelerator_metrics', 'MUST', ACCELERATOR_METRICS),
        ('observability', 'ai_service_metrics', 'MUST', AI_SERVICE_METRICS),
        ('security', 'secure_accelerator_access', 'MUST', SECURE_ACCELERATOR_ACCESS),
        ('operator', 'robust_controller', 'MUST', ROBUST_CONTROLLER),
    ),
    # docs/AIConformance-1.34.md
    (1, 34): (
        ('accelerators', 'dra_support', 'MUST', DRA_SUPPORT),
        ('networking', 'ai_inference', 'MUST', AI_INFERENCE),
        ('schedulingOrchestration', 'gang_scheduling', 'MUST', GANG_SCHEDULING),
        ('schedulingOrchestration', 'cluster_autoscaling', 'MUST', CLUSTER_AUTOSCALING),
        ('schedulingOrchestration', 'pod_autoscaling', 'MUST', POD_AUTOSCALING),
        ('observability', 'accelerator_metrics', 'MUST', ACCELERATOR_METRICS),
        ('observability', 'ai_service_metrics', 'MUST', AI_SERVICE_METRICS),
        ('security', 'secure_accelerator_access', 'MUST', SECURE_ACCELERATOR_ACCESS),
        ('operator', 'robust_controller', 'MUST', ROBUST_CONTROLLER),
    ),
    # docs/AIConformance-1.35.md
    (1, 35): (
        ('accelerators', 'dra_support', 'MUST', DRA_SUPPORT),
        ('accelerators', 'driver_runtime_management', 'SHOULD', DRIVER_RUNTIME_MANAGEMENT),
        ('accelerators', 'gpu_sharing', 'SHOULD', GPU_SHARING),
        ('accelerators', 'virtualized_accelerator', 'SHOULD', VIRTUALIZED_ACCELERATOR),
        ('networking', 'ai_inference', 'MUST', AI_INFERENCE),
        ('schedulingOrchestration', 'gang_scheduling', 'MUST', GANG_SCHEDULING),
        ('schedulingOrchestration', 'cluster_autoscaling', 'MUST', CLUSTER_AUTOSCALING),
        ('schedulingOrchestration', 'pod_autoscaling', 'MUST', POD_AUTOSCALING),
        ('observability', 'accelerator_metrics', 'MUST', ACCELERATOR_METRICS),
        ('observability', 'ai_service_metrics', 'MUST', AI_SERVICE_METRICS),
        ('security', 'secure_accelerator_access', 'MUST', SECURE_ACCELERATOR_ACCESS),
        ('operator', 'robust_controller', 'MUST', ROBUST_CONTROLLER),
    ),
    # v1.36/gke/PRODUCT.yaml and v1.36/aks/PRODUCT.yaml (docs/AIConformance-1.36.yaml not in the index)
    (1, 36): (
        ('accelerators', 'driver_runtime_management', 'SHOULD', DRIVER_RUNTIME_MANAGEMENT),
        ('accelerators', 'gpu_sharing', 'SHOULD', GPU_SHARING),
        ('accelerators', 'virtualized_accelerator', 'SHOULD', VIRTUALIZED_ACCELERATOR),
        ('networking', 'ai_inference', 'MUST', AI_INFERENCE),
        ('networking', 'advanced_inference_ingress', 'SHOULD', ADVANCED_INFERENCE_INGRESS),
        ('networking', 'high_performance_networking', 'SHOULD', HIGH_PERFORMANCE_NETWORKING),
        ('networking', 'disaggregated_inference', 'SHOULD', DISAGGREGATED_INFERENCE),
        ('schedulingOrchestration', 'gang_scheduling', 'MUST', GANG_SCHEDULING),
        ('schedulingOrchestration', 'cluster_autoscaling', 'MUST', CLUSTER_AUTOSCALING),
        ('schedulingOrchestration', 'pod_autoscaling', 'MUST', POD_AUTOSCALING),
        ('observability', 'accelerator_metrics', 'MUST', ACCELERATOR_METRICS),
        ('observability', 'ai_service_metrics', 'MUST', AI_SERVICE_METRICS),
        ('security', 'secure_accelerator_access', 'MUST', SECURE_ACCELERATOR_ACCESS),
        ('operator', 'robust_controller', 'MUST', ROBUST_CONTROLLER),
    ),
    # docs/AIConformance-1.37.yaml
    (1, 37): (
        ('accelerators', 'driver_runtime_management', 'SHOULD', DRIVER_RUNTIME_MANAGEMENT),
        ('accelerators', 'gpu_sharing', 'SHOULD', GPU_SHARING),
        ('accelerators', 'virtualized_accelerator', 'SHOULD', VIRTUALIZED_ACCELERATOR),
        ('networking', 'ai_inference', 'MUST', AI_INFERENCE),
        ('networking', 'advanced_inference_ingress', 'SHOULD', ADVANCED_INFERENCE_INGRESS),
        ('networking', 'high_performance_networking', 'SHOULD', HIGH_PERFORMANCE_NETWORKING),
        ('networking', 'disaggregated_inference', 'SHOULD', DISAGGREGATED_INFERENCE),
        ('schedulingOrchestration', 'gang_scheduling', 'MUST', GANG_SCHEDULING),
        ('schedulingOrchestration', 'cluster_autoscaling', 'MUST', CLUSTER_AUTOSCALING),
        ('schedulingOrchestration', 'pod_autoscaling', 'MUST', POD_AUTOSCALING),
        ('observability', 'accelerator_metrics', 'MUST', ACCELERATOR_METRICS_1_37),
        ('observability', 'ai_service_metrics', 'MUST', AI_SERVICE_METRICS),
        ('security', 'secure_accelerator_access', 'MUST', SECURE_ACCELERATOR_ACCESS),
        ('security', 'workload_sandboxing', 'SHOULD', WORKLOAD_SANDBOXING),
        ('operator', 'robust_controller', 'MUST', ROBUST_CONTROLLER),
    ),
}
"""Checklist version → ((category key under ``spec``, id, level, description), …) in published order."""

SOURCES: dict[tuple[int, int], str] = {
    (1, 33): 'docs/AIConformance-1.33.md',
    (1, 34): 'docs/AIConformance-1.34.md',
    (1, 35): 'docs/AIConformance-1.35.md',
    (1, 36): 'v1.36/gke/PRODUCT.yaml and v1.36/aks/PRODUCT.yaml (docs/AIConformance-1.36.yaml not in the index)',
    (1, 37): 'docs/AIConformance-1.37.yaml',
}
"""Where each version's text was read, relative to ``SOURCE_REPO``."""

#!/usr/bin/env bash
# Run on a machine with real NVIDIA GPUs (the `device` lane): the DRA driver's view of the real GPUs through
# `fake-gpu-plugin slices --backend nvml`, next to nvidia-smi, and a check that every GPU nvidia-smi lists is a DRA
# device with its own UUID.  Reads only.  Wheels for the machine's Python are taken from WHEELS (default .whl/).
#     bash tests/gpu/dra_nvml_probe.sh OUT_DIR
set -euo pipefail
out=${1:?usage: dra_nvml_probe.sh OUT_DIR}
mkdir -p "$out"
site=$(mktemp -d)
python3 -m pip install -q --no-index --find-links "${WHEELS:-.whl}" --target "$site" \
  grpcio protobuf PyYAML nvidia-ml-py > "$out/pip.log" 2>&1
export PYTHONPATH="$site:$PWD"
nvidia-smi -L | tee "$out/nvidia-smi-L.txt"
python3 -m fake_gpu_plugin inventory --backend nvml > "$out/inventory.json"
python3 -m fake_gpu_plugin slices --backend nvml --node-name gpu-node > "$out/slices.json"
python3 - "$out" <<'PY'
import json, re, sys
out = sys.argv[1]
smi = set(re.findall(r"UUID: (GPU-[0-9a-f-]+)", open(f"{out}/nvidia-smi-L.txt").read()))
devices = [d for s in json.load(open(f"{out}/slices.json")) for d in s["spec"].get("devices", [])]
uuids = {next(iter(d["attributes"]["uuid"].values())) for d in devices}
for d in devices:
    a = {k: next(iter(v.values())) for k, v in d["attributes"].items()}
    print(f"DRA device {d['name']}: {a.get('productName')} uuid={a.get('uuid')} memory={d.get('capacity', {}).get('memory', {}).get('value')} cc={a.get('cudaComputeCapability')}")
print(f"nvidia-smi GPUs: {len(smi)}; DRA devices: {len(devices)}; every GPU offered with its own uuid: {smi <= uuids}")
sys.exit(0 if smi and smi <= uuids else 1)
PY

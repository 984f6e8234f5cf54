"""``python -m fake_gpu_plugin``: the same as the ``fake-gpu-plugin`` command."""

import sys

from fake_gpu_plugin.cli import main

sys.exit(main())

"""Whether CTranslate2 can run on a CUDA device here, asked before the server starts.

A server told ``model.device = "cuda"`` on a machine without a usable GPU would otherwise start,
accept uploads and fail only when the model loads in the background. The checks name what is
missing: a visible device (driver, ``CUDA_VISIBLE_DEVICES``), the device asked for, and the CUDA
12 cuBLAS that PyPI's ctranslate2 wheels link against (a machine with only CUDA 13 has none).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

CUBLAS = "libcublas.so.12"


def _device_count() -> int:
    import ctranslate2

    return ctranslate2.get_cuda_device_count()


def _loads(library: str) -> bool:
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def cuda_problem(device_index: int, device_count: Callable[[], int] = _device_count,
                 loads: Callable[[str], bool] = _loads) -> str | None:
    """What keeps CTranslate2 from running on CUDA device ``device_index``, or None."""
    count = device_count()
    if count == 0:
        return ("CTranslate2 sees no CUDA device: no NVIDIA driver is loaded, or CUDA_VISIBLE_DEVICES "
                "hides every GPU (`nvidia-smi` tells which)")
    if device_index >= count:
        return f"model.device_index = {device_index}, but CTranslate2 sees {count} CUDA device(s)"
    if not loads(CUBLAS):
        return (f"{CUBLAS} cannot be loaded: CTranslate2 from PyPI needs CUDA 12's cuBLAS "
                "(pip install nvidia-cublas-cu12 and put its lib directory on LD_LIBRARY_PATH, or install CUDA 12)")
    return None

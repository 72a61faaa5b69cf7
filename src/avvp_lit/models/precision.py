"""Where mixed precision stops: the few computations that must stay in float32.

Under ``trainer.precision=bf16-mixed`` autocast runs every matrix product of a network
in bf16. What must not be rounded to bf16 is marked with :func:`float32_forward`
(``torch.amp.custom_fwd`` with ``cast_inputs=torch.float32``, for CPU and CUDA): the
probabilities the metrics threshold (attentive pooling), the losses, and the fused CPU
kernels, whose explicit products are written for float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

DEVICE_TYPES = ("cpu", "cuda")
F = TypeVar("F", bound=Callable[..., object])


def float32_forward(forward: F) -> F:
    """Run ``forward`` with autocast off and its floating-point tensor arguments (also
    inside dicts, lists and tuples) cast to float32, whenever autocast is on.

    For a method of an ``nn.Module`` or the ``forward`` of an ``autograd.Function``
    (``custom_fwd`` records on ``args[0]`` whether autocast was on).
    """
    for device_type in DEVICE_TYPES:
        forward = torch.amp.custom_fwd(forward, device_type=device_type, cast_inputs=torch.float32)
    return forward


def float32_backward(backward: F) -> F:
    """The ``backward`` of an ``autograd.Function`` whose forward is :func:`float32_forward`."""
    for device_type in DEVICE_TYPES:
        backward = torch.amp.custom_bwd(backward, device_type=device_type)
    return backward

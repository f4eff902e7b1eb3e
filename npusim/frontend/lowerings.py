"""Import every lowering family so each registers its ops (import order does not matter)."""
from . import (lower_attention, lower_conv, lower_elementwise, lower_linear,  # noqa: F401
               lower_movement, lower_msft, lower_norm, lower_pool, lower_quant, lower_shape)
from . import lower_npusim  # noqa: F401  (ai.npusim collectives and spiking neurons)

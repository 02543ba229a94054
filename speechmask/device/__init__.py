"""The device contract: what the microcontroller computes per call, in one place.

`contract` names the call's inputs, outputs, shapes and per-layer histories, and the
`CONTRACT_VERSION` and export id that every artefact crossing a boundary carries (the `.tflite`
metadata, the export report, the generated C headers); `reference` is its PyTorch reference and
the closed loop the device runs around it (histories shifted in, gates fed back); `cost` counts
what it costs, for every report that quotes it; `int8` runs the exported int8 model through the
same loop (needs the [export] extra). The export, the attack suite, the firmware and federated
clients are all tested against this package, and it imports neither of them.
"""

from .contract import (CONTRACT_VERSION, ContractError, History, calls_per_second, check_stamp,
                       export_id, histories, history_values, input_names, input_shapes,
                       output_names, stamp, state_width)
from .cost import mask_cost
from .reference import (DeviceLoop, StreamingCall, StreamingGates, closed_loop, float_calls,
                        float_decide, zero_histories)

__all__ = ["CONTRACT_VERSION", "ContractError", "DeviceLoop", "History", "StreamingCall",
           "StreamingGates", "calls_per_second", "check_stamp", "closed_loop", "export_id",
           "float_calls", "float_decide", "histories", "history_values", "input_names",
           "input_shapes", "mask_cost", "output_names", "stamp", "state_width",
           "zero_histories"]

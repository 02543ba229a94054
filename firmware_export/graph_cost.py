"""What one call of the int8 TFLite model computes, counted from its graph, and the time that
takes on a 480 MHz Cortex-M7, estimated (an estimate until firmware measures it on the core).

Counting: multiply-accumulates of CONV_2D (output elements x kernel height x width x input
channels), DEPTHWISE_CONV_2D (output elements x kernel height x width) and FULLY_CONNECTED (output
elements x input features), read from the tensor shapes the interpreter runs; every other
operator counts the elements it writes (AVERAGE_POOL_2D: those it reads).

Estimate (an assumption, stated in every report, not a measurement): CMSIS-NN's int8 kernels, as
TFLite Micro links them for a Cortex-M7, at
- `CYCLES_PER_MAC` = 2: the M7's SMLAD does two 16-bit multiply-accumulates per instruction, but
  int8 operands are widened first and each output is requantized; 2 cycles per MAC is a
  deliberately pessimistic figure for these kernels (1 would be optimistic);
- `CYCLES_PER_ELEMENT` = 4 for element-wise work (load, fixed-point multiply, shift, saturate,
  store);
- `CYCLES_PER_OPERATOR` = 1000 for TFLite Micro's per-node dispatch and kernel set-up.
Caches, flash wait states and the front-end are not modelled.
"""

from __future__ import annotations

CLOCK_HZ = 480e6
CYCLES_PER_MAC = 2.0
CYCLES_PER_ELEMENT = 4.0
CYCLES_PER_OPERATOR = 1000.0
METHOD = (f"estimate, not a measurement: MACs and element operations counted from the int8 "
          f"TFLite graph; {CYCLES_PER_MAC:g} cycles per MAC (CMSIS-NN int8 kernels on a "
          f"Cortex-M7, pessimistic), {CYCLES_PER_ELEMENT:g} per element-wise output, "
          f"{CYCLES_PER_OPERATOR:g} per operator call; at {CLOCK_HZ / 1e6:g} MHz")


def graph_cost(model: bytes) -> dict:
    """Per call: `macs`, `elements` (element-wise outputs), `operators`, and the MACs of each
    operator kind."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    shape = {t["index"]: [int(d) for d in t["shape"]] for t in it.get_tensor_details()}
    macs, elements, by_op = 0, 0, {}
    ops = it._get_ops_details()
    for op in ops:
        name, ins, out = op["op_name"], op["inputs"], shape[op["outputs"][0]]
        n_out = int(np.prod(out))
        if name == "CONV_2D":
            _, kh, kw, cin = shape[ins[1]]
            m = n_out * kh * kw * cin
        elif name == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = shape[ins[1]]
            m = n_out * kh * kw
        elif name == "FULLY_CONNECTED":
            m = n_out * shape[ins[1]][-1]
        else:
            m = 0
            elements += int(np.prod(shape[ins[0]])) if name == "AVERAGE_POOL_2D" else n_out
        macs += m
        by_op[name] = by_op.get(name, 0) + m
    return {"macs": macs, "elements": elements, "operators": len(ops),
            "macs_by_operator": {k: v for k, v in sorted(by_op.items()) if v}}


def estimate(cost: dict, calls_per_second: float) -> dict:
    """Cycles per call and milliseconds of a 480 MHz core per second of audio (see METHOD)."""
    cycles = (cost["macs"] * CYCLES_PER_MAC + cost["elements"] * CYCLES_PER_ELEMENT
              + cost["operators"] * CYCLES_PER_OPERATOR)
    per_second = cycles * calls_per_second
    return {"cycles_per_call": int(round(cycles)),
            "ms_per_call": 1000 * cycles / CLOCK_HZ,
            "ms_per_second": 1000 * per_second / CLOCK_HZ,
            "cpu_share": per_second / CLOCK_HZ, "method": METHOD}

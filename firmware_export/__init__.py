"""speechmask export: int8 TFLite / ONNX models, generated C headers, firmware, serial tools.

Builds on the `speechmask` core and never the reverse; the device's call it exports is defined
by `speechmask.device`. Here: its Keras twin (`keras_mask`), int8 TFLite conversion, TFLite
Micro's host interpreter and the checks on the converted model (`tflite_int8`), ONNX
(`onnx_export`), generated C sources (`headers`), the graph's cost and time estimate
(`graph_cost`), and `speechmask export` (`pipeline`, `cli`).
"""

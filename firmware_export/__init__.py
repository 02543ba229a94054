"""speechmask export: int8 TFLite / ONNX models, generated C headers, firmware, serial tools.

Builds on the `speechmask` core and never the reverse. The device's stateful streaming call
(`streaming`), its Keras twin (`keras_mask`), int8 TFLite conversion and the LiteRT / TFLite
Micro runtimes that check it (`tflite_int8`), ONNX (`onnx_export`), generated C sources
(`headers`), the graph's cost and time estimate (`graph_cost`), and `speechmask export`
(`pipeline`, `cli`).
"""

"""speechmask export: int8 TFLite / ONNX models, generated C headers, firmware, serial tools.

Builds on the `speechmask` core and never the reverse. So far (issue 5, in progress): the device's
streaming call (`streaming`), its Keras twin (`keras_mask`), int8 TFLite conversion and the
LiteRT / TFLite Micro runtimes that check it (`tflite_int8`), ONNX (`onnx_export`), generated C
sources (`headers`), and `speechmask export` (`pipeline`, `cli`).
"""

"""speechmask export: int8 TFLite / ONNX models, generated C headers, firmware, serial tools.

Builds on the `speechmask` core and never the reverse; the exporters arrive with issue 5.
"""

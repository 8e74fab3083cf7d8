"""INT8: the calibration and evaluation images, post-training quantization for each runtime
(ONNX Runtime's static QDQ, NNCF for OpenVINO; Core ML and TensorRT in the export package),
and the count of what ran INT8, read from each runtime's own execution graph."""

DEFAULT_CALIBRATION_SIZE = 128  # calibration inputs, unless --calibration-size says otherwise

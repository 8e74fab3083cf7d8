"""The RepNeXt paper's peers, measured there on the same iPhone 12 (Core ML, iOS 16): latency
in ms and ImageNet-1k top-1 in % (with distillation; MobileOne without), as the paper's
comparison with other efficient networks reports them. Used for the latency-accuracy plot;
docs/models.md lists them beside RepNeXt's own figures."""

PEERS: dict[str, list[tuple[str, float, float]]] = {
    "RepViT": [("M0.9", 0.89, 78.7), ("M1.0", 1.02, 80.0), ("M1.1", 1.13, 80.7), ("M1.5", 1.51, 82.3),
               ("M2.3", 2.24, 83.3)],
    "MobileOne": [("S1", 0.89, 75.9), ("S2", 1.14, 77.4), ("S3", 1.31, 78.1), ("S4", 1.73, 79.4)],
    "FastViT": [("T8", 0.89, 76.7), ("T12", 1.33, 80.3), ("SA12", 1.67, 81.9), ("SA24", 2.78, 83.4)],
    "EfficientFormerV2": [("S0", 0.91, 75.7), ("S1", 1.06, 79.0), ("S2", 1.63, 81.6), ("L", 2.75, 83.3)],
}

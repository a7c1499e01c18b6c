"""hccprog: multimodal prognosis of hepatocellular carcinoma treated with TACE."""

__version__ = "0.1.0"

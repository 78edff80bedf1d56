from .pipeline_sr3 import SHIPPED_MODEL, SR3Pipeline

__all__ = ["SHIPPED_MODEL", "SR3Pipeline"]

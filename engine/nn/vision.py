"""Vision layers. Importing this module registers Convolution, Deconvolution, Im2col,
Pooling, SPP and Crop (each family lives in its own vision_*.py module)."""

from engine.nn.vision_conv import ConvolutionLayer, DeconvolutionLayer, Im2colLayer
from engine.nn.vision_crop import CropLayer
from engine.nn.vision_pool import PoolingLayer, SPPLayer

__all__ = ["ConvolutionLayer", "CropLayer", "DeconvolutionLayer", "Im2colLayer", "PoolingLayer", "SPPLayer"]

"""Native sources of recon's rasterizer, shipped as package data and JIT-built (see recon._ops)."""

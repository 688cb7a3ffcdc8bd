"""Compression to what the data uses: utilized rank and PCA-driven structured design."""

"""avvp-lit: weakly supervised audio-visual video parsing on LLP (MM-CSE, HAN)."""

__version__ = "0.1.0"

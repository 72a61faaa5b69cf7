"""The Hydra configuration tree, installed as the package `avvp_lit.conf`."""

"""The console scripts, one module each (``avvp-train`` is ``cli/train.py``): thin shells
that parse arguments and call the roles below them; nothing imports them."""

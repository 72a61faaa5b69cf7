"""Every figure: parsing timelines, per-class F1, attention maps, dataset statistics and
the ablation bars. Pure functions returning matplotlib ``Figure`` objects (no pyplot)."""

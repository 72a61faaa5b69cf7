"""Training and evaluation machinery: the LightningModule, building a run (trainer,
callbacks, loggers, checks), the jobs behind the Hydra apps, and the result files."""

"""Helpers every role uses: the bad-input convention (:mod:`.errors`), atomic file
writing (:mod:`.atomic`) and the run-directory lock (:mod:`.lock`). They import
nothing from the rest of the project."""

"""From video files to the feature arrays the models read, as VALOR and HAN made them
(``avvp-extract``): decoding, each model's input, the pretrained extractors, the pipeline."""

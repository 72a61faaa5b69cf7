"""The field's vocabulary: the 25 LLP event classes in the canonical order every array
uses, the 10 one-second segments, the modalities, and the probabilities a prediction
holds (the one definition of each)."""

CLASSES: tuple[str, ...] = (
    "Speech",
    "Car",
    "Cheering",
    "Dog",
    "Cat",
    "Frying_(food)",
    "Basketball_bounce",
    "Fire_alarm",
    "Chainsaw",
    "Cello",
    "Banjo",
    "Singing",
    "Chicken_rooster",
    "Violin_fiddle",
    "Vacuum_cleaner",
    "Baby_laughter",
    "Accordion",
    "Lawn_mower",
    "Motorcycle",
    "Helicopter",
    "Acoustic_guitar",
    "Telephone_bell_ringing",
    "Baby_cry_infant_cry",
    "Blender",
    "Clapping",
)
NUM_CLASSES = len(CLASSES)
NUM_SEGMENTS = 10
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
# the two streams, in the order of every modality axis (frame_prob's axis 2)
MODALITIES: tuple[str, ...] = ("audio", "visual")
# what a parsed event can be: audible, visible, or both
EVENT_MODALITIES: tuple[str, ...] = ("audio", "visual", "audio-visual")
# the probabilities a prediction file keeps, per video: what avvp-eval scores
PREDICTION_SHAPES: dict[str, tuple[int, ...]] = {
    "global_prob": (NUM_CLASSES,),
    "a_prob": (NUM_CLASSES,),
    "v_prob": (NUM_CLASSES,),
    "frame_prob": (NUM_SEGMENTS, len(MODALITIES), NUM_CLASSES),
}
PREDICTION_KEYS = tuple(PREDICTION_SHAPES)
# the largest value each can take: global_prob pools audio and visual with a softmax over
# time per modality and one over the modalities per second (MMIL, docs/avvp.md §4), so it
# can exceed 1 (up to 2) when the two modalities attend to different seconds; the original
# code clamps it only inside the loss, and the protocol thresholds it as it is
PREDICTION_MAX: dict[str, float] = {
    "global_prob": 2.0,
    "a_prob": 1.0,
    "v_prob": 1.0,
    "frame_prob": 1.0,
}

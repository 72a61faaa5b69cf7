"""The field's vocabulary: the 25 LLP event classes in the canonical order every array
uses, the 10 one-second segments, and the modalities (the one definition of each)."""

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

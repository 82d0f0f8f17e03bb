"""The landing lines of a small retrain over the tiny model, and a judge to load by name."""

from __future__ import annotations

from flywheel_tests.support.records import feedback, interaction

# Short, unrelated questions (near-duplicate prompts would be collapsed) with short answers.
QA = [
    ("Which colour is a clear daytime sky?", "The sky is blue."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What do bees make?", "Bees make honey."),
    ("Name the largest ocean on Earth.", "The Pacific Ocean."),
    ("What gas do plants absorb?", "Plants absorb carbon dioxide."),
    ("Who wrote Hamlet?", "William Shakespeare wrote it."),
    ("What is frozen water called?", "Frozen water is ice."),
    ("Which planet has famous rings?", "Saturn has the rings."),
    ("What does a thermometer measure?", "It measures temperature."),
    ("Where do penguins mostly live?", "Mostly in Antarctica."),
    ("What metal is liquid at room temperature?", "Mercury is liquid."),
    ("How many days are in a leap year?", "A leap year has 366 days."),
]
# Answers users corrected: (question, bad answer, correction).
CORRECTED = [
    ("What is the capital of Japan?", "The capital is Kyoto.", "The capital is Tokyo."),
    ("How many sides has a hexagon?", "A hexagon has five sides.", "A hexagon has six sides."),
    ("What is the boiling point of water?", "Water boils at 90 C.", "Water boils at 100 C."),
    ("Which animal is the tallest?", "The elephant is tallest.", "The giraffe is tallest."),
]


def landing_lines() -> tuple[list[dict], list[dict]]:
    """Interactions with a thumbs-up for QA and a thumbs-down with a correction for CORRECTED."""
    interactions, fb = [], []
    for i, (q, a) in enumerate(QA):
        interactions.append(interaction(f"g{i}", prompt=q, response=a, user_id=f"u{i}"))
        fb.append(feedback(f"fg{i}", f"g{i}", "thumbs_up", user_id=f"u{i}"))
    for i, (q, bad, fixed) in enumerate(CORRECTED):
        interactions.append(interaction(f"c{i}", prompt=q, response=bad, user_id=f"v{i}"))
        fb.append(feedback(f"fc{i}", f"c{i}", "thumbs_down", correction=fixed, user_id=f"v{i}"))
    return interactions, fb


def length_judge(inputs, expected, outputs):
    """A judge that passes any answer over three characters."""
    return [1.0 if len(o) > 3 else 0.0 for o in outputs]

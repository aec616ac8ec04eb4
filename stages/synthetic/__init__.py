"""Synthetic athletes: rendered exercise video with exact joint-level truth.

    from repcoach.stages.synthetic import SyntheticSource
    src = SyntheticSource.from_spec("squat,reps=5,view=side,seed=3")
    for frame_bgr, truth in src.frames(): ...
    src.truth_document()  # JSON-ready: reps, faults, per-frame landmarks and angles

Spec syntax and options: `options`; faults and the `fault=` syntax: `faults`;
exercises as data: `exercises`; people who do not exercise (bystander,
walker): `extras`. How the pieces fit:

    exercises/faults -> timeline (seeded reps and rests: pose per frame)
    extras (bystander stances and sway, walker gait)
      -> kinematics (3D joints: anchors, pins, IK) -> camera (per-person lens, layout;
         a mirror twin is its athlete's lens flipped)
      -> drawing/head/scenery (OpenCV painting, label image) -> truth (33 landmarks,
         visibility, joint angles) -> source (SyntheticSource)

`check.measure_blazepose` measures what BlazePose makes of a clip,
`check.measure_people` whether the pipeline's segmenter finds every person.
"""

from repcoach.stages.synthetic.source import SyntheticSource

__all__ = ["SyntheticSource"]

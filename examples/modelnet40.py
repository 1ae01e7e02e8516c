"""Train and evaluate unimix on ModelNet40 classification: ``examples/pointcloud_classification.py``
with the published ModelNet40 protocol as its defaults.

Point ``--data-dir`` at the folder you already have; the layout is detected:
``modelnet40_ply_hdf5_2048`` (h5), ``modelnet40_normal_resampled`` (txt) or ``ModelNet40`` (OFF meshes).

    python examples/modelnet40.py --data-dir data/modelnet40_ply_hdf5_2048
    python examples/modelnet40.py --data-dir ../shared/data/modelnet40_normal_resampled \\
        --epochs 3 --model unimix_t --vote 3 --json          # the 156-shape sample, a few minutes

Defaults follow the published protocol (DGCNN / PCT / PointMLP / Point-MAE): 1024 points in the unit
sphere, training augmentation = per-axis scale U[2/3, 3/2] + shift U[-0.2, 0.2] (``--augment pointnet2``
for PointNet++'s isotropic scale + shift, ``--augment scan`` for rotation, scale, jitter and point
dropout), cross-entropy with label smoothing 0.2, AdamW (lr 5e-4, weight decay 0.05), batch 32, 300
epochs, cosine schedule after 10 warm-up epochs. Training is ``unimix.Trainer``; the test set is scored
after every epoch: ``test_acc`` after the last epoch, ``test_acc_best`` at the best one (what those papers
report), ``test_class_acc`` the mean per-class accuracy; ``--seeds N`` adds ``test_acc_mean`` /
``test_acc_std``; ``--vote N`` averages N augmented passes at test time. Every other option and the
outputs are those of ``examples/pointcloud_classification.py`` (``--help``).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pointcloud_classification  # noqa: E402  (the one point-cloud classification example)

from unimix.data.modelnet import detect_format, load_modelnet40  # noqa: E402,F401  (re-exported for scripts)

MODELNET40 = dict(pointcloud_classification.MODELNET_DEFAULTS, output_dir="runs/modelnet40")


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith("--output-dir") for a in argv):
        argv += ["--output-dir", MODELNET40["output_dir"]]
    return pointcloud_classification.main(argv, defaults={k: v for k, v in MODELNET40.items() if k != "output_dir"},
                                          name="modelnet40")


if __name__ == "__main__":
    main()

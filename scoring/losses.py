"""Cross-entropy with LSRO (label smoothing regularisation for outliers).

Zheng, Zheng & Yang (2017), as the paper uses it: a labeled example's target
is one-hot — good (positive, label 1) → (0, 1), bad (negative, label 0) →
(1, 0), columns in the networks' output order (index :data:`GOOD` = 1 is
"good"); an unlabeled example (label −1, the matched condition) gets the
uniform target (0.5, 0.5). The loss is the batch mean of
``−Σ_k q_k log softmax(z)_k``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoring.errors import ScoringError
from scoring.nets import GOOD

POSITIVE = 1
NEGATIVE = 0
UNLABELED = -1


def lsro_targets(labels: Tensor) -> Tensor:
    """Target distributions ``(B, 2)`` for labels ``(B,)`` in {1 good, 0 bad, −1 unlabeled}."""
    labels = torch.as_tensor(labels)
    if labels.ndim != 1:
        raise ScoringError(f"labels must be 1-D, got shape {tuple(labels.shape)}")
    bad = ~((labels == POSITIVE) | (labels == NEGATIVE) | (labels == UNLABELED))
    if bool(bad.any()):
        raise ScoringError(f"labels must be 1, 0 or -1; got {sorted(set(labels[bad].tolist()))}")
    q = torch.full((labels.shape[0], 2), 0.5, dtype=torch.float32)
    q[labels == POSITIVE] = 0.0
    q[labels == POSITIVE, GOOD] = 1.0
    q[labels == NEGATIVE] = 0.0
    q[labels == NEGATIVE, 1 - GOOD] = 1.0
    return q


def lsro_cross_entropy(logits: Tensor, labels: Tensor, *, class_weights: dict[int, float] | None = None) -> Tensor:
    """Mean cross-entropy of ``logits`` (B, 2) against LSRO targets of ``labels`` (B,); a scalar.

    With no unlabeled example this is ordinary cross-entropy. ``class_weights``
    (label → weight, missing labels weigh 1) gives a weighted mean, so that a
    class with fewer examples counts as much as the other (see
    :func:`balanced_class_weights`).
    """
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ScoringError(f"logits must be (batch, 2), got {tuple(logits.shape)}")
    if logits.shape[0] != torch.as_tensor(labels).shape[0] or logits.shape[0] == 0:
        raise ScoringError(f"{logits.shape[0]} logits but {torch.as_tensor(labels).shape[0]} labels")
    q = lsro_targets(labels).to(logits.device)
    per_example = -(q * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
    if not class_weights:
        return per_example.mean()
    labels = torch.as_tensor(labels)
    w = torch.ones(labels.shape[0], dtype=per_example.dtype)
    for label, weight in class_weights.items():
        w[labels == label] = float(weight)
    w = w.to(per_example.device)
    return (w * per_example).sum() / w.sum()


def balanced_class_weights(labels: Tensor) -> dict[int, float]:
    """Weights for :func:`lsro_cross_entropy` that give positives and negatives equal total weight.

    Each labeled class gets ``n_labeled / (2 · n_class)``; unlabeled examples
    keep weight 1. Empty when one labeled class is absent.
    """
    labels = torch.as_tensor(labels)
    n_pos, n_neg = int((labels == POSITIVE).sum()), int((labels == NEGATIVE).sum())
    if not n_pos or not n_neg:
        return {}
    total = n_pos + n_neg
    return {POSITIVE: total / (2 * n_pos), NEGATIVE: total / (2 * n_neg)}

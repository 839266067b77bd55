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


def lsro_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits`` (B, 2) against LSRO targets of ``labels`` (B,); a scalar.

    With no unlabeled example this is ordinary cross-entropy.
    """
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ScoringError(f"logits must be (batch, 2), got {tuple(logits.shape)}")
    if logits.shape[0] != torch.as_tensor(labels).shape[0] or logits.shape[0] == 0:
        raise ScoringError(f"{logits.shape[0]} logits but {torch.as_tensor(labels).shape[0]} labels")
    q = lsro_targets(labels).to(logits.device)
    return -(q * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()

"""Trust anchors now live in :mod:`ledger.anchors` (files verify offline too); re-exported here."""

from ledger.anchors import TrustAnchors

__all__ = ["TrustAnchors"]

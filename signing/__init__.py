"""SM2 / SM3 / Ed25519 keys, signatures, signed notes and certificates.

No ledger knowledge lives here: this package is the bottom of the dependency
graph (signing <- ledger <- cert_formats <- nodes / verify_api).
"""

"""The verification API: submission, status, proofs, history, file verification, federation."""

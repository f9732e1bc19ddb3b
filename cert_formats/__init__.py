"""Licence formats: GB/T 36903 model, GB/T 36904 identifier, rendered licence faces."""

"""Licence formats: GB/T 36903 model, GB/T 36904 identifier, rendered licence faces."""

from reportlab import rl_config

# reportlab wraps every compressed stream in ASCII85 as well, by default: 25 % larger
# streams and, without its optional C accelerator, the slowest step of drawing a face
# (a pure-Python encoder over every byte). PDF is binary-safe, so the streams are
# Flate only. Set here, on the package, so every PDF this package draws (faces,
# signature appearances, OFD->PDF) is written the same way whatever is imported first.
rl_config.useA85 = 0

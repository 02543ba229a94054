"""speechmask attack suite: what still leaks (content, speaker) and what still works (intent).

Builds on the `speechmask` core and never the reverse.
"""

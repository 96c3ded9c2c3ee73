"""Deploy-time tools, never shipped: `python -m deploy sync | stage | deploy` (make sync, make deploy).

Kept out of the layer so the layer stays small (SPEC 6); they use the layer's SES client, so SES
is reached with the functions' own settings and retry policy.
"""

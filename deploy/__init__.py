"""Deploy-time tools, never shipped: `python -m deploy sync | deploy | rollback | stage` (make sync,
make deploy, make rollback).

Kept out of the layer so the layer stays small; `sync` uses the layer's SES client, so SES is
reached with the functions' own settings and retry policy; `deploy` reads the layer's config
checks only (a config the functions would refuse stops it), and drives SCF with
tencentcloud-sdk-python-scf, a development requirement. docs/deploy.md tells the whole story.
"""

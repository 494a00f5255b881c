"""Importers: raw skeleton datasets into the prepared format (Parquet shards + dataset.json).

One module per source: `ntu` (NTU RGB+D 60/120 .skeleton files), `kinetics`
(Kinetics-Skeleton JSON), `pkummd` (PKU-MMD), `nwucla` (NW-UCLA JSON), `npz` (the generic
array format) and `synthetic` (the embedded generator). The raw-file importers describe their
input as a `prepare.Source` and go through the shared runner in `prepare` (process pool,
resumable shards, rejected samples with reasons). The prepared format itself is
`mcc.shards`; reading untrusted files is `mcc.untrusted`.
"""

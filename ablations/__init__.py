"""The paper's ablation tables (Tables 1-7) as declared experiments, their runner and report.

    python -m ablations {list,run,report}

specs.py declares the tables, presets.py how big a run is, cells.py expands a table into
named runs, run.py runs them (pretraining through tune/sweep.py's grid, then mcc.evaluate),
report.py turns the result files into Markdown and one self-contained HTML file.
"""

from ablations.presets import PRESETS, Preset
from ablations.specs import TABLES, Reference, Row, Table

__all__ = ["PRESETS", "Preset", "TABLES", "Reference", "Row", "Table"]

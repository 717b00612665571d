"""Reports: CTR, clicks and views read from the rollups, never from raw events; orders
from the ``orders`` the aggregator keeps; experiments from both (``stats``).

Every question names the sites it may see (access control happens before, in whoever asks)
and a time range. Hourly counters answer questions by hour, day or placement; daily
counters answer by item and position, so those ranges resolve to whole UTC days. The
counters trail the stored events by the aggregation lag (seconds): every report document
says up to when it is counted.

- ``model``: what a report is (the question, its rows, the document);
- ``sql``: the reports role, in SQL SQLite and PostgreSQL both run;
- ``text``: a report as aligned text for the terminal.
"""

from clickthru.reports.model import (
    CONVERSION_GROUPINGS,
    COUNT_FIELDS,
    EXPORT_COLUMNS,
    GROUPINGS,
    OUTCOME_COLUMNS,
    Asked,
    Click,
    ConversionGrouping,
    ConversionReport,
    ConversionRow,
    Counts,
    DataHealth,
    Experiment,
    ExportedEvent,
    Figures,
    Grouping,
    Health,
    LatestClicks,
    Outcome,
    Query,
    Report,
    ReportRow,
    Row,
    SiteList,
    VariantFigures,
)
from clickthru.reports.sql import Reports
from clickthru.reports.text import (
    aligned,
    conversion_table,
    experiment_table,
    outcome_cells,
    report_table,
)

__all__ = [
    "CONVERSION_GROUPINGS",
    "COUNT_FIELDS",
    "EXPORT_COLUMNS",
    "GROUPINGS",
    "OUTCOME_COLUMNS",
    "Asked",
    "Click",
    "ConversionGrouping",
    "ConversionReport",
    "ConversionRow",
    "Counts",
    "DataHealth",
    "Experiment",
    "ExportedEvent",
    "Figures",
    "Grouping",
    "Health",
    "LatestClicks",
    "Outcome",
    "Query",
    "Report",
    "ReportRow",
    "Reports",
    "Row",
    "SiteList",
    "VariantFigures",
    "aligned",
    "conversion_table",
    "experiment_table",
    "outcome_cells",
    "report_table",
]

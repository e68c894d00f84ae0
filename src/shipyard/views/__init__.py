"""What the faces that draw pages share (the reports and the dashboard): inline SVG charts
with text alternatives (``svg``), formatting of numbers (``text``) and the per-feature
distribution summaries a chart draws (``features``). Pure: data in, strings or plain dicts out;
no web framework, no I/O."""
